/**
 * The reconciliation schedule: every day in each ISP's time zone, once the last ended period
 * is closed at the subscription server, reconcile the ISP's newest billing export against it.
 * The newest export is taken as the one for that period (an ISP sends one export a month);
 * its sha256 is kept beside the report, so the same export is not reconciled twice and a
 * corrected export sent later is. Exactly what `relais reconcile` does by hand.
 */

import { createHash } from 'node:crypto';
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { ClosedPeriodSource } from '../billing/export.js';
import { mapToCustomerRefs } from '../billing/map-back.js';
import { fetchNewestExport } from '../billing/reconciliation/export-source.js';
import {
  type ReconcileResult,
  reconcilePeriod,
  reconciliationSettingsOf,
} from '../billing/reconciliation/reconcile.js';
import { recordReconciliationRun } from '../billing/reconciliation/runs.js';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import { periodOf, previousPeriod } from '../licensing/periods.js';
import type { Db } from '../platform/db.js';
import { isRelaisError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { BUSY, withNamedLock } from '../platform/named-lock.js';
import { startIspSchedule } from './isp-schedule.js';

/** 07:40: after the night's feeds, clear of the DST changes. */
export const RECONCILIATION_CRON = '40 7 * * *';

export interface ReconciliationDeps {
  db: Db;
  log: Logger;
  metrics?: Metrics;
  source: ClosedPeriodSource;
}

export type ReconciliationCheck =
  | {
      isp: string;
      period: string;
      outcome: 'not-closed' | 'no-export' | 'reconciled-before' | 'busy';
    }
  | { isp: string; period: string; outcome: 'reconciled'; result: ReconcileResult };

/** The record of the last reconciled export, beside the report. */
const markerOf = (isp: IspConfig, period: string) =>
  join(isp.workDir, 'reconciliation', period, 'last-export.json');

function lastReconciled(isp: IspConfig, period: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(markerOf(isp, period), 'utf8')) as { sha256: string }).sha256;
  } catch {
    return undefined;
  }
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Reconciles the newest export of an ISP against `period`, unless done before. */
export async function reconcileIsp(
  deps: ReconciliationDeps,
  isp: IspConfig,
  period: string,
): Promise<ReconciliationCheck> {
  const settings = reconciliationSettingsOf(isp);
  const result = await withNamedLock(deps.db, `reconciliation:${isp.id}`, async () => {
    let summary: { lineCount: number };
    try {
      summary = await deps.source.summary(isp.id, period);
    } catch (err) {
      if (isRelaisError(err) && err.code === 'BILLING_PERIOD_NOT_CLOSED') {
        return { isp: isp.id, period, outcome: 'not-closed' } as const;
      }
      throw err;
    }
    mkdirSync(isp.workDir, { recursive: true });
    const downloads = mkdtempSync(join(isp.workDir, 'reconcile-'));
    try {
      let exported: { path: string; fileName: string };
      try {
        exported = await fetchNewestExport(isp, settings.source, downloads, deps.log);
      } catch (err) {
        if (isRelaisError(err) && err.code === 'RECONCILIATION_EXPORT_NOT_FOUND') {
          return { isp: isp.id, period, outcome: 'no-export' } as const;
        }
        throw err;
      }
      const sha256 = await fileSha256(exported.path);
      if (sha256 === lastReconciled(isp, period)) {
        return { isp: isp.id, period, outcome: 'reconciled-before' } as const;
      }
      const reconciled = await reconcilePeriod(deps, {
        isp,
        period,
        file: exported.path,
        fileName: exported.fileName,
        vendorLines: mapToCustomerRefs(
          deps.db,
          isp.id,
          deps.source.lines(isp.id, period, summary.lineCount),
        ),
      });
      // Recorded before the marker: a crash between the two reconciles again and replaces it.
      await recordReconciliationRun(deps.db, reconciled);
      mkdirSync(join(isp.workDir, 'reconciliation', period), { recursive: true });
      writeFileSync(
        markerOf(isp, period),
        `${JSON.stringify({ fileName: reconciled.fileName, sha256 })}\n`,
      );
      return { isp: isp.id, period, outcome: 'reconciled', result: reconciled } as const;
    } finally {
      rmSync(downloads, { recursive: true, force: true });
    }
  });
  return result === BUSY ? { isp: isp.id, period, outcome: 'busy' } : result;
}

/** One daily check: the last ended period in the ISP's time zone at `now`. */
export function reconcileDuePeriod(
  deps: ReconciliationDeps,
  isp: IspConfig,
  now: Date = new Date(),
): Promise<ReconciliationCheck> {
  return reconcileIsp(deps, isp, previousPeriod(periodOf(now, isp.timeZone)));
}

export interface ReconciliationScheduler {
  stop(): Promise<void>;
}

export function startReconciliationScheduler(
  deps: ReconciliationDeps & { config: RelaisConfig },
): ReconciliationScheduler {
  return startIspSchedule({
    name: 'reconciliation',
    cron: RECONCILIATION_CRON,
    isps: [...deps.config.isps.values()].filter(
      (isp) => isp.enabled && isp.billing?.reconciliation,
    ),
    log: deps.log,
    checkAtStart: false,
    failure: 'scheduled reconciliation failed; retried tomorrow',
    check: async (isp) => {
      const check = await reconcileDuePeriod(deps, isp);
      if (check.outcome === 'reconciled') {
        deps.log.info(
          { isp: isp.id, period: check.period, counts: check.result.counts },
          'billing export reconciled on schedule',
        );
      } else deps.log.debug(check, 'reconciliation: nothing to do');
    },
  });
}
