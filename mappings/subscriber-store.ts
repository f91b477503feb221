/**
 * The subscriber map in the connector database: customer ref to subscriber id, and the state
 * last applied for each subscriber. The only module that reads or writes the `subscribers`
 * table; refs never leave through it except back to the connector's own callers.
 */
import type { Knex } from 'knex';
import mysql from 'mysql2';
import type { SubscriptionStatus } from '../config/isp-schema.js';
import type { Db } from '../platform/db.js';
import { InternalError } from '../platform/errors.js';
import {
  type CommandKind,
  encodeCommands,
  type ProvisioningCommand,
} from './provisioning-command.js';

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
export async function* subscriberBatches(
  db: Db,
  ispId: string,
): AsyncGenerator<StoredSubscriber[]> {
  const stream = db('subscribers')
    .select(STATE_COLUMNS)
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
      const batch: StoredSubscriber[] = [];
      for (let row = stream.read(); row !== null; row = stream.read()) {
        batch.push(toStored(row as SubscriberRow));
      }
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

/** Literals of recent dates: effective dates repeat (most are midnights) across a feed. */
const dateLiterals = new Map<number, string>();

/** A UTC DATETIME(3) literal, as the connection's `timezone: 'Z'` would write it. */
function sqlDateTime(date: Date): string {
  const ms = date.getTime();
  let literal = dateLiterals.get(ms);
  if (literal === undefined) {
    const iso = date.toISOString();
    literal = `'${iso.slice(0, 10)} ${iso.slice(11, 23)}'`;
    if (dateLiterals.size >= 10_000) dateLiterals.clear();
    dateLiterals.set(ms, literal);
  }
  return literal;
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

/** Strings that need no escaping in a quoted literal: the usual ids and customer refs. */
const PLAIN = /^[\w.:@+-]*$/;

function quote(value: string): string {
  return PLAIN.test(value) ? `'${value}'` : mysql.escape(value);
}

const ID_SHAPE = /^[a-z]+_[0-9a-z]{26}$/;

/** A subscriber id as a literal: ids are ours (`newId`), so their shape needs no escaping. */
function idLiteral(id: string): string {
  if (!ID_SHAPE.test(id)) throw new InternalError('INTERNAL', 'a subscriber id is not one of ours');
  return `'${id}'`;
}

/** The database's clock, in UTC (the session time zone is UTC), for the commit's own time. */
const NOW_SQL = 'UTC_TIMESTAMP(3)';

/**
 * One multi-row upsert of subscriber rows keyed on the primary key; `created_at` and
 * `subscriber_id` of a known subscriber are never touched. Built by hand rather than through
 * the query builder: at a million rows its per-value compiling and escaping cost more than the
 * database's own work. Every value goes through mysql2's escaping or is a number or a date.
 */
function upsertSql(ispId: string, feedId: string, changes: readonly SubscriberChange[]): string {
  const isp = mysql.escape(ispId);
  const feed = mysql.escape(feedId);
  const values: string[] = new Array(changes.length);
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i] as SubscriberChange;
    const effective = c.effectiveAt === null ? 'NULL' : sqlDateTime(c.effectiveAt);
    values[i] =
      `(${isp},${quote(c.customerRef)},${idLiteral(c.subscriberId)},` +
      `${repeated.of(c.status)},${repeated.of(c.offer)},${repeated.of(c.modules.join(','))},` +
      `${effective},${Number(c.version)},${feed},${NOW_SQL},${NOW_SQL})`;
  }
  return (
    'INSERT INTO subscribers (isp_id, customer_ref, subscriber_id, status, offer, modules, effective_at, version, last_feed_id, created_at, updated_at) VALUES ' +
    values.join(',') +
    ' ON DUPLICATE KEY UPDATE status = VALUES(status), offer = VALUES(offer), modules = VALUES(modules), effective_at = VALUES(effective_at), version = VALUES(version), last_feed_id = VALUES(last_feed_id), updated_at = VALUES(updated_at)'
  );
}

/** The outbox rows of some changes: one row (one future job) per `changesPerBatch` changes. */
function outboxSql(
  ispId: string,
  feedId: string,
  changes: readonly SubscriberChange[],
  changesPerBatch: number,
): { sql: string; batches: number } | undefined {
  const rows: string[] = [];
  for (let from = 0; from < changes.length; from += changesPerBatch) {
    const commands = changes.slice(from, from + changesPerBatch).flatMap((c) => c.commands);
    if (commands.length === 0) continue;
    const k = countKinds(commands);
    rows.push(
      `(${mysql.escape(ispId)},${mysql.escape(feedId)},${commands.length},` +
        `${k.subscribes},${k.changes},${k.suspends},${k.resumes},${k.cancels},` +
        `${mysql.escape(encodeCommands(commands))},'pending',${NOW_SQL})`,
    );
  }
  if (rows.length === 0) return undefined;
  const sql =
    'INSERT INTO provisioning_batches (isp_id, feed_id, command_count, subscribes, changes, suspends, resumes, cancels, commands, state, created_at) VALUES ' +
    rows.join(',');
  return { sql, batches: rows.length };
}

/**
 * Some changes made ready to write in one transaction: the statements that upsert the
 * subscribers and add their provisioning-outbox rows, so that a subscriber's change and its
 * commands commit together. A subscriber's commands always travel in one batch.
 */
export interface PreparedWrite {
  statements: string[];
  changes: number;
  batches: number;
}

export function prepareChanges(
  ispId: string,
  feedId: string,
  changes: readonly SubscriberChange[],
  changesPerBatch = changes.length,
): PreparedWrite {
  if (changes.length === 0) return { statements: [], changes: 0, batches: 0 };
  const statements = [upsertSql(ispId, feedId, changes)];
  const outbox = outboxSql(ispId, feedId, changes, changesPerBatch);
  if (outbox) statements.push(outbox.sql);
  return { statements, changes: changes.length, batches: outbox?.batches ?? 0 };
}

/** Runs a prepared write in the caller's transaction. */
export async function applyPrepared(trx: Knex.Transaction, prepared: PreparedWrite): Promise<void> {
  for (const statement of prepared.statements) await trx.raw(statement);
}

const KIND_COLUMNS = {
  subscribe: 'subscribes',
  change: 'changes',
  suspend: 'suspends',
  resume: 'resumes',
  cancel: 'cancels',
} as const;
type KindColumn = (typeof KIND_COLUMNS)[CommandKind];

function countKinds(commands: readonly ProvisioningCommand[]): Record<KindColumn, number> {
  const counts: Record<KindColumn, number> = {
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
