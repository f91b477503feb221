/**
 * Where the diff's subscriber changes go: straight to the database (`ChangeApplier`), or into a
 * change list on disk (`ChangeListWriter`) to be applied once the feed's fate is decided.
 *
 * Either way changes are grouped into transactions of `transactionSize` changes and rendered
 * into their SQL (subscriber upserts and provisioning-outbox rows) as they come, so the change
 * list holds ready statements and applying it costs Node almost nothing: on a first load the
 * database, not the connector, sets the pace. Transactions touch disjoint subscribers, so their
 * order does not matter; `concurrency` of them run at once. Committed work is stamped with the
 * feed, which is what lets an interrupted feed resume where it stopped.
 *
 * @remarks The first failed transaction stops the writes: later ones are refused and `close()`
 * throws it, after the transactions in flight have settled (each is atomic, none half-done).
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import type { SubscriberChange } from '../../mappings/subscriber-store.js';
import {
  applyPrepared,
  type PreparedWrite,
  type SealEmail,
  WriteBuilder,
} from '../../mappings/subscriber-writes.js';
import { crashPoint } from '../../platform/crash-points.js';
import type { Db } from '../../platform/db.js';
import { InternalError } from '../../platform/errors.js';
import { readLines } from '../../platform/lines.js';

export interface ChangeSink {
  write(change: SubscriberChange): Promise<void>;
  close(): Promise<void>;
}

export interface ApplyOptions {
  /** Changes per provisioning batch (one outbox row, one job); at least 1. */
  batchSize: number;
  /** Changes per transaction; rounded down to whole batches, and at least one batch. */
  transactionSize: number;
  /** Transactions in flight at once. */
  concurrency: number;
  /** Set for an ISP that delivers keys by e-mail: subscribes then write sealed contacts. */
  sealEmail?: SealEmail;
}

/** Groups changes into transactions, rendering each change's statements as it comes. */
class Preparer {
  private builder: WriteBuilder;
  private readonly size: number;

  constructor(
    private readonly ispId: string,
    private readonly feedId: string,
    private readonly options: ApplyOptions,
  ) {
    const batchSize = Math.max(1, options.batchSize);
    this.size = Math.max(batchSize, Math.floor(options.transactionSize / batchSize) * batchSize);
    this.builder = this.newBuilder();
  }

  /** The next full transaction, once `change` completes one. */
  add(change: SubscriberChange): PreparedWrite | undefined {
    this.builder.add(change);
    return this.builder.changes < this.size ? undefined : this.take();
  }

  /** What is left, as a last (smaller) transaction. */
  rest(): PreparedWrite | undefined {
    return this.builder.changes === 0 ? undefined : this.take();
  }

  private take(): PreparedWrite {
    const prepared = this.builder.build();
    this.builder = this.newBuilder();
    return prepared;
  }

  private newBuilder(): WriteBuilder {
    const { batchSize, sealEmail } = this.options;
    return new WriteBuilder(this.ispId, this.feedId, Math.max(1, batchSize), sealEmail);
  }
}

/** Runs prepared transactions, `concurrency` at a time; remembers the first failure. */
class TransactionRunner {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;

  constructor(
    private readonly db: Db,
    private readonly concurrency: number,
  ) {}

  async submit(prepared: PreparedWrite): Promise<void> {
    this.throwIfFailed();
    const task = this.db
      .transaction((trx) => applyPrepared(trx, prepared))
      .then(() => crashPoint('batch-committed'))
      .catch((err: unknown) => {
        this.failure ??= { err };
      })
      .finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
    if (this.inFlight.size >= this.concurrency) await Promise.race(this.inFlight);
    this.throwIfFailed();
  }

  async close(): Promise<void> {
    await Promise.all(this.inFlight);
    this.throwIfFailed();
  }

  get hasFailed(): boolean {
    return this.failure !== undefined;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.err;
  }
}

/** Applies changes as the diff produces them. */
export class ChangeApplier implements ChangeSink {
  private readonly preparer: Preparer;
  private readonly runner: TransactionRunner;

  constructor(db: Db, ispId: string, feedId: string, options: ApplyOptions) {
    this.preparer = new Preparer(ispId, feedId, options);
    this.runner = new TransactionRunner(db, options.concurrency);
  }

  async write(change: SubscriberChange): Promise<void> {
    const prepared = this.preparer.add(change);
    if (prepared) await this.runner.submit(prepared);
  }

  async close(): Promise<void> {
    const rest = this.runner.hasFailed ? undefined : this.preparer.rest();
    try {
      if (rest) await this.runner.submit(rest);
    } finally {
      await this.runner.close();
    }
  }

  /**
   * Stops after a failure elsewhere (the diff): drops what is not yet sent and waits for the
   * transactions in flight, whatever their outcome; the caller throws its own error.
   */
  async abort(): Promise<void> {
    await this.runner.close().catch(() => {});
  }
}

/** Lines buffered before a write: fewer, larger writes. */
const WRITE_CHUNK_CHARS = 1 << 16;

/**
 * The change list's framing: a transaction is a header line `tx <statements> <changes>
 * <batches>` followed by its statements, one per line. Rendered statements hold no line break
 * (values are escaped), which `frame` checks rather than trusts.
 */
function frame(prepared: PreparedWrite): string {
  const { statements, changes, batches } = prepared;
  for (const statement of statements) {
    if (statement.includes('\n'))
      throw new InternalError('INTERNAL', 'a statement holds a line break');
  }
  return `tx ${statements.length} ${changes} ${batches}\n${statements.join('\n')}\n`;
}

async function* unframe(lines: AsyncIterable<string>): AsyncGenerator<PreparedWrite> {
  let current: PreparedWrite | undefined;
  let expected = 0;
  for await (const line of lines) {
    if (current === undefined) {
      const [tag, count, changes, batches] = line.split(' ');
      if (tag !== 'tx') throw new InternalError('INTERNAL', 'change list out of frame');
      current = { statements: [], changes: Number(changes), batches: Number(batches) };
      expected = Number(count);
    } else {
      current.statements.push(line);
    }
    if (current.statements.length === expected) {
      yield current;
      current = undefined;
    }
  }
  if (current !== undefined) throw new InternalError('INTERNAL', 'change list cut short');
}

/** Writes the prepared transactions of a feed to a file, framed as {@link frame} says. */
export class ChangeListWriter implements ChangeSink {
  private readonly preparer: Preparer;
  private readonly out: WriteStream;
  private pending = '';

  /** A write error (a full disk), kept until the next call can throw it. */
  private failure: Error | undefined;

  constructor(
    readonly path: string,
    ispId: string,
    feedId: string,
    options: ApplyOptions,
  ) {
    this.preparer = new Preparer(ispId, feedId, options);
    this.out = createWriteStream(path);
    this.out.on('error', (err) => {
      this.failure ??= err;
    });
  }

  async write(change: SubscriberChange): Promise<void> {
    this.throwIfFailed();
    const prepared = this.preparer.add(change);
    if (prepared) await this.append(prepared);
  }

  async close(): Promise<void> {
    this.throwIfFailed();
    const rest = this.preparer.rest();
    if (rest) this.pending += frame(rest);
    this.out.end(this.pending);
    this.pending = '';
    await finished(this.out);
  }

  /** Stops writing and closes the file, whatever state it is in. */
  async abandon(): Promise<void> {
    this.out.destroy();
    await finished(this.out).catch(() => {});
  }

  private async append(prepared: PreparedWrite): Promise<void> {
    this.pending += frame(prepared);
    if (this.pending.length < WRITE_CHUNK_CHARS) return;
    const text = this.pending;
    this.pending = '';
    if (!this.out.write(text)) await once(this.out, 'drain');
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}

/** Applies a change list written by {@link ChangeListWriter}. */
export async function applyChangeList(db: Db, path: string, concurrency: number): Promise<void> {
  const runner = new TransactionRunner(db, concurrency);
  try {
    for await (const prepared of unframe(readLines(path))) await runner.submit(prepared);
  } finally {
    await runner.close();
  }
}
