/**
 * The subscriber map in the connector database: customer ref to subscriber id, and the state
 * last applied for each subscriber. The only module that reads or writes the `subscribers`
 * table; refs never leave through it except back to the connector's own callers.
 */
import type { Knex } from 'knex';
import type { SubscriptionStatus } from '../config/isp-schema.js';
import type { Db } from '../platform/db.js';
import type { ProvisioningCommand } from './provisioning-command.js';

/** A subscriber's stored state, as the diff compares it. */
export interface StoredSubscriber {
  customerRef: string;
  subscriberId: string;
  status: SubscriptionStatus;
  offer: string | null;
  modules: string[];
  version: number;
  lastFeedId: string | null;
}

/** The new state of one subscriber after a feed, with the commands that announce it. */
export interface SubscriberChange {
  customerRef: string;
  subscriberId: string;
  isNew: boolean;
  status: SubscriptionStatus;
  offer: string | null;
  modules: string[];
  effectiveAt: Date | null;
  version: number;
  commands: ProvisioningCommand[];
}

interface SubscriberRow {
  customer_ref: string;
  subscriber_id: string;
  status: SubscriptionStatus;
  offer: string | null;
  modules: string;
  version: number;
  last_feed_id: string | null;
}

const STATE_COLUMNS = [
  'customer_ref',
  'subscriber_id',
  'status',
  'offer',
  'modules',
  'version',
  'last_feed_id',
];

function toStored(row: SubscriberRow): StoredSubscriber {
  return {
    customerRef: row.customer_ref,
    subscriberId: row.subscriber_id,
    status: row.status,
    offer: row.offer,
    modules: row.modules === '' ? [] : row.modules.split(','),
    version: Number(row.version),
    lastFeedId: row.last_feed_id,
  };
}

/**
 * Every subscriber of an ISP in customer-ref order (the primary key order, so one clustered
 * scan). Byte order of utf8mb4_bin equals JavaScript string order for the refs the mapper
 * admits (no characters outside the BMP).
 */
export async function* streamSubscribers(db: Db, ispId: string): AsyncGenerator<StoredSubscriber> {
  const stream = db('subscribers')
    .select(STATE_COLUMNS)
    .where({ isp_id: ispId })
    .orderBy('customer_ref')
    .stream();
  try {
    for await (const row of stream) yield toStored(row as SubscriberRow);
  } finally {
    stream.destroy();
  }
}

/** The stored state of the given refs (any order in, ref order out). */
export async function findSubscribers(
  db: Db,
  ispId: string,
  refs: readonly string[],
): Promise<StoredSubscriber[]> {
  if (refs.length === 0) return [];
  const rows: SubscriberRow[] = await db('subscribers')
    .select(STATE_COLUMNS)
    .where({ isp_id: ispId })
    .whereIn('customer_ref', refs)
    .orderBy('customer_ref');
  return rows.map(toStored);
}

export async function countActive(db: Db, ispId: string): Promise<number> {
  const row = await db('subscribers')
    .where({ isp_id: ispId, status: 'active' })
    .count({ n: '*' })
    .first();
  return Number(row?.n ?? 0);
}

/** The subscriber id of one ref, or undefined; for billing's map-back and for tests. */
export async function subscriberIdOf(
  db: Db,
  ispId: string,
  customerRef: string,
): Promise<string | undefined> {
  const row = await db('subscribers')
    .select('subscriber_id')
    .where({ isp_id: ispId, customer_ref: customerRef })
    .first();
  return row?.subscriber_id;
}

/**
 * Writes one batch of changes and its provisioning-outbox row in the caller's transaction. New
 * subscribers are inserted, known ones updated, in one multi-row statement keyed on the primary
 * key; `created_at` and `subscriber_id` of a known subscriber are never touched.
 */
export async function applyChanges(
  trx: Knex.Transaction,
  ispId: string,
  feedId: string,
  changes: readonly SubscriberChange[],
  now: Date,
): Promise<{ batchId: number | null }> {
  if (changes.length === 0) return { batchId: null };
  const rows = changes.map((c) => ({
    isp_id: ispId,
    customer_ref: c.customerRef,
    subscriber_id: c.subscriberId,
    status: c.status,
    offer: c.offer,
    modules: c.modules.join(','),
    effective_at: c.effectiveAt,
    version: c.version,
    last_feed_id: feedId,
    created_at: now,
    updated_at: now,
  }));
  await trx('subscribers')
    .insert(rows)
    .onConflict(['isp_id', 'customer_ref'])
    .merge(['status', 'offer', 'modules', 'effective_at', 'version', 'last_feed_id', 'updated_at']);

  const commands = changes.flatMap((c) => c.commands);
  if (commands.length === 0) return { batchId: null };
  const [batchId] = await trx('provisioning_batches').insert({
    isp_id: ispId,
    feed_id: feedId,
    command_count: commands.length,
    ...countKinds(commands),
    commands: JSON.stringify(commands),
    state: 'pending',
    created_at: now,
  });
  return { batchId: Number(batchId) };
}

const KIND_COLUMNS = {
  subscribe: 'subscribes',
  change: 'changes',
  suspend: 'suspends',
  resume: 'resumes',
  cancel: 'cancels',
} as const;

function countKinds(commands: readonly ProvisioningCommand[]): Record<string, number> {
  const counts: Record<string, number> = {
    subscribes: 0,
    changes: 0,
    suspends: 0,
    resumes: 0,
    cancels: 0,
  };
  for (const command of commands)
    counts[KIND_COLUMNS[command.kind]] = (counts[KIND_COLUMNS[command.kind]] ?? 0) + 1;
  return counts;
}

export interface CommandTotals {
  subscribes: number;
  changes: number;
  suspends: number;
  resumes: number;
  cancels: number;
  batches: number;
}

/** Commands a feed produced, by kind, over all its batches (exact across interrupted runs). */
export async function commandTotals(db: Db, feedId: string): Promise<CommandTotals> {
  const row = await db('provisioning_batches')
    .where({ feed_id: feedId })
    .sum({
      subscribes: 'subscribes',
      changes: 'changes',
      suspends: 'suspends',
      resumes: 'resumes',
      cancels: 'cancels',
    })
    .count({ batches: '*' })
    .first();
  const n = (v: unknown) => Number(v ?? 0);
  return {
    subscribes: n(row?.subscribes),
    changes: n(row?.changes),
    suspends: n(row?.suspends),
    resumes: n(row?.resumes),
    cancels: n(row?.cancels),
    batches: n(row?.batches),
  };
}
