/**
 * The month end of `relais demo`, once the period's cutoff days have passed on the demo's
 * clock: per ISP, the licence renewal, the billing close with the vendor's invoice, the invoice
 * lines written in the ISP's own format and delivered to its outbox, and the reconciliation of
 * the ISP's own billing export when the samples hold one. The same functions the schedules and
 * the `relais period`, `billing export` and `reconcile` commands call.
 *
 * @remarks Safe to run again: a closed period is not rated twice, its files come out byte for
 * byte the same, a delivered file is not delivered again, and the same export rewrites the
 * same report.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import picomatch from 'picomatch';
import { exportInvoiceLines } from '../billing/export.js';
import { CATEGORIES } from '../billing/reconciliation/classify.js';
import { fetchNewestExport } from '../billing/reconciliation/export-source.js';
import { reconcilePeriod } from '../billing/reconciliation/reconcile.js';
import { recordReconciliationRun } from '../billing/reconciliation/runs.js';
import type { IspConfig } from '../config/load.js';
import { closeAndInvoice } from '../licensing/billing/month-end.js';
import { renewPeriod } from '../licensing/renewal.js';
import { vendorLinesFor } from './billing-lines.js';
import type { RunningRelais } from './commands/start.js';
import { deliver } from './demo-intake.js';
import { out } from './output.js';

/** Files the month end produced, for the closing summary. */
export interface Produced {
  what: string;
  path: string;
}

/** The ISP's billing export of `period` among the samples: a name matching its pattern. */
function sampleExport(isp: IspConfig, samplesDir: string, period: string): string | undefined {
  const pattern = isp.billing?.reconciliation?.source.pattern;
  const dir = join(samplesDir, isp.id);
  if (!pattern || !existsSync(dir)) return undefined;
  const matches = picomatch(pattern);
  const stamp = period.replace('-', '');
  return readdirSync(dir)
    .sort()
    .find((name) => matches(name) && name.includes(stamp));
}

async function closeIsp(running: RunningRelais, isp: IspConfig, period: string) {
  const deps = running.licensing.server;
  const renewal = await renewPeriod(deps, isp.id, period);
  const earlier = renewal.alreadyClosed ? ' (done by an earlier run)' : '';
  out(
    `   renewal${earlier}: ${renewal.renewed} licences renewed for next month, ${renewal.held} held (suspended), ${renewal.lapsed} lapsed (cancelled)`,
  );
  const closed = await closeAndInvoice(deps, isp.id, period);
  const { summary, documents } = closed;
  const again = closed.outcome === 'already-closed' ? ' (closed by an earlier run)' : '';
  out(
    `   billing close${again}: ${summary.lineCount} billable lines, total ${summary.total} ${summary.currency} excl. VAT`,
  );
  for (const d of [documents.invoice, documents.creditNote]) {
    if (d)
      out(
        `   vendor invoice ${d.number} of ${d.issueDate}: ${d.payable} ${summary.currency} payable`,
      );
  }
  if (documents.noInvoiceReason) out(`   no vendor invoice: ${documents.noInvoiceReason}`);
  return documents.files.map((f) => ({
    what: `${isp.id} vendor document`,
    path: join(documents.dir, f.name),
  }));
}

async function exportIsp(running: RunningRelais, isp: IspConfig, period: string) {
  const { services, licensing } = running;
  const result = await exportInvoiceLines(
    { db: services.connectorDb, log: services.log, source: licensing.billing },
    isp,
    period,
  );
  out(`   invoice lines for the ISP: ${result.lines} lines, total ${result.totalAmount}`);
  const produced: Produced[] = [];
  for (const d of result.file?.delivered ?? []) {
    out(`     ${d.name} ${d.outcome} to ${d.target}`);
    produced.push({
      what: `${isp.id} invoice lines`,
      path: `${d.target.replace(/^file:\/\//, '')}/${d.name}`,
    });
  }
  return produced;
}

async function reconcileIsp(
  running: RunningRelais,
  isp: IspConfig,
  period: string,
  samplesDir: string,
): Promise<Produced[]> {
  const name = sampleExport(isp, samplesDir, period);
  const settings = isp.billing?.reconciliation;
  const transport = isp.intake.transport;
  if (!name || !settings || transport.type !== 'local') return [];
  // The ISP drops its own billing export of the month where its source says.
  deliver(join(samplesDir, isp.id, name), transport.inbox ?? join(isp.workDir, 'inbox'), name);
  const { services } = running;
  const downloads = mkdtempSync(join(isp.workDir, 'reconcile-'));
  try {
    const source = await fetchNewestExport(isp, settings.source, downloads, services.log);
    const result = await reconcilePeriod(
      { db: services.connectorDb, log: services.log, metrics: services.metrics },
      {
        isp,
        period,
        file: source.path,
        fileName: source.fileName,
        vendorLines: vendorLinesFor(services, isp, period),
      },
    );
    await recordReconciliationRun(services.connectorDb, result, services.clock.now());
    out(
      `   reconciliation of ${result.fileName} (${result.exportLines} lines, ${result.rejectedLines} rejected) against what was activated:`,
    );
    const found = CATEGORIES.filter((c) => result.counts[c] > 0).map(
      (c) => `${c} ${result.counts[c]}`,
    );
    out(`     ${found.join(', ')}`);
    return [
      { what: `${isp.id} reconciliation report`, path: result.paths.html },
      { what: `${isp.id} reconciliation CSV`, path: result.paths.csv },
      { what: `${isp.id} reconciliation rejects`, path: result.paths.rejects },
    ];
  } finally {
    rmSync(downloads, { recursive: true, force: true });
  }
}

/** Closes `period` for every ISP and hands each its outputs; returns the files produced. */
export async function playMonthEnd(
  running: RunningRelais,
  period: string,
  samplesDir: string,
): Promise<Produced[]> {
  const produced: Produced[] = [];
  const isps = [...running.services.config.isps.values()].sort((a, b) => a.id.localeCompare(b.id));
  for (const isp of isps) {
    if (!isp.billing) continue;
    out(`   ${isp.id} (${isp.billing.proration} proration, ${isp.billing.rounding} rounding):`);
    produced.push(...(await closeIsp(running, isp, period)));
    produced.push(...(await exportIsp(running, isp, period)));
    produced.push(...(await reconcileIsp(running, isp, period, samplesDir)));
  }
  return produced;
}
