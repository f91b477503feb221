/**
 * The record of reconciliations in the connector database (`reconciliation_runs`), for the
 * operations overview: the report files and the marker stay in the ISP's work folder, and this
 * row says what the last run of a period found without reading them. Both the daily scheduler
 * and `relais reconcile` record through {@link recordReconciliationRun}, so the overview shows
 * the last run whoever started it. One row per ISP and period: a rerun replaces it.
 */
import type { Db } from '../../platform/db.js';
import type { ReconcileResult } from './reconcile.js';

export interface ReconciliationRun {
  ispId: string;
  period: string;
  ranAt: Date;
  fileName: string;
  sha256: string;
  exportLines: number;
  rejectedLines: number;
  vendorLines: number;
  counts: Record<string, number>;
  /** The HTML report. */
  reportPath: string;
}

/** Records (or, for a period reconciled before, replaces) the run that gave `result`. */
export async function recordReconciliationRun(
  db: Db,
  result: ReconcileResult,
  ranAt: Date = new Date(),
): Promise<void> {
  const row = {
    isp_id: result.ispId,
    period: result.period,
    ran_at: ranAt,
    file_name: result.fileName.slice(0, 255),
    sha256: result.sha256,
    export_lines: result.exportLines,
    rejected_lines: result.rejectedLines,
    vendor_lines: result.vendorLines,
    counts: JSON.stringify(result.counts),
    report_path: result.paths.html.slice(0, 1024),
  };
  const { isp_id: _isp, period: _period, ...changed } = row;
  await db('reconciliation_runs').insert(row).onConflict(['isp_id', 'period']).merge(changed);
}

/** The recorded run of an ISP and period, or undefined. */
export async function findReconciliationRun(
  db: Db,
  ispId: string,
  period: string,
): Promise<ReconciliationRun | undefined> {
  const row = (await db('reconciliation_runs').where({ isp_id: ispId, period }).first()) as
    | {
        isp_id: string;
        period: string;
        ran_at: Date;
        file_name: string;
        sha256: string;
        export_lines: number;
        rejected_lines: number;
        vendor_lines: number;
        counts: string;
        report_path: string;
      }
    | undefined;
  if (!row) return undefined;
  return {
    ispId: row.isp_id,
    period: row.period,
    ranAt: row.ran_at,
    fileName: row.file_name,
    sha256: row.sha256,
    exportLines: Number(row.export_lines),
    rejectedLines: Number(row.rejected_lines),
    vendorLines: Number(row.vendor_lines),
    counts: JSON.parse(row.counts) as Record<string, number>,
    reportPath: row.report_path,
  };
}
