/**
 * The subscriber map in the connector database: customer ref to subscriber id, the state last
 * applied for each subscriber, and the refs of erased subscribers. With `subscriber-writes.ts`
 * (its writes), the only module that touches the `subscribers` table; refs never leave through
 * it except back to the connector's own callers.
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
  /** When the last applied change took effect; a delta may not go back before it. */
  effectiveAt: Date | null;
}

/**
 * How to reach a subscriber with their key, as the feed gave it with their subscribe. Plain
 * text held in memory only: it is sealed when rendered into the write, and kept only for ISPs
 * whose keys go out by e-mail.
 */
export interface SubscriberContact {
  email: string | null;
  language: string | null;
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
  /** Set when the change subscribes (or re-subscribes): the record's contact fields. */
  contact?: SubscriberContact;
}

interface SubscriberRow {
  customer_ref: string;
  subscriber_id: string;
  status: SubscriptionStatus;
  offer: string | null;
  modules: string;
  version: number;
  last_feed_id: string | null;
  effective_at: Date | null;
}

const STATE_COLUMNS = [
  'customer_ref',
  'subscriber_id',
  'status',
  'offer',
  'modules',
  'version',
  'last_feed_id',
  'effective_at',
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
    effectiveAt: row.effective_at,
  };
}

/** Rows the database stream holds ahead of its reader. */
const STREAM_AHEAD_ROWS = 256;

/**
 * Every subscriber of an ISP in customer-ref order (one clustered scan of the primary key),
 * handed over in the small batches the stream has ready, so that no row waits long in memory:
 * rows held for long reach V8's old generation, and pages of 5,000 rows left a million-row
 * XML diff near 300 MB of RSS where this stays under 200. The stream holds one connection
 * until the scan ends. Byte order of utf8mb4_bin equals JavaScript string order for the refs
 * the mapper admits (no characters outside the BMP), so the caller can merge the batches with
 * a feed sorted in JavaScript.
 */
export function subscriberBatches(db: Db, ispId: string): AsyncGenerator<StoredSubscriber[]> {
  return subscriberColumnBatches(db, ispId, STATE_COLUMNS, toStored);
}

/** What reconciliation needs of a subscriber: no ids, versions or dates to decode. */
export interface SubscriberStatus {
  customerRef: string;
  status: StoredSubscriber['status'];
  modules: string[];
}

/** {@link subscriberBatches} with only the ref, status and modules of each subscriber. */
export function subscriberStatusBatches(db: Db, ispId: string): AsyncGenerator<SubscriberStatus[]> {
  return subscriberColumnBatches(
    db,
    ispId,
    ['customer_ref', 'status', 'modules'],
    (row: Pick<SubscriberRow, 'customer_ref' | 'status' | 'modules'>) => ({
      customerRef: row.customer_ref,
      status: row.status,
      modules: row.modules === '' ? [] : row.modules.split(','),
    }),
  );
}

async function* subscriberColumnBatches<R, T>(
  db: Db,
  ispId: string,
  columns: readonly string[],
  map: (row: R) => T,
): AsyncGenerator<T[]> {
  const stream = db('subscribers')
    .select(columns)
    .where({ isp_id: ispId })
    .orderBy('customer_ref')
    .stream({ highWaterMark: STREAM_AHEAD_ROWS });
  let ended = false;
  let failure: { err: unknown } | undefined;
  stream.once('end', () => {
    ended = true;
  });
  stream.once('error', (err: unknown) => {
    failure = { err };
  });
  try {
    for (;;) {
      const batch: T[] = [];
      for (let row = stream.read(); row !== null; row = stream.read()) batch.push(map(row as R));
      if (failure) throw failure.err;
      if (batch.length > 0) yield batch;
      else if (ended) return;
      else await readable(stream);
    }
  } finally {
    stream.destroy();
  }
}

/** Resolves when the stream has rows to read, has ended, or has failed. */
function readable(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('readable', done);
      stream.off('end', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('readable', done);
    stream.on('end', done);
    stream.on('error', done);
  });
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

/** Whether the ISP has a subscriber a snapshot could still cancel (active or suspended). */
export async function hasLiveSubscribers(db: Db, ispId: string): Promise<boolean> {
  const row = await db('subscribers')
    .select('customer_ref')
    .where({ isp_id: ispId })
    .whereIn('status', ['active', 'suspended'])
    .first();
  return row !== undefined;
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

/**
 * The current versions of some subscribers, share-locked until the caller's transaction ends:
 * an intake writing a newer change of one of them waits for that commit. Erased subscribers
 * (no row) are absent from the map.
 */
export async function lockSubscriberVersions(
  trx: Knex.Transaction,
  subscriberIds: readonly string[],
): Promise<Map<string, number>> {
  if (subscriberIds.length === 0) return new Map();
  const rows: { subscriber_id: string; version: number }[] = await trx('subscribers')
    .select('subscriber_id', 'version')
    .whereIn('subscriber_id', subscriberIds)
    .forShare();
  return new Map(rows.map((r) => [r.subscriber_id, Number(r.version)]));
}

/**
 * Moves a subscriber out of the map into `erased_subscribers`: its ref is free again (a customer
 * who comes back gets a new subscriber id), and the old pair stays for billing of closed
 * periods. Returns false when the ref no longer maps to `subscriberId` (moved already).
 */
export async function moveToErased(
  trx: Knex.Transaction,
  erased: {
    ispId: string;
    customerRef: string;
    subscriberId: string;
    receiptId: string | null;
    erasedAt: Date;
  },
): Promise<boolean> {
  const row = await trx('subscribers')
    .select('subscriber_id')
    .where({ isp_id: erased.ispId, customer_ref: erased.customerRef })
    .forUpdate()
    .first();
  if (row?.subscriber_id !== erased.subscriberId) return false;
  await trx('erased_subscribers').insert({
    subscriber_id: erased.subscriberId,
    isp_id: erased.ispId,
    customer_ref: erased.customerRef,
    receipt_id: erased.receiptId,
    erased_at: erased.erasedAt,
  });
  await trx('subscribers')
    .where({ isp_id: erased.ispId, customer_ref: erased.customerRef })
    .delete();
  return true;
}

/** The subscriber id a ref had when it was last erased, if it ever was. */
export async function lastErasedIdOf(
  db: Db,
  ispId: string,
  customerRef: string,
): Promise<string | undefined> {
  const row = await db('erased_subscribers')
    .select('subscriber_id')
    .where({ isp_id: ispId, customer_ref: customerRef })
    .orderBy('erased_at', 'desc')
    .first();
  return row?.subscriber_id;
}
