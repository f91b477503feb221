import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readLineBatches, readLines } from './lines.js';

const dir = mkdtempSync(join(tmpdir(), 'relais-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function linesOf(content: string | Buffer): Promise<string[]> {
  const path = join(dir, `f-${Math.random()}`);
  writeFileSync(path, content);
  const lines: string[] = [];
  for await (const line of readLines(path)) lines.push(line);
  return lines;
}

describe('readLines', () => {
  it('yields each line without its newline, and a last line without one', async () => {
    expect(await linesOf('a\nbb\n\nccc')).toEqual(['a', 'bb', '', 'ccc']);
    expect(await linesOf('a\n')).toEqual(['a']);
    expect(await linesOf('')).toEqual([]);
  });

  it('keeps lines far longer than a read chunk whole, multi-byte characters included', async () => {
    const long = 'é€'.repeat(100_000);
    expect(await linesOf(`${long}\nx\n${long}`)).toEqual([long, 'x', long]);
  });
});

describe('readLineBatches', () => {
  it('gives the same lines as readLines, a read chunk at a time, never an empty batch', async () => {
    const long = 'é€'.repeat(50_000);
    const content = `${Array.from({ length: 30_000 }, (_, i) => `line ${i}`).join('\n')}\n${long}\nend`;
    const path = join(dir, 'batches');
    writeFileSync(path, content);
    const batches: string[][] = [];
    for await (const batch of readLineBatches(path)) batches.push(batch);
    const lines: string[] = [];
    for await (const line of readLines(path)) lines.push(line);
    expect(batches.flat()).toEqual(lines);
    expect(lines.at(-2)).toBe(long);
    expect(batches.every((b) => b.length > 0)).toBe(true);
    expect(batches.length).toBeGreaterThan(3);
    expect(batches.length).toBeLessThan(lines.length / 100);
  });
});
