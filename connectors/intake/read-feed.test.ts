import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigOrThrow } from '../../config/load.js';
import { packageRoot } from '../../platform/package-root.js';
import { encode, generateCustomers, renderCsv } from '../../test/generators/isp-exports.js';
import {
  NotInRefOrderError,
  type ReadCounts,
  readFeed,
  readItems,
  rejectSorter,
} from './read-feed.js';

const dir = mkdtempSync(join(tmpdir(), 'relais-read-feed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

mkdirSync(join(dir, 'isps'));
writeFileSync(join(dir, 'relais.yaml'), 'log: { level: silent }\n');
copyFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), join(dir, 'isps/demo-fai.yaml'));
const isp = loadConfigOrThrow({ file: join(dir, 'relais.yaml'), env: {} }).isps.get('demo-fai');

/** An export whose second customer sorts before the first. */
function unsortedExport(): string {
  const customers = [...generateCustomers(50, 5)];
  [customers[0], customers[1]] = [customers[1], customers[0]] as [never, never];
  const path = join(dir, 'unsorted.csv');
  writeFileSync(path, encode(renderCsv(customers), 'windows-1252'));
  return path;
}

const openFiles = () => readdirSync('/proc/self/fd').length;

describe('readItems in ref order', () => {
  it('stops at the first ref out of order, naming its line, and closes the file', async () => {
    if (!isp) throw new Error('demo-fai did not load');
    const path = unsortedExport();
    const before = openFiles();
    for (let run = 0; run < 30; run++) {
      const rejects = rejectSorter(join(dir, `run-${run}`));
      const counts: ReadCounts = { records: 0, accepted: 0 };
      const items = readItems(
        path,
        isp,
        { scratchDir: dir, fileName: 'unsorted.csv', requireRefOrder: true },
        rejects,
        counts,
      );
      const read = async () => {
        for await (const _item of items);
      };
      await expect(read()).rejects.toMatchObject({ constructor: NotInRefOrderError, line: 3 });
      rejects.dispose();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openFiles() - before).toBeLessThan(5);
  });
});

describe('readFeed sort runs', () => {
  const customers = [...generateCustomers(40, 9)].reverse();
  const path = join(dir, 'reversed.csv');
  writeFileSync(path, encode(renderCsv(customers), 'windows-1252'));
  const runText = (scratch: string) =>
    readdirSync(join(scratch, 'items'))
      .map((f) => readFileSync(join(scratch, 'items', f), 'utf8'))
      .join('');

  it.each([
    [true, 'keeps each e-mail, sealed in the run files'],
    [false, 'drops the e-mails'],
  ])('keepEmails %s: %s', async (keepEmails) => {
    if (!isp) throw new Error('demo-fai did not load');
    const scratchDir = mkdtempSync(join(dir, 'sort-'));
    const read = await readFeed(path, isp, {
      scratchDir,
      fileName: 'reversed.csv',
      keepEmails,
      sortChunkSize: 7,
    });
    const text = runText(scratchDir);
    expect(text.split('\n').length).toBeGreaterThan(30);
    expect(text).not.toMatch(/exemple\.fr/);
    const emails: (string | null)[] = [];
    for await (const item of read.items.sorted()) {
      if (item.kind === 'record') emails.push(item.record.email);
    }
    const expected = [...customers].reverse().map((c) => (keepEmails ? c.email : null));
    expect(emails).toEqual(expected);
    read.items.dispose();
    read.rejects.dispose();
  });
});
