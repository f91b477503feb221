/**
 * Records what the subscription server answered for one batch, in one connector transaction:
 * a delivery row per key to hand over (key and link sealed with the vault), a rejection row per
 * refused command, and the batch's final state when nothing is left to send. A batch's final
 * answer also deletes the addresses its subscribes no longer need (connectors/contacts-retention.ts). The batch row is
 * locked first and every insert skips what an earlier attempt already wrote, so a repeated job,
 * a retry after a deferral or two workers racing on one batch record each thing once. The
 * re-issue of lost keys happens under that same lock: decided on the rows the lock shows and
 * recorded before it is released, so a second attempt can never void a key the first recorded.
 */

import { decodeCommands } from '../../mappings/provisioning-command.js';
import type { Db } from '../../platform/db.js';
import { InternalError, isRelaisError } from '../../platform/errors.js';
import { releaseBatchContacts } from '../contacts-retention.js';
import type { Vault } from '../vault.js';
import { recordedLicences } from './batch-store.js';

/** How an ISP's keys reach its customers; `none`: they do not go through the connector. */
export type DeliveryChannel = 'email' | 'return-file' | 'none';

/** A key the server issued (first answer of a subscribe, or a re-issue). */
export interface IssuedKey {
  subscriberId: string;
  licenceId: string;
  /** The version of the command that got the key: of two keys for one licence, the higher works. */
  version: number;
  key: string;
  downloadUrl: string;
  /** ISO 8601 UTC. */
  downloadExpiresAt: string;
}

/** A command the server refused for good. */
export interface RefusedCommand {
  commandKey: string;
  subscriberId: string;
  code: string;
  message: string;
}

/** A subscribe the server applied in an earlier attempt: its replay carries no key. */
export interface UnrecordedLicence {
  subscriberId: string;
  licenceId: string;
  commandKey: string;
  version: number;
}

/** What asking the server for a new key gave: a key, a refusal for a person, or nothing to do. */
export type ReissueResult =
  | { issued: IssuedKey }
  | { refused: RefusedCommand }
  | { skipped: 'activated' };

export interface BatchOutcome {
  ispId: string;
  batchId: number;
  channel: DeliveryChannel;
  issued: IssuedKey[];
  refused: RefusedCommand[];
  /** Commands applied now or earlier (applied + replayed). */
  applied: number;
  /** Whether every command has a final answer; if not, the batch stays unsent. */
  isComplete: boolean;
  /** Why the batch is not complete (a code and counts), kept in `last_error`. */
  pendingReason?: string;
  /**
   * Replayed subscribes: those with no delivery row in this batch lost their key (the server
   * committed, the connector did not) and get a new one from `reissue`, under the batch lock.
   */
  unrecorded?: UnrecordedLicence[];
  /**
   * Asks the server for a new key. Throws for a failure worth retrying: the re-issue stops
   * there, what it got is recorded and the batch stays unsent.
   */
  reissue?: (licence: UnrecordedLicence) => Promise<ReissueResult>;
}

export interface RecordedBatch {
  /** The batch was already sent when the lock was taken: nothing was written. */
  wasFinal: boolean;
  deliveries: number;
  rejections: number;
  state: 'sent' | 'queued';
  /** Keys re-issued under the lock (included in `deliveries`). */
  reissued: number;
  /** The retryable failure that stopped the re-issue; the batch was left unsent. */
  failure?: unknown;
}

/** The context a delivery secret is sealed under: it opens for this licence and no other. */
export function deliverySecretContext(licenceId: string): string {
  return `delivery:${licenceId}`;
}

const ROWS_PER_INSERT = 500;
const DELIVERY_COLUMNS = [
  'isp_id',
  'subscriber_id',
  'licence_id',
  'batch_id',
  'channel',
  'secret',
  'link_expires_at',
  'state',
  'attempts',
  'created_at',
] as const;
const MESSAGE_CHARS = 255;

function errorText(err: unknown): string {
  return isRelaisError(err) ? `${err.code}: ${err.message}` : String((err as Error)?.message);
}

export async function recordBatchResults(
  db: Db,
  vault: Vault,
  outcome: BatchOutcome,
  now: Date,
): Promise<RecordedBatch> {
  return db.transaction(async (trx) => {
    const batch = await trx('provisioning_batches')
      .select('state')
      .where({ id: outcome.batchId })
      .forUpdate()
      .first();
    if (!batch) {
      throw new InternalError('INTERNAL', `no provisioning batch ${outcome.batchId}`);
    }
    if (batch.state === 'sent') {
      return { wasFinal: true, deliveries: 0, rejections: 0, state: 'sent' as const, reissued: 0 };
    }

    const known = await recordedLicences(trx, outcome.batchId);
    const issued = [...outcome.issued];
    const refused = [...outcome.refused];
    let reissued = 0;
    let failure: unknown;
    for (const licence of outcome.unrecorded ?? []) {
      if (known.has(licence.licenceId) || !outcome.reissue) continue;
      let result: ReissueResult;
      try {
        result = await outcome.reissue(licence);
      } catch (err) {
        failure = err;
        break;
      }
      if ('issued' in result) {
        issued.push(result.issued);
        reissued++;
      } else if ('refused' in result) refused.push(result.refused);
    }

    // One licence can get two keys in one batch (a subscribe, a cancel, a subscribe again).
    // The server applies a batch in version order whatever the order of the request, so the
    // key of the highest version is the one that works.
    const latest = new Map<string, IssuedKey>();
    for (const key of issued) {
      const held = latest.get(key.licenceId);
      if (!held || key.version >= held.version) latest.set(key.licenceId, key);
    }
    const isHandedOver = outcome.channel !== 'none';
    const deliveryRows = [...latest.values()]
      .filter((issued) => !known.has(issued.licenceId))
      .map((issued) => ({
        isp_id: outcome.ispId,
        subscriber_id: issued.subscriberId,
        licence_id: issued.licenceId,
        batch_id: outcome.batchId,
        channel: outcome.channel,
        // An ISP that hands no key over through Relais gets no secret kept at all.
        secret: isHandedOver
          ? vault.seal(
              JSON.stringify({ key: issued.key, downloadUrl: issued.downloadUrl }),
              deliverySecretContext(issued.licenceId),
            )
          : null,
        link_expires_at: new Date(issued.downloadExpiresAt),
        state: isHandedOver ? 'pending' : 'skipped',
        attempts: 0,
        created_at: now,
      }));
    for (let i = 0; i < deliveryRows.length; i += ROWS_PER_INSERT) {
      const rows = deliveryRows.slice(i, i + ROWS_PER_INSERT);
      // Plain SQL with placeholders: knex's builder cost more than the insert for 500 rows.
      const values = rows.flatMap((r) => DELIVERY_COLUMNS.map((c) => r[c]));
      const tuple = `(${DELIVERY_COLUMNS.map(() => '?').join(',')})`;
      await trx.raw(
        `INSERT INTO deliveries (${DELIVERY_COLUMNS.join(',')}) VALUES ${rows.map(() => tuple).join(',')}`,
        values,
      );
    }

    const rejectionRows = refused.map((refused) => ({
      isp_id: outcome.ispId,
      batch_id: outcome.batchId,
      command_key: refused.commandKey,
      subscriber_id: refused.subscriberId,
      code: refused.code.slice(0, 64),
      message: refused.message.slice(0, MESSAGE_CHARS),
      created_at: now,
    }));
    for (let i = 0; i < rejectionRows.length; i += ROWS_PER_INSERT) {
      // INSERT IGNORE on the unique command key: a rejection seen again adds nothing.
      await trx('provisioning_rejections')
        .insert(rejectionRows.slice(i, i + ROWS_PER_INSERT))
        .onConflict()
        .ignore();
    }

    const isComplete = outcome.isComplete && failure === undefined;
    const update: Record<string, unknown> = { attempts: trx.raw('attempts + 1') };
    if (isComplete) {
      Object.assign(update, {
        state: 'sent',
        sent_at: now,
        applied: outcome.applied,
        rejected: refused.length,
        last_error: null,
      });
    } else {
      update.state = 'queued'; // a failed batch a person retried is back in the queue
      const reason =
        failure !== undefined
          ? errorText(failure)
          : (outcome.pendingReason ?? 'not every command finished');
      update.last_error = reason.slice(0, MESSAGE_CHARS);
    }
    await trx('provisioning_batches').where({ id: outcome.batchId }).update(update);
    // Every command has its answer: an address no e-mail of this batch will use goes now.
    if (isComplete && outcome.channel === 'email') {
      const stored = await trx('provisioning_batches')
        .select('commands')
        .where({ id: outcome.batchId })
        .first();
      await releaseBatchContacts(trx, outcome.ispId, decodeCommands(stored.commands));
    }
    return {
      wasFinal: false,
      deliveries: deliveryRows.length,
      rejections: rejectionRows.length,
      state: isComplete ? ('sent' as const) : ('queued' as const),
      reissued,
      ...(failure !== undefined ? { failure } : {}),
    };
  });
}
