/**
 * The rejects file returned to the ISP: one line per refused record, with file, line, field,
 * value and reason, in line order. CSV with `;`, UTF-8 with a BOM (spreadsheets at ISPs open it
 * right), written under a temporary name and renamed so the ISP never reads half a file.
 * Values of personal fields were already dropped by the mapping.
 */
import { once } from 'node:events';
import { createWriteStream, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { MappingReject } from '../../mappings/customer-record.js';
import type { ExternalSorter } from '../../platform/external-sort.js';
import type { Feed, FeedLedger } from '../feed-ledger.js';
import type { FeedFiles } from './feed-files.js';

/** How many rejects the ledger table keeps per feed; the file keeps them all. */
export const LEDGER_REJECTS_LIMIT = 1_000;

function cell(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[;"\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function rejectsFileName(feed: Pick<Feed, 'id' | 'name'>): string {
  const base = feed.name.replace(/[^\w.-]+/g, '_').slice(0, 120);
  return `${base}.${feed.id}.rejects.csv`;
}

/** Writes every reject to the ISP outbox and the first ones to the ledger; returns the path. */
export async function writeRejectsFile(
  deps: { files: FeedFiles; ledger: FeedLedger },
  ispId: string,
  feed: Feed,
  rejects: ExternalSorter<MappingReject>,
): Promise<string> {
  const dir = deps.files.outboxDir(ispId, 'rejects');
  const path = join(dir, rejectsFileName(feed));
  const temp = `${path}.tmp`;
  const out = createWriteStream(temp);
  out.write('\ufefffile;line;field;value;reason\n');
  const first: MappingReject[] = [];
  for await (const reject of rejects.sorted()) {
    if (first.length < LEDGER_REJECTS_LIMIT) first.push(reject);
    const cells = [feed.name, reject.line, reject.field, reject.value, reject.reason];
    const line = `${cells.map(cell).join(';')}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  renameSync(temp, path);
  await deps.ledger.recordRejects(feed.id, first);
  return path;
}
