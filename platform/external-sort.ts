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
import { readLines } from './lines.js';

export interface ExternalSortOptions<T> {
  /** Folder for run files; created when absent. */
  dir: string;
  compare: (a: T, b: T) => number;
  /** Items held in memory before a run is written. */
  chunkSize?: number;
  /** Turns an item into one line of text without a newline (default JSON). */
  serialize?: (item: T) => string;
  deserialize?: (line: string) => T;
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
    if (this.runs.length === 0) {
      this.buffer.sort(this.options.compare);
      yield* this.buffer;
      return;
    }
    await this.flush();
    yield* mergeSortedSources(
      this.runs.map((file) => this.readRun(file)),
      this.options.compare,
    );
  }

  private async *readRun(file: string): AsyncGenerator<T> {
    for await (const line of readLines(file)) yield this.deserialize(line);
  }

  /** Deletes the run files. */
  dispose(): void {
    rmSync(this.options.dir, { recursive: true, force: true });
  }
}

interface HeapEntry<T> {
  item: T;
  source: AsyncIterator<T>;
  order: number;
}

/** Merges already-sorted async sources; ties keep source order, so the merge is stable. */
export async function* mergeSortedSources<T>(
  sources: AsyncIterable<T>[],
  compare: (a: T, b: T) => number,
): AsyncGenerator<T> {
  const less = (a: HeapEntry<T>, b: HeapEntry<T>) => {
    const c = compare(a.item, b.item);
    return c < 0 || (c === 0 && a.order < b.order);
  };
  const heap: HeapEntry<T>[] = [];
  const push = (entry: HeapEntry<T>) => {
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i] as HeapEntry<T>, heap[parent] as HeapEntry<T>)) break;
      [heap[i], heap[parent]] = [heap[parent] as HeapEntry<T>, heap[i] as HeapEntry<T>];
      i = parent;
    }
  };
  const pop = (): HeapEntry<T> => {
    const top = heap[0] as HeapEntry<T>;
    const last = heap.pop() as HeapEntry<T>;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < heap.length && less(heap[l] as HeapEntry<T>, heap[smallest] as HeapEntry<T>))
          smallest = l;
        if (r < heap.length && less(heap[r] as HeapEntry<T>, heap[smallest] as HeapEntry<T>))
          smallest = r;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest] as HeapEntry<T>, heap[i] as HeapEntry<T>];
        i = smallest;
      }
    }
    return top;
  };

  for (const [order, iterable] of sources.entries()) {
    const source = iterable[Symbol.asyncIterator]();
    const first = await source.next();
    if (!first.done) push({ item: first.value, source, order });
  }
  while (heap.length > 0) {
    const entry = pop();
    yield entry.item;
    const next = await entry.source.next();
    if (!next.done) push({ item: next.value, source: entry.source, order: entry.order });
  }
}
