/**
 * Export files for the intake benchmark, written with the test generators: a day-0 snapshot of
 * `customers` customers and the next day's, with 1 % of them changed (offer or status, a few
 * leaving and joining). CSV is demo-fai's Windows-1252 with French headers, XML alpha-telecom's
 * namespaced layout. Files are streamed to disk and reused when already present, since writing
 * 5 million rows takes a while and the content is deterministic.
 */
import { once } from 'node:events';
import { createWriteStream, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import {
  type Customer,
  generateCustomers,
  nextDay,
  renderCsv,
  renderXml,
} from '../test/generators/isp-exports.js';

export type BenchFormat = 'csv' | 'xml';

export const CHANGED_SHARE = 0.01;

export interface BenchFiles {
  first: string;
  next: string;
}

const FLUSH_CHARS = 1 << 20;

async function writeRendered(
  path: string,
  chunks: Iterable<string>,
  encoding: 'utf-8' | 'windows-1252',
): Promise<void> {
  const partial = `${path}.part`;
  const out = createWriteStream(partial);
  let text = '';
  for (const chunk of chunks) {
    text += chunk;
    if (text.length < FLUSH_CHARS) continue;
    if (!out.write(iconv.encode(text, encoding))) await once(out, 'drain');
    text = '';
  }
  out.end(iconv.encode(text, encoding));
  await once(out, 'finish');
  renameSync(partial, path);
}

function render(format: BenchFormat, customers: Iterable<Customer>): Iterable<string> {
  return format === 'csv' ? renderCsv(customers) : renderXml(customers);
}

/** Writes (or finds) the day-0 and day-1 files of `format` for `customers` customers in `dir`. */
export async function benchFiles(
  dir: string,
  format: BenchFormat,
  customers: number,
): Promise<BenchFiles> {
  const ext = format === 'csv' ? 'csv' : 'xml';
  const first = join(dir, `day0-${customers}.${ext}`);
  const next = join(dir, `day1-${customers}.${ext}`);
  const encoding = format === 'csv' ? 'windows-1252' : 'utf-8';
  if (!existsSync(first)) {
    await writeRendered(first, render(format, generateCustomers(customers)), encoding);
  }
  if (!existsSync(next)) {
    const day1 = nextDay(generateCustomers(customers), customers, CHANGED_SHARE);
    await writeRendered(next, render(format, day1), encoding);
  }
  return { first, next };
}
