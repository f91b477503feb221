/**
 * The subscriber map in the connector database: customer ref to subscriber id, and the state
 * last applied for each subscriber. The only module that reads or writes the `subscribers`
 * table; refs never leave through it except back to the connector's own callers.
 */
import type { Knex } from 'knex';
import mysql from 'mysql2';
import type { SubscriptionStatus } from '../config/isp-schema.js';
import type { Db } from '../platform/db.js';
import { encodeCommands, type ProvisioningCommand } from './provisioning-command.js';

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

/** A UTC DATETIME(3) literal, as the connection's `timezone: 'Z'` would write it. */
function sqlDateTime(date: Date): string {
  const iso = date.toISOString();
  return `'${iso.slice(0, 10)} ${iso.slice(11, 23)}'`;
}

/**
 * Escapes values that repeat across rows (statuses, offers, module lists) once per distinct
 * value: a first load of a million customers repeats a handful of them a million times.
 */
class RepeatedValues {
  private readonly escaped = new Map<string, string>();

  of(value: string | null): string {
    if (value === null) return 'NULL';
    let sql = this.escaped.get(value);
    if (sql === undefined) {
      sql = mysql.escape(value);
      if (this.escaped.size < 10_000) this.escaped.set(value, sql);
    }
    return sql;
  }
}

const repeated = new RepeatedValues();

/**
 * One multi-row upsert of subscriber rows keyed on the primary key; `created_at` and
 * `subscriber_id` of a known subscriber are never touched. Built by hand rather than through
 * the query builder: at a million rows its per-value compiling and escaping cost more than the
 * database's own work. Every value goes through mysql2's escaping or is a number or a date.
 */
function upsertSql(
  ispId: string,
  feedId: string,
  changes: readonly SubscriberChange[],
  now: Date,
): string {
  const constants = {
    isp: mysql.escape(ispId),
    feed: mysql.escape(feedId),
    now: sqlDateTime(now),
  };
  const values: string[] = new Array(changes.length);
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i] as SubscriberChange;
    const effective = c.effectiveAt === null ? 'NULL' : sqlDateTime(c.effectiveAt);
    values[i] =
      `(${constants.isp},${mysql.escape(c.customerRef)},${mysql.escape(c.subscriberId)},` +
      `${repeated.of(c.status)},${repeated.of(c.offer)},${repeated.of(c.modules.join(','))},` +
      `${effective},${Number(c.version)},${constants.feed},${constants.now},${constants.now})`;
  }
  return (
    'INSERT INTO subscribers (isp_id, customer_ref, subscriber_id, status, offer, modules, effective_at, version, last_feed_id, created_at, updated_at) VALUES ' +
    values.join(',') +
    ' ON DUPLICATE KEY UPDATE status = VALUES(status), offer = VALUES(offer), modules = VALUES(modules), effective_at = VALUES(effective_at), version = VALUES(version), last_feed_id = VALUES(last_feed_id), updated_at = VALUES(updated_at)'
  );
}

/**
 * Writes changes and their provisioning-outbox rows in the caller's transaction: the changes
 * in one multi-row upsert, their commands as one outbox row (one future job) per
 * `changesPerBatch` changes, so a subscriber's commands always travel in one batch. Returns
 * how many outbox rows were written.
 */
export async function applyChanges(
  trx: Knex.Transaction,
  ispId: string,
  feedId: string,
  changes: readonly SubscriberChange[],
  now: Date,
  changesPerBatch = changes.length,
): Promise<{ batches: number }> {
  if (changes.length === 0) return { batches: 0 };
  await trx.raw(upsertSql(ispId, feedId, changes, now));

  const batches = [];
  for (let from = 0; from < changes.length; from += changesPerBatch) {
    const commands = changes.slice(from, from + changesPerBatch).flatMap((c) => c.commands);
    if (commands.length === 0) continue;
    batches.push({
      isp_id: ispId,
      feed_id: feedId,
      command_count: commands.length,
      ...countKinds(commands),
      commands: encodeCommands(commands),
      state: 'pending',
      created_at: now,
    });
  }
  if (batches.length > 0) await trx('provisioning_batches').insert(batches);
  return { batches: batches.length };
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
