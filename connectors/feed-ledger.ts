/**
 * The feed ledger: one row per file or push received, written before anything is parsed.
 *
 * Duplicate detection rests on the database, not on memory or job ids: a feed owns its
 * content's SHA-256 in `content_key` (unique per ISP), so the same bytes again, under any name
 * and through any transport, insert a `duplicate` row pointing at the original. A feed that
 * fails releases its key, so the ISP can resend the same file once the cause is fixed.
 */
import type { Knex } from 'knex';
import type { Db } from '../platform/db.js';
import { newId } from '../platform/ids.js';

export const FEED_STATUSES = [
  'received',
  'parsing',
  'applied',
  'held',
  'failed',
  'duplicate',
] as const;
export type FeedStatus = (typeof FEED_STATUSES)[number];
export const FEED_SOURCES = ['local', 'sftp', 'http', 'cli'] as const;
export type FeedSource = (typeof FEED_SOURCES)[number];

/** Statuses after which nothing more happens to a feed without a person. */
export const FINAL_STATUSES: ReadonlySet<FeedStatus> = new Set(['applied', 'failed', 'duplicate']);

export interface DiffCounts {
  subscribes: number;
  changes: number;
  suspends: number;
  resumes: number;
  cancels: number;
}

export interface FeedCounts extends DiffCounts {
  records: number;
  applied: number;
  rejected: number;
  batches: number;
}

export interface Feed extends FeedCounts {
  id: string;
  ispId: string;
  source: FeedSource;
  name: string;
  sizeBytes: number;
  sourceMtimeMs: number | null;
  sha256: string;
  status: FeedStatus;
  duplicateOf: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  receivedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Set when an operator approved this held snapshot; it is then applied without the safety valve. */
  approvedAt: Date | null;
}

export interface ReceivedFile {
  ispId: string;
  source: FeedSource;
  /** Original file name (for a push, the name the ISP gave, or a generated one). */
  name: string;
  sizeBytes: number;
  sha256: string;
  sourceMtimeMs?: number;
}

interface FeedRow {
  id: string;
  isp_id: string;
  source: FeedSource;
  name: string;
  size_bytes: string | number;
  source_mtime_ms: string | number | null;
  sha256: string;
  status: FeedStatus;
  duplicate_of: string | null;
  records: number;
  applied: number;
  rejected: number;
  subscribes: number;
  changes: number;
  suspends: number;
  resumes: number;
  cancels: number;
  batches: number;
  error_code: string | null;
  error_message: string | null;
  received_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  approved_at: Date | null;
}

function toFeed(row: FeedRow): Feed {
  return {
    id: row.id,
    ispId: row.isp_id,
    source: row.source,
    name: row.name,
    sizeBytes: Number(row.size_bytes),
    sourceMtimeMs: row.source_mtime_ms === null ? null : Number(row.source_mtime_ms),
    sha256: row.sha256,
    status: row.status,
    duplicateOf: row.duplicate_of,
    records: row.records,
    applied: row.applied,
    rejected: row.rejected,
    subscribes: row.subscribes,
    changes: row.changes,
    suspends: row.suspends,
    resumes: row.resumes,
    cancels: row.cancels,
    batches: row.batches,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    receivedAt: row.received_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    approvedAt: row.approved_at,
  };
}

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: string }).code === 'ER_DUP_ENTRY';
}

export class FeedLedger {
  constructor(
    private readonly db: Db,
    /** When a file counts as received: the system clock, or the demo's simulated one. */
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /**
   * Records a received file. Returns the new feed, and the original when the content was
   * already received (the new row is then a `duplicate`).
   */
  async record(file: ReceivedFile, now = this.clock()): Promise<{ feed: Feed; original?: Feed }> {
    const base = {
      isp_id: file.ispId,
      source: file.source,
      name: file.name.slice(0, 255),
      size_bytes: file.sizeBytes,
      source_mtime_ms: file.sourceMtimeMs ?? null,
      sha256: file.sha256,
      received_at: now,
    };
    const id = newId('feed');
    try {
      await this.db('feeds').insert({ ...base, id, content_key: file.sha256, status: 'received' });
      return { feed: await this.getOrThrow(id) };
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const original = await this.db('feeds')
      .where({ isp_id: file.ispId, content_key: file.sha256 })
      .first();
    if (!original) return this.record(file, now); // the original failed meanwhile and released its key
    await this.db('feeds').insert({
      ...base,
      id,
      content_key: null,
      status: 'duplicate',
      duplicate_of: original.id,
      finished_at: now,
    });
    return { feed: await this.getOrThrow(id), original: toFeed(original) };
  }

  async get(id: string): Promise<Feed | undefined> {
    const row = await this.db('feeds').where({ id }).first();
    return row ? toFeed(row) : undefined;
  }

  private async getOrThrow(id: string): Promise<Feed> {
    return (await this.get(id)) as Feed;
  }

  async list(
    filter: { ispId?: string; status?: FeedStatus; limit?: number } = {},
  ): Promise<Feed[]> {
    const query = this.db('feeds').orderBy([
      { column: 'received_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
    if (filter.ispId) query.where({ isp_id: filter.ispId });
    if (filter.status) query.where({ status: filter.status });
    const rows: FeedRow[] = await query.limit(filter.limit ?? 50);
    return rows.map(toFeed);
  }

  /** Whether a polled file (same name, size and mtime) already has a feed that is not failed. */
  async isKnown(ispId: string, name: string, sizeBytes: number, mtimeMs: number): Promise<boolean> {
    const row = await this.db('feeds')
      .where({ isp_id: ispId, name, size_bytes: sizeBytes, source_mtime_ms: mtimeMs })
      .whereNot({ status: 'failed' })
      .first('id');
    return row !== undefined;
  }

  /** The oldest feed of the ISP still to process (received, or interrupted while parsing). */
  async nextToProcess(ispId: string): Promise<Feed | undefined> {
    const row = await this.db('feeds')
      .where({ isp_id: ispId })
      .whereIn('status', ['received', 'parsing'])
      .orderBy([{ column: 'received_at' }, { column: 'id' }])
      .first();
    return row ? toFeed(row) : undefined;
  }

  async markParsing(id: string, now = new Date()): Promise<void> {
    await this.db('feeds')
      .where({ id })
      .update({ status: 'parsing', started_at: now, error_code: null, error_message: null });
  }

  async markApplied(id: string, counts: FeedCounts, now = new Date()): Promise<void> {
    await this.db('feeds')
      .where({ id })
      .update({ status: 'applied', ...countColumns(counts), finished_at: now });
  }

  async markHeld(id: string, counts: FeedCounts, reason: string, now = new Date()): Promise<void> {
    await this.db('feeds')
      .where({ id })
      .update({
        status: 'held',
        ...countColumns(counts),
        error_code: null,
        error_message: reason,
        finished_at: now,
      });
  }

  /** A failed feed gives back its content key: the same bytes may be sent again. */
  async markFailed(
    id: string,
    failure: { code: string; message: string; counts?: Partial<FeedCounts> },
    now = new Date(),
    trx: Knex | Knex.Transaction = this.db,
  ): Promise<void> {
    await trx('feeds')
      .where({ id })
      .update({
        status: 'failed',
        content_key: null,
        ...(failure.counts ? countColumns(failure.counts) : {}),
        error_code: failure.code,
        error_message: failure.message.slice(0, 2000),
        finished_at: now,
      });
  }

  /**
   * An operator approved a held snapshot: back to `received`, stamped, so the next run applies
   * it without the safety valve. Returns false when the feed was no longer held.
   */
  async approve(id: string, now = new Date()): Promise<boolean> {
    const updated = await this.db('feeds')
      .where({ id, status: 'held' })
      .update({ status: 'received', approved_at: now, error_message: null, finished_at: null });
    return updated === 1;
  }

  /** An operator dropped a held snapshot. Returns false when the feed was no longer held. */
  async drop(id: string, now = new Date()): Promise<boolean> {
    const updated = await this.db('feeds').where({ id, status: 'held' }).update({
      status: 'failed',
      content_key: null,
      error_code: 'FEED_HELD_DROPPED',
      error_message: 'held snapshot dropped by an operator',
      finished_at: now,
    });
    return updated === 1;
  }

  async countHeld(ispId: string): Promise<number> {
    const row = await this.db('feeds')
      .where({ isp_id: ispId, status: 'held' })
      .count({ n: '*' })
      .first();
    return Number(row?.n ?? 0);
  }

  /** Held snapshots of the ISP older than `feed`: a newer snapshot supersedes them. */
  async supersedeHeld(ispId: string, feed: Feed, now = new Date()): Promise<number> {
    return this.db('feeds')
      .where({ isp_id: ispId, status: 'held' })
      .where('received_at', '<', feed.receivedAt)
      .update({
        status: 'failed',
        content_key: null,
        error_code: 'FEED_SUPERSEDED',
        error_message: `superseded by the newer snapshot ${feed.id}`,
        finished_at: now,
      });
  }

  /**
   * Replaces the rejects the ledger shows for a feed (a resumed run writes them again). Only
   * line, field and reason are kept: a value may be personal, so it never reaches this table.
   */
  async recordRejects(
    feedId: string,
    rejects: readonly { line: number; field: string | null; reason: string }[],
  ): Promise<void> {
    const rows = rejects.map((r) => ({
      feed_id: feedId,
      line: r.line,
      field: r.field?.slice(0, 64) ?? null,
      reason: r.reason.slice(0, 255),
    }));
    await this.db.transaction(async (trx) => {
      await trx('feed_rejects').where({ feed_id: feedId }).delete();
      for (let i = 0; i < rows.length; i += 500)
        await trx('feed_rejects').insert(rows.slice(i, i + 500));
    });
  }

  async rejectsOf(
    feedId: string,
    limit = 1_000,
  ): Promise<{ line: number; field: string | null; reason: string }[]> {
    return this.db('feed_rejects')
      .select('line', 'field', 'reason')
      .where({ feed_id: feedId })
      .orderBy('line')
      .limit(limit);
  }
}

function countColumns(counts: Partial<FeedCounts>): Partial<FeedCounts> {
  const keys: (keyof FeedCounts)[] = [
    'records',
    'applied',
    'rejected',
    'subscribes',
    'changes',
    'suspends',
    'resumes',
    'cancels',
    'batches',
  ];
  return Object.fromEntries(keys.filter((k) => counts[k] !== undefined).map((k) => [k, counts[k]]));
}
