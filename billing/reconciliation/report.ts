/**
 * The reconciliation report: a CSV for machines (one row per ref, in ref order), a rejects CSV
 * (one row per refused export row, in line order) and a self-contained HTML page for people
 * (counts and amounts per category, a few refs of each, the first rejects). Files are written
 * under temporary names and renamed only when the whole run succeeded, so a failed run never
 * leaves half a report under the final name. Nothing in them depends on the clock: the same
 * inputs give byte-identical files.
 */
import { once } from 'node:events';
import { createWriteStream, renameSync, rmSync, type WriteStream } from 'node:fs';
import { escapeHtml } from '../../platform/html.js';
import { CATEGORIES, type Category, type RefSides, type Verdict } from './classify.js';
import type { ExportReject } from './export-reader.js';
import { cachedFormat, formatMicros } from './money.js';

/** Refs of each category shown on the HTML page; the CSV has them all. */
export const SHOWN_REFS_PER_CATEGORY = 10;
/** Rejects listed on the HTML page; the rejects file has them all. */
export const SHOWN_REJECTS = 50;

export const REPORT_COLUMNS = [
  'customer_ref',
  'category',
  'reason',
  'relais_status',
  'isp_modules',
  'relais_modules',
  'vendor_modules',
  'isp_amount',
  'expected_amount',
  'vendor_amount',
  'difference',
  'isp_lines',
  'rejected_lines',
] as const;

/** RFC 4180 quoting: only a value holding a comma, a quote or a line break is quoted. */
export function csvCell(value: string | number): string {
  const text = String(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const NEEDS_QUOTES = /[",\r\n]/;

/** An amount cell: empty when there is none. Module codes and statuses never need quotes. */
function money(value: bigint | undefined): string {
  return value === undefined ? '' : cachedFormat(value);
}

/** A text file written in pieces with backpressure, renamed into place by `commit`. */
class StagedFile {
  private readonly temp: string;
  private readonly out: WriteStream;
  private buffer = '';

  constructor(readonly path: string) {
    this.temp = `${path}.tmp`;
    this.out = createWriteStream(this.temp);
  }

  /** Adds text; returns a promise only when the file asks to wait (await it then). */
  write(text: string): Promise<void> | undefined {
    this.buffer += text;
    if (this.buffer.length < 1 << 16) return undefined;
    const chunk = this.buffer;
    this.buffer = '';
    if (this.out.write(chunk)) return undefined;
    return once(this.out, 'drain').then(() => undefined);
  }

  /** Flushes and closes the temporary file; the final name is not touched yet. */
  async close(): Promise<void> {
    this.out.end(this.buffer);
    this.buffer = '';
    await once(this.out, 'finish');
  }

  commit(): void {
    renameSync(this.temp, this.path);
  }

  discard(): void {
    this.out.destroy();
    rmSync(this.temp, { force: true });
  }
}

export interface CategoryTotals {
  refs: number;
  ispMicros: bigint;
  vendorMicros: bigint;
  expectedMicros: bigint;
  differenceMicros: bigint;
  /** The first refs of the category, in ref order, for the HTML page. */
  shownRefs: string[];
}

export interface ReportSummary {
  ispId: string;
  ispName: string;
  period: string;
  currency: string;
  fileName: string;
  sha256: string;
  exportLines: number;
  rejectedLines: number;
  vendorLines: number;
  /** Vendor lines of another service period (adjustments), not compared. */
  vendorOtherPeriodLines: number;
  /** Refs known at Relais, not active, absent from both billings: nothing to reconcile. */
  inactiveRefs: number;
  amountsCompared: boolean;
  toleranceMicros: bigint;
  categories: Record<Category, CategoryTotals>;
  shownRejects: ExportReject[];
}

export function emptyTotals(): Record<Category, CategoryTotals> {
  const totals = {} as Record<Category, CategoryTotals>;
  for (const c of CATEGORIES) {
    totals[c] = {
      refs: 0,
      ispMicros: 0n,
      vendorMicros: 0n,
      expectedMicros: 0n,
      differenceMicros: 0n,
      shownRefs: [],
    };
  }
  return totals;
}

export interface ReportPaths {
  csv: string;
  html: string;
  rejects: string;
}

/** Writes the three report files of one run; see the module comment. */
export class ReportWriter {
  private readonly csv: StagedFile;
  private readonly rejects: StagedFile;
  private readonly html: StagedFile;

  constructor(
    readonly paths: ReportPaths,
    private readonly fileName: string,
  ) {
    this.csv = new StagedFile(paths.csv);
    this.rejects = new StagedFile(paths.rejects);
    this.html = new StagedFile(paths.html);
  }

  async start(): Promise<void> {
    await this.csv.write(`${REPORT_COLUMNS.join(',')}\n`);
    await this.rejects.write('file,line,field,value,reason\n');
  }

  async reject(reject: ExportReject): Promise<void> {
    const cells = [
      this.fileName,
      reject.line,
      reject.field ?? '',
      reject.value ?? '',
      reject.reason,
    ];
    await this.rejects.write(`${cells.map(csvCell).join(',')}\n`);
  }

  /** Adds the ref's row; a promise only when the file asks to wait (await it then). */
  row(sides: RefSides, verdict: Verdict): Promise<void> | undefined {
    const { isp, known, vendor } = sides;
    const text =
      `${csvCell(sides.ref)},${verdict.category},${verdict.reason},${known?.status ?? ''},` +
      `${isp ? isp.modules.join('+') : ''},${known ? known.modules.join('+') : ''},` +
      `${vendor ? vendor.modules.join('+') : ''},${money(isp?.amountMicros)},` +
      `${money(verdict.expectedMicros)},${money(vendor?.amountMicros)},` +
      `${money(verdict.differenceMicros)},${isp?.lines ?? 0},${isp?.rejectedLines ?? 0}\n`;
    return this.csv.write(text);
  }

  /** Writes the HTML page, closes every file and renames them into place. */
  async finish(summary: ReportSummary): Promise<void> {
    await this.html.write(renderHtml(summary));
    for (const file of [this.csv, this.rejects, this.html]) await file.close();
    for (const file of [this.csv, this.rejects, this.html]) file.commit();
  }

  discard(): void {
    for (const file of [this.csv, this.rejects, this.html]) file.discard();
  }
}

const DESCRIPTIONS: Record<Category, string> = {
  MATCHED: 'Billed by the ISP and by the vendor for the same modules (and amounts, when compared).',
  BILLED_NOT_ACTIVATED:
    'The ISP billed its customer, but the licence was never activated, so the vendor did not bill: a care opportunity.',
  ACTIVATED_NOT_BILLED:
    'The vendor billed an activated licence, but the ISP did not bill its customer: a revenue leak.',
  MODULES_DIFFER: 'Both billed, not for the same modules.',
  AMOUNT_DIFFERS:
    'Same modules, but the amount differs from the retail prices beyond the tolerance.',
  UNKNOWN_REF: 'In the ISP export, unknown to Relais.',
  MISSING_FROM_EXPORT: 'Active at Relais, not activated, and absent from the ISP export.',
  EXPORT_ROW_REJECTED:
    'A row of this ref was rejected, so it could not be compared: see the rejects.',
};

/** The HTML page: inline CSS, no script, no external resource, every value escaped. */
export function renderHtml(s: ReportSummary): string {
  const money = (v: bigint) => escapeHtml(formatMicros(v));
  const rows = CATEGORIES.map((c) => {
    const t = s.categories[c];
    const more =
      t.refs > t.shownRefs.length ? ` … (${t.refs - t.shownRefs.length} more in the CSV)` : '';
    const refs = t.shownRefs.map(escapeHtml).join(', ') + more;
    const difference = s.amountsCompared ? money(t.differenceMicros) : '';
    return `<tr><th scope="row" title="${escapeHtml(DESCRIPTIONS[c])}">${c}</th><td>${t.refs}</td><td>${money(t.ispMicros)}</td><td>${money(t.vendorMicros)}</td><td>${difference}</td><td class="refs">${refs}</td></tr>`;
  });
  const total = CATEGORIES.reduce((n, c) => n + s.categories[c].refs, 0);
  const rejects = s.shownRejects.map(
    (r) =>
      `<tr><td>${r.line}</td><td>${escapeHtml(r.field ?? '')}</td><td>${escapeHtml(r.value ?? '')}</td><td>${escapeHtml(r.reason)}</td></tr>`,
  );
  const moreRejects =
    s.rejectedLines > s.shownRejects.length
      ? `<p>… and ${s.rejectedLines - s.shownRejects.length} more in the rejects file.</p>`
      : '';
  const legend = CATEGORIES.map((c) => `<dt>${c}</dt><dd>${escapeHtml(DESCRIPTIONS[c])}</dd>`);
  const tolerance = s.amountsCompared
    ? `Amounts compared with the retail prices, tolerance ${money(s.toleranceMicros)} ${escapeHtml(s.currency)}.`
    : 'Amounts not compared (no retail prices configured).';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Reconciliation ${escapeHtml(s.ispId)} ${escapeHtml(s.period)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
td{font-variant-numeric:tabular-nums}
.refs{font-size:.85em;color:#555;max-width:30rem}
dt{font-weight:bold;margin-top:.4rem}
</style>
</head>
<body>
<h1>Reconciliation of ${escapeHtml(s.ispName)} (${escapeHtml(s.ispId)}), period ${escapeHtml(s.period)}</h1>
<p>Export <code>${escapeHtml(s.fileName)}</code> (SHA-256 <code>${escapeHtml(s.sha256)}</code>): ${s.exportLines} lines read, ${s.rejectedLines} rejected. Vendor lines of the period: ${s.vendorLines}${s.vendorOtherPeriodLines > 0 ? ` (not compared: ${s.vendorOtherPeriodLines} of other service periods)` : ''}. ${tolerance}</p>
<table>
<thead><tr><th>Category</th><th>Refs</th><th>ISP billed (${escapeHtml(s.currency)})</th><th>Vendor billed (${escapeHtml(s.currency)})</th><th>ISP minus expected</th><th>First refs</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
<tfoot><tr><th scope="row">Total</th><td>${total}</td><td colspan="4">${s.inactiveRefs} inactive refs absent from both billings were not reported.</td></tr></tfoot>
</table>
<h2>Rejected export rows</h2>
${rejects.length === 0 ? '<p>None.</p>' : `<table>\n<thead><tr><th>Line</th><th>Field</th><th>Value</th><th>Reason</th></tr></thead>\n<tbody>\n${rejects.join('\n')}\n</tbody>\n</table>\n${moreRejects}`}
<h2>Categories</h2>
<dl>
${legend.join('\n')}
</dl>
</body>
</html>
`;
}
