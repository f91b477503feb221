import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExternalSorter, mergeSortedBatches } from './external-sort.js';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

function pseudoRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

describe('ExternalSorter', () => {
  it.each([
    ['in memory', 1_000, 10_000],
    ['across many runs', 2_500, 97],
  ])('sorts %s exactly like Array.sort', async (_label, count, chunkSize) => {
    const random = pseudoRandom(count);
    const items = Array.from({ length: count }, (_, i) => ({
      ref: String(Math.floor(random() * 500)),
      n: i,
    }));
    const dir = mkdtempSync(join(tmpdir(), 'relais-sort-'));
    const compare = (a: { ref: string; n: number }, b: { ref: string; n: number }) =>
      a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : a.n - b.n;
    const sorter = new ExternalSorter({ dir, compare, chunkSize });
    for (const item of items) await sorter.push(item);
    expect(sorter.size).toBe(count);
    expect(await collect(sorter.sorted())).toEqual([...items].sort(compare));
    if (count > chunkSize) expect(readdirSync(dir).length).toBeGreaterThan(1);
    sorter.dispose();
    expect(existsSync(dir)).toBe(false);
  });

  it('keeps equal items in input order (stable)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-sort-'));
    const sorter = new ExternalSorter<{ k: number; n: number }>({
      dir,
      compare: (a, b) => a.k - b.k,
      chunkSize: 3,
    });
    for (let n = 0; n < 10; n++) await sorter.push({ k: n % 2, n });
    const order = (await collect(sorter.sorted())).map((i) => i.n);
    expect(order).toEqual([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]);
    sorter.dispose();
  });
});

describe('mergeSortedBatches', () => {
  async function* of<T>(...batches: T[][]) {
    yield* batches;
  }

  it('merges sorted sources of any batch sizes, empty batches and sources included', async () => {
    const merged = await collect(
      mergeSortedBatches<number>(
        [of([1, 4], [], [9]), of(), of([2], [3, 10]), of([], [5])],
        (a, b) => a - b,
      ),
    );
    expect(merged.flat()).toEqual([1, 2, 3, 4, 5, 9, 10]);
    expect(merged.every((batch) => batch.length > 0)).toBe(true);
  });

  it('keeps ties in source order and hands on batches of at most 1024', async () => {
    type Item = { k: number; source: number };
    const source = (n: number) =>
      of<Item>(
        ...Array.from({ length: 3 }, (_, b) =>
          Array.from({ length: 700 }, (_, i) => ({ k: b * 700 + i, source: n })),
        ),
      );
    const merged = await collect(
      mergeSortedBatches<Item>([source(0), source(1)], (a, b) => a.k - b.k),
    );
    const items = merged.flat();
    expect(items).toHaveLength(4200);
    for (let i = 0; i < items.length; i += 2) {
      expect([items[i]?.source, items[i + 1]?.source]).toEqual([0, 1]);
      expect(items[i]?.k).toBe(items[i + 1]?.k);
    }
    expect(Math.max(...merged.map((b) => b.length))).toBe(1024);
  });
});
