/**
 * Writes a feed's subscriber changes to the database as they come: `transactionSize` changes a
 * transaction, each with its provisioning-outbox rows, `concurrency` transactions in flight.
 * Transactions touch disjoint subscribers, so their order does not matter; a subscriber's
 * commands never span two of them. Committed work is stamped with the feed, which is what lets
 * an interrupted feed resume where it stopped.
 *
 * @remarks The first failure stops the applier: later writes are refused and `close()` throws
 * it, after the transactions in flight have settled (none is left half-done: each is atomic).
 */
import type { SubscriberChange } from '../../mappings/subscriber-store.js';
import { applyChanges } from '../../mappings/subscriber-store.js';
import { crashPoint } from '../../platform/crash-points.js';
import type { Db } from '../../platform/db.js';

/** Where the diff sends each change: a change-list file, or straight to the database. */
export interface ChangeSink {
  write(change: SubscriberChange): Promise<void>;
  close(): Promise<void>;
}

export interface ApplierOptions {
  /** Changes per provisioning batch (one outbox row, one job). */
  batchSize: number;
  /** Changes per transaction; rounded down to whole batches. */
  transactionSize: number;
  /** Transactions in flight at once. */
  concurrency: number;
}

export class ChangeApplier implements ChangeSink {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly transactionSize: number;
  private chunk: SubscriberChange[] = [];
  private failure: unknown;
  private failed = false;

  constructor(
    private readonly db: Db,
    private readonly ispId: string,
    private readonly feedId: string,
    private readonly options: ApplierOptions,
  ) {
    const { batchSize, transactionSize } = options;
    this.transactionSize = Math.max(batchSize, Math.floor(transactionSize / batchSize) * batchSize);
  }

  async write(change: SubscriberChange): Promise<void> {
    if (this.failed) throw this.failure;
    this.chunk.push(change);
    if (this.chunk.length < this.transactionSize) return;
    this.launch(this.chunk);
    this.chunk = [];
    if (this.inFlight.size >= this.options.concurrency) await Promise.race(this.inFlight);
    if (this.failed) throw this.failure;
  }

  async close(): Promise<void> {
    if (!this.failed && this.chunk.length > 0) this.launch(this.chunk);
    this.chunk = [];
    await Promise.all(this.inFlight);
    if (this.failed) throw this.failure;
  }

  private launch(changes: SubscriberChange[]): void {
    const { batchSize } = this.options;
    const task = this.db
      .transaction((trx) =>
        applyChanges(trx, this.ispId, this.feedId, changes, new Date(), batchSize),
      )
      .then(() => crashPoint('batch-committed'))
      .catch((err: unknown) => {
        if (this.failed) return;
        this.failed = true;
        this.failure = err;
      })
      .finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
  }
}
