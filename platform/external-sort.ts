/**
 * Sorting more items than memory should hold. Items are buffered up to `chunkSize`, sorted and
 * written to a run file (one JSON document per line); `sorted()` then merges the runs with a
 * heap. Memory stays at one chunk plus one item per run, whatever the input size: this is what
 * lets a 5-million-customer snapshot be compared with the database in bounded memory.
 *
 * Run files live in a folder the caller owns and removes.
 */
import { once } from 'node:events';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readLineBatches } from './lines.js';

export interface ExternalSortOptions<T> {
  /** Folder for run files; created when absent. */
  dir: string;
  compare: (a: T, b: T) => number;
  /** Items held in memory before a run is written. */
  chunkSize?: number;
  /** Turns an item into one line of text without a newline (default JSON). */
  serialize?: (item: T) => string;
  deserialize?: (line: string) => T;
  /** Items are their own lines (`serialize` and `deserialize` are the identity): no copying. */
  linesAreItems?: boolean;
}

export class ExternalSorter<T> {
  private readonly buffer: T[] = [];
  private readonly runs: string[] = [];
  private readonly chunkSize: number;
  private readonly serialize: (item: T) => string;
  private readonly deserialize: (line: string) => T;
  private count = 0;

  constructor(private readonly options: ExternalSortOptions<T>) {
    this.chunkSize = options.chunkSize ?? 100_000;
    this.serialize = options.serialize ?? ((item) => JSON.stringify(item));
    this.deserialize = options.deserialize ?? ((line) => JSON.parse(line) as T);
    mkdirSync(options.dir, { recursive: true });
  }

  get size(): number {
    return this.count;
  }

  /** Adds one item; writes a run when the buffer is full (await it: that is the backpressure). */
  async push(item: T): Promise<void> {
    this.buffer.push(item);
    this.count++;
    if (this.buffer.length >= this.chunkSize) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    this.buffer.sort(this.options.compare);
    const file = join(this.options.dir, `run-${this.runs.length}.ndjson`);
    const out = createWriteStream(file);
    let text = '';
    for (const item of this.buffer) {
      text += `${this.serialize(item)}\n`;
      if (text.length > 1 << 16) {
        if (!out.write(text)) await once(out, 'drain');
        text = '';
      }
    }
    out.end(text);
    await once(out, 'finish');
    this.runs.push(file);
    this.buffer.length = 0;
  }

  /** All items in order. Call once, after the last push. */
  async *sorted(): AsyncGenerator<T> {
    for await (const batch of this.sortedBatches()) yield* batch;
  }

  /**
   * All items in order, in arrays: one await per batch rather than per item, for callers that
   * go through millions of items. Call once (instead of {@link sorted}), after the last push.
   */
  async *sortedBatches(): AsyncGenerator<T[]> {
    if (this.runs.length === 0) {
      this.buffer.sort(this.options.compare);
      if (this.buffer.length > 0) yield this.buffer;
      return;
    }
    await this.flush();
    yield* mergeSortedBatches(
      this.runs.map((file) => this.readRun(file)),
      this.options.compare,
    );
  }

  private async *readRun(file: string): AsyncGenerator<T[]> {
    // Every run is read at once during the merge: a small read per run keeps the memory of
    // the merge low when there are many runs (a run's batch keeps its chunk's text alive).
    for await (const lines of readLineBatches(file, RUN_READ_BYTES)) {
      yield this.options.linesAreItems ? (lines as T[]) : lines.map(this.deserialize);
    }
  }

  /** Deletes the run files. */
  dispose(): void {
    rmSync(this.options.dir, { recursive: true, force: true });
  }
}

/** Bytes read from a run file at a time during the merge. */
const RUN_READ_BYTES = 16 * 1024;

/** Items merged before a batch is handed on. */
const MERGED_BATCH = 1024;

interface Cursor<T> {
  batch: T[];
  at: number;
  source: AsyncIterator<T[]>;
  order: number;
}

/**
 * Merges sources that each yield their items in order, in arrays of any size (empty arrays
 * included); yields the merged items in arrays. Ties keep source order, so the merge is
 * stable. It awaits only when a source's array runs out.
 */
export async function* mergeSortedBatches<T>(
  sources: AsyncIterable<T[]>[],
  compare: (a: T, b: T) => number,
): AsyncGenerator<T[]> {
  const less = (a: Cursor<T>, b: Cursor<T>) => {
    const c = compare(a.batch[a.at] as T, b.batch[b.at] as T);
    return c < 0 || (c === 0 && a.order < b.order);
  };
  const heap: Cursor<T>[] = [];
  const siftUp = (start: number) => {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i] as Cursor<T>, heap[parent] as Cursor<T>)) break;
      [heap[i], heap[parent]] = [heap[parent] as Cursor<T>, heap[i] as Cursor<T>];
      i = parent;
    }
  };
  const siftDown = () => {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < heap.length && less(heap[l] as Cursor<T>, heap[smallest] as Cursor<T>)) smallest = l;
      if (r < heap.length && less(heap[r] as Cursor<T>, heap[smallest] as Cursor<T>)) smallest = r;
      if (smallest === i) break;
      [heap[i], heap[smallest]] = [heap[smallest] as Cursor<T>, heap[i] as Cursor<T>];
      i = smallest;
    }
  };
  /** The source's next non-empty array, or undefined once it is done. */
  const refill = async (source: AsyncIterator<T[]>): Promise<T[] | undefined> => {
    for (;;) {
      const next = await source.next();
      if (next.done) return undefined;
      if (next.value.length > 0) return next.value;
    }
  };

  for (const [order, iterable] of sources.entries()) {
    const source = iterable[Symbol.asyncIterator]();
    const batch = await refill(source);
    if (batch) {
      heap.push({ batch, at: 0, source, order });
      siftUp(heap.length - 1);
    }
  }
  let out: T[] = [];
  while (heap.length > 0) {
    const top = heap[0] as Cursor<T>;
    out.push(top.batch[top.at] as T);
    top.at++;
    if (top.at === top.batch.length) {
      const batch = await refill(top.source);
      if (batch) {
        top.batch = batch;
        top.at = 0;
      } else {
        const last = heap.pop() as Cursor<T>;
        if (heap.length === 0) break;
        heap[0] = last;
      }
    }
    siftDown();
    if (out.length >= MERGED_BATCH) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}
