/**
 * How long a sealed e-mail address may stay in `contacts`. The e-mail delivery deletes an
 * address once its message is accepted or refused for good, but many subscribes never get a
 * message: the server refused them (an erased subscriber, a stale version), answered without a
 * key (an activated licence coming back), a re-issue met an activated key, the batch failed for
 * good, or the ISP stopped delivering by e-mail. An address nobody will write to is deleted:
 *
 * - when a batch's results are recorded, for its subscribes left without a pending e-mail;
 * - when a batch fails for good, for all of its subscribes;
 * - by {@link purgeStaleContacts}, a sweep for what the two above cannot see (ISPs not in e-mail
 *   mode, addresses older than the retention with no pending e-mail).
 *
 * An address is kept while its subscriber has a pending e-mail delivery, and when the intake has
 * changed the subscriber since the batch (its version is higher): a later subscribe may have
 * written the address its own key needs.
 */
import type { Knex } from 'knex';
import type { RelaisConfig } from '../config/load.js';
import type { ProvisioningCommand } from '../mappings/provisioning-command.js';
import { lockSubscriberVersions } from '../mappings/subscriber-store.js';
import type { Db } from '../platform/db.js';

/** Days an address may wait for its e-mail before the sweep deletes it anyway. */
export const CONTACT_RETENTION_DAYS = 30;

const IDS_PER_QUERY = 1000;
const ROWS_PER_DELETE = 10_000;

/** Subscriber ids of e-mail deliveries still to send, among `ids`. */
function pendingEmail(trx: Knex | Knex.Transaction, ids: string[]) {
  return trx('deliveries')
    .select('subscriber_id')
    .whereIn('subscriber_id', ids)
    .where({ state: 'pending', channel: 'email' });
}

/**
 * Deletes the addresses of a batch's subscribes that no e-mail will use. Runs in the caller's
 * transaction: the subscriber rows read are share-locked, so an intake writing a newer
 * subscribe (and its address) waits for this commit rather than lose its address to it.
 *
 * @returns the number of addresses deleted.
 */
export async function releaseBatchContacts(
  trx: Knex.Transaction,
  ispId: string,
  commands: readonly ProvisioningCommand[],
): Promise<number> {
  // The batch's last version of each subscriber that subscribes in it.
  const subscribed = new Set<string>();
  const lastVersion = new Map<string, number>();
  for (const c of commands) {
    if (c.kind === 'subscribe') subscribed.add(c.subscriberId);
    lastVersion.set(c.subscriberId, Math.max(c.version, lastVersion.get(c.subscriberId) ?? 0));
  }
  let deleted = 0;
  const ids = [...subscribed];
  for (let i = 0; i < ids.length; i += IDS_PER_QUERY) {
    const chunk = ids.slice(i, i + IDS_PER_QUERY);
    // Most subscribes wait for their e-mail: they drop out here, before any lock is taken.
    const withContact: { subscriber_id: string }[] = await trx('contacts')
      .select('subscriber_id')
      .where({ isp_id: ispId })
      .whereIn('subscriber_id', chunk)
      .whereNotIn('subscriber_id', pendingEmail(trx, chunk));
    if (withContact.length === 0) continue;
    const candidates = withContact.map((r) => r.subscriber_id);
    const versionOf = await lockSubscriberVersions(trx, candidates);
    // No row: erased since, and its address has no use either.
    const released = candidates.filter(
      (id) => (versionOf.get(id) ?? 0) <= (lastVersion.get(id) ?? 0),
    );
    if (released.length === 0) continue;
    deleted += await trx('contacts')
      .whereIn('subscriber_id', released)
      .whereNotIn('subscriber_id', pendingEmail(trx, released))
      .delete();
  }
  return deleted;
}

export interface PurgedContacts {
  /** Addresses of ISPs that do not deliver by e-mail (any more), or are no longer configured. */
  notEmailIsp: number;
  /** Addresses older than the retention with no pending e-mail delivery. */
  expired: number;
}

async function deleteInSlices(query: () => Knex.QueryBuilder): Promise<number> {
  let total = 0;
  for (;;) {
    const n = Number(await query().limit(ROWS_PER_DELETE).delete());
    total += n;
    if (n < ROWS_PER_DELETE) return total;
  }
}

/**
 * The retention sweep of `contacts`; idempotent, so two schedulers running it at once are
 * harmless. `retentionDays` counts from the address's intake (`created_at`).
 */
export async function purgeStaleContacts(
  db: Db,
  config: RelaisConfig,
  now: Date,
  retentionDays = CONTACT_RETENTION_DAYS,
): Promise<PurgedContacts> {
  const emailIsps = [...config.isps.values()]
    .filter((isp) => isp.delivery.mode === 'email')
    .map((isp) => isp.id);
  const notEmailIsp = await deleteInSlices(() => {
    const q = db('contacts');
    return emailIsps.length > 0 ? q.whereNotIn('isp_id', emailIsps) : q;
  });
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000);
  const expired = await deleteInSlices(() =>
    db('contacts')
      .where('created_at', '<', cutoff)
      .whereNotIn(
        'subscriber_id',
        db('deliveries').select('subscriber_id').where({ state: 'pending', channel: 'email' }),
      ),
  );
  return { notEmailIsp, expired };
}
