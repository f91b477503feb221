/**
 * The per-subscriber detail file behind the vendor's invoice: one CSV row per rated line, with
 * the document and document line it rolls up into, so every invoice line can be proven (or
 * disputed) down to the activation event that made it billable. Only subscriber ids, never a
 * customer ref: this file is written on the vendor side.
 *
 * Streamed: rows are written as the rated lines arrive, waiting for the disk when it is slower,
 * and hashed on the way, so memory does not grow with the number of subscribers. The order is
 * the input order (frozen lines arrive in lineId order), so the bytes are the same on a rerun.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { RatedLine } from './rated-line.js';

export const DETAIL_COLUMNS = [
  'document',
  'document_line',
  'line_id',
  'kind',
  'subscriber_id',
  'licence_id',
  'module',
  'service_period',
  'days',
  'days_in_period',
  'quantity',
  'unit_price',
  'amount',
  'currency',
  'activation_event_id',
  'activated_at',
] as const;

export interface DetailTarget {
  /** Number of the invoice or credit note the line is on. */
  document: string;
  /** Id of the document line (1, 2, 3 ...). */
  lineId: string;
}

export interface DetailFileResult {
  rows: number;
  sizeBytes: number;
  sha256: string;
}

/** RFC 4180 quoting, only where a value needs it. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function detailRow(line: RatedLine, target: DetailTarget): string {
  return `${[
    target.document,
    target.lineId,
    line.lineId,
    line.kind,
    line.subscriberId,
    line.licenceId,
    line.module,
    line.servicePeriod,
    String(line.days),
    String(line.daysInPeriod),
    line.quantity,
    line.unitPrice,
    line.amount,
    line.currency,
    line.activationEventId,
    line.activatedAt,
  ]
    .map(csvField)
    .join(',')}\n`;
}

/**
 * Writes the detail CSV of `lines` to `path` (created or truncated), `targetOf` telling which
 * document line each rated line rolls up into. Resolves once the file is flushed and closed.
 */
export async function writeDetailFile(
  lines: AsyncIterable<RatedLine>,
  targetOf: (line: RatedLine) => DetailTarget,
  path: string,
): Promise<DetailFileResult> {
  const out = createWriteStream(path, { flags: 'w' });
  const hash = createHash('sha256');
  let sizeBytes = 0;
  let rows = 0;
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined);

  const write = async (text: string) => {
    const bytes = Buffer.from(text, 'utf8');
    hash.update(bytes);
    sizeBytes += bytes.length;
    if (!out.write(bytes)) await Promise.race([once(out, 'drain'), failed]);
  };

  try {
    await write(`${DETAIL_COLUMNS.join(',')}\n`);
    for await (const line of lines) {
      await write(detailRow(line, targetOf(line)));
      rows++;
    }
    out.end();
    await Promise.race([once(out, 'close'), failed]);
  } catch (err) {
    out.destroy();
    throw err;
  }
  return { rows, sizeBytes, sha256: hash.digest('hex') };
}
