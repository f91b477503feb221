/**
 * Reconciles one ISP's billing export for a period against the connector's subscriber map and
 * the vendor's rated lines of the period, and writes the report (CSV, rejects CSV, HTML) and
 * the metrics. The vendor's lines are passed in as a stream: fetching them from the
 * subscription server is the caller's job, which keeps this module testable with lines held in
 * memory and a real connector database.
 *
 * Flow: read the export (rows to a sorter, rejects straight to the rejects file) while the
 * vendor lines are sorted too; then merge-join both with the subscriber map in ref order,
 * classify each ref, and write its report row. Memory holds a sort chunk per side and one ref.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream';
import type { IspConfig } from '../../config/load.js';
import type { ReconciliationSettings } from '../../config/reconciliation-schema.js';
import { HashingCounter } from '../../connectors/intake/feed-files.js';
import type { Db } from '../../platform/db.js';
import { ConfigError, RequestError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Metrics } from '../../platform/metrics.js';
import { PERIOD_PATTERN } from '../../platform/zoned-time.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { CATEGORIES, type Category, type ClassifyRules, classify } from './classify.js';
import {
  compileExportRules,
  type ExportReject,
  type ExportRules,
  readExport,
} from './export-reader.js';
import { parseMicros } from './money.js';
import { reconciliationMetrics } from './reconciliation-metrics.js';
import {
  emptyTotals,
  type ReportPaths,
  type ReportSummary,
  ReportWriter,
  SHOWN_REFS_PER_CATEGORY,
  SHOWN_REJECTS,
} from './report.js';
import { ExportSide, joinByRef, knownRefs, VendorSideSorter } from './sides.js';

export interface ReconcileDeps {
  /** The connector database (the subscriber map). */
  db: Db;
  log: Logger;
  /** Where the per-category counts go; none in a test that does not look at them. */
  metrics?: Metrics;
}

export interface ReconcileProgress {
  phase: 'reading' | 'matching';
  /** Export lines read (reading) or refs matched (matching) so far. */
  count: number;
}

export interface ReconcileRequest {
  isp: IspConfig;
  /** The month reconciled, YYYY-MM. */
  period: string;
  /** Local path of the export file. */
  file: string;
  /** Name of the export in messages and the report; default the file's base name. */
  fileName?: string;
  /** The vendor's rated lines of the period, mapped back to customer refs, in any order. */
  vendorLines: AsyncIterable<IspInvoiceLine>;
  /** Folder of the report; default `<workDir>/reconciliation/<period>`. */
  outDir?: string;
  /** Entries sorted in memory per run file (default {@link SORT_CHUNK_ENTRIES}; tests make it small). */
  sortChunkSize?: number;
  onProgress?: (progress: ReconcileProgress) => void;
}

export interface ReconcileResult {
  ispId: string;
  period: string;
  fileName: string;
  sha256: string;
  exportLines: number;
  rejectedLines: number;
  vendorLines: number;
  counts: Record<Category, number>;
  paths: ReportPaths;
}

const PROGRESS_EVERY = 50_000;

/**
 * Sort entries held in memory per run file. Smaller than the sorter's default: entries held
 * longer reach V8's old generation, and at 100,000 a million-line run peaked near 440 MB of
 * RSS against 270 MB at this size, for the same speed.
 */
export const SORT_CHUNK_ENTRIES = 25_000;

/** The ISP's reconciliation settings, or a config error saying the section is missing. */
export function reconciliationSettingsOf(isp: IspConfig): ReconciliationSettings {
  const settings = isp.billing?.reconciliation;
  if (!settings) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `isp ${isp.id} has no billing.reconciliation section: add one to ${basename(isp.file)} to reconcile its billing export`,
      { isp: isp.id },
    );
  }
  return settings;
}

export function reportPaths(outDir: string, ispId: string, period: string): ReportPaths {
  const base = join(outDir, `reconciliation-${ispId}-${period}`);
  return { csv: `${base}.csv`, html: `${base}.html`, rejects: `${base}.rejects.csv` };
}

/** Every module the ISP config names (offers and price lists), for the default code map. */
function modulesOf(isp: IspConfig): string[] {
  const modules = new Set<string>();
  for (const list of Object.values(isp.offers)) for (const m of list) modules.add(m);
  for (const prices of isp.billing?.prices ?? []) {
    for (const m of Object.keys(prices.modules)) modules.add(m);
  }
  return [...modules].sort();
}

function classifyRules(settings: ReconciliationSettings): ClassifyRules {
  const toleranceMicros = parseMicros(settings.amountTolerance) ?? 0n;
  if (!settings.retailPrices) return { toleranceMicros };
  const retailMicros = new Map<string, bigint>();
  for (const [module, price] of Object.entries(settings.retailPrices)) {
    retailMicros.set(module, parseMicros(price) ?? 0n);
  }
  return { toleranceMicros, retailMicros };
}

/**
 * Reconciles one export; see the module comment.
 *
 * @throws RequestError PERIOD_INVALID for a period not written YYYY-MM; ConfigError when the
 *   ISP has no reconciliation settings; IspDataError when the export cannot be read at all
 *   (then no report file is written or replaced).
 */
export async function reconcilePeriod(
  deps: ReconcileDeps,
  request: ReconcileRequest,
): Promise<ReconcileResult> {
  const { isp, period } = request;
  if (!PERIOD_PATTERN.test(period)) {
    throw new RequestError(
      'PERIOD_INVALID',
      `period must be a month written YYYY-MM, got "${period}"`,
      {
        period,
      },
    );
  }
  const settings = reconciliationSettingsOf(isp);
  const metrics = deps.metrics ? reconciliationMetrics(deps.metrics) : undefined;
  const log = deps.log.child({ isp: isp.id, period });
  const fileName = request.fileName ?? basename(request.file);
  const outDir = request.outDir ?? join(isp.workDir, 'reconciliation', period);
  mkdirSync(outDir, { recursive: true });
  const scratchDir = join(isp.workDir, 'staging', `reconcile-${randomBytes(6).toString('hex')}`);
  const sort = { scratchDir, chunkSize: request.sortChunkSize ?? SORT_CHUNK_ENTRIES };
  const exportSide = new ExportSide(sort);
  const vendorSide = new VendorSideSorter(sort, period);
  const writer = new ReportWriter(reportPaths(outDir, isp.id, period), fileName);
  const rules = compileExportRules(settings, period, {
    offers: isp.offers,
    modules: modulesOf(isp),
  });
  const started = Date.now();

  try {
    await writer.start();
    // Both sides are read at once: the vendor lines usually come over the network. Settled,
    // not raced: a failing side must not leave the other writing into a removed scratch folder.
    const [read, vendor] = await Promise.allSettled([
      readExportInto(request, fileName, rules, exportSide, writer),
      vendorSide.pushAll(request.vendorLines),
    ]);
    if (read.status === 'rejected') throw read.reason;
    if (vendor.status === 'rejected') throw vendor.reason;
    const exported = read.value;
    log.info(
      {
        exportLines: exported.lines,
        rejectedLines: exported.rejected,
        vendorLines: vendorSide.lines,
      },
      'reconciliation sides read',
    );

    const totals = emptyTotals();
    const classifyWith = classifyRules(settings);
    let inactiveRefs = 0;
    let matched = 0;
    for await (const joined of joinByRef(
      exportSide.refs(),
      knownRefs(deps.db, isp.id),
      vendorSide.refs(),
    )) {
      for (const sides of joined) {
        if (++matched % PROGRESS_EVERY === 0)
          request.onProgress?.({ phase: 'matching', count: matched });
        const verdict = classify(sides, classifyWith);
        if (verdict === undefined) {
          inactiveRefs++;
          continue;
        }
        const wait = writer.row(sides, verdict);
        if (wait) await wait;
        const t = totals[verdict.category];
        t.refs++;
        t.ispMicros += sides.isp?.amountMicros ?? 0n;
        t.vendorMicros += sides.vendor?.amountMicros ?? 0n;
        t.expectedMicros += verdict.expectedMicros ?? 0n;
        t.differenceMicros += verdict.differenceMicros ?? 0n;
        if (t.shownRefs.length < SHOWN_REFS_PER_CATEGORY) t.shownRefs.push(sides.ref);
      }
    }

    const summary: ReportSummary = {
      ispId: isp.id,
      ispName: isp.name,
      period,
      currency: isp.billing?.currency ?? 'EUR',
      fileName,
      sha256: exported.sha256,
      exportLines: exported.lines,
      rejectedLines: exported.rejected,
      vendorLines: vendorSide.lines,
      vendorOtherPeriodLines: vendorSide.otherPeriodLines,
      inactiveRefs,
      amountsCompared: classifyWith.retailMicros !== undefined,
      toleranceMicros: classifyWith.toleranceMicros,
      categories: totals,
      shownRejects: exported.shownRejects,
    };
    await writer.finish(summary);
    const counts = Object.fromEntries(CATEGORIES.map((c) => [c, totals[c].refs])) as Record<
      Category,
      number
    >;
    metrics?.runFinished(isp.id, counts, exported.rejected);
    log.info(
      { ...counts, rejectedLines: exported.rejected, durationMs: Date.now() - started },
      'reconciliation done',
    );
    return {
      ispId: isp.id,
      period,
      fileName,
      sha256: exported.sha256,
      exportLines: exported.lines,
      rejectedLines: exported.rejected,
      vendorLines: vendorSide.lines,
      counts,
      paths: writer.paths,
    };
  } catch (err) {
    writer.discard();
    metrics?.runFailed(isp.id);
    throw err;
  } finally {
    exportSide.dispose();
    vendorSide.dispose();
    rmSync(scratchDir, { recursive: true, force: true });
  }
}

interface ExportRead {
  lines: number;
  rejected: number;
  sha256: string;
  shownRejects: ExportReject[];
}

/** Reads the export into the sorter, writing rejects as they come, and hashes its bytes. */
async function readExportInto(
  request: ReconcileRequest,
  fileName: string,
  rules: ExportRules,
  side: ExportSide,
  writer: ReportWriter,
): Promise<ExportRead> {
  const counter = new HashingCounter();
  const source = createReadStream(request.file);
  // pipeline, not pipe: a read error reaches the reader, and stopping early closes the file.
  const input = pipeline(source, counter, () => {});
  const read: ExportRead = { lines: 0, rejected: 0, sha256: '', shownRejects: [] };
  try {
    for await (const item of readExport(input, fileName, rules)) {
      if (++read.lines % PROGRESS_EVERY === 0) {
        request.onProgress?.({ phase: 'reading', count: read.lines });
      }
      if (item.kind === 'line') {
        await side.pushLine(item.ref, item.line, item.modules, item.amountMicros);
        continue;
      }
      read.rejected++;
      if (read.shownRejects.length < SHOWN_REJECTS) read.shownRejects.push(item);
      await writer.reject(item);
      if (item.ref !== null) await side.pushRejected(item.ref, item.line);
    }
  } finally {
    source.destroy();
  }
  read.sha256 = counter.digest();
  return read;
}
