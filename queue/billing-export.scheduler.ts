/**
 * The connector's month-end schedule: every hour, for each ISP with invoice lines declared,
 * export the last ended period once the subscription server has closed it. Hourly, because the
 * close happens on the server's own schedule (period end plus the ISP's cutoff) and a failed
 * delivery (outbox down, ISP endpoint busy) should be tried again within the hour, not the
 * next day. A period already delivered costs one ledger query; a period not closed yet costs one
 * summary request. A MySQL named lock per ISP keeps two schedulers from exporting at once; the
 * export itself is safe to repeat (see billing/export.ts).
 */

import { type ExportDeps, exportInvoiceLines, PUSH_LEDGER_NAME } from '../billing/export.js';
import {
  invoiceLinesFileName,
  invoiceLinesFor,
  isInvoiceFile,
} from '../billing/invoice-lines/registry.js';
import { findDelivery } from '../billing/outbox/delivery-ledger.js';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import { periodOf, previousPeriod } from '../licensing/periods.js';
import { isRelaisError } from '../platform/errors.js';
import { BUSY, withNamedLock } from '../platform/named-lock.js';
import { startIspSchedule } from './isp-schedule.js';

export const BILLING_EXPORT_CRON = '35 * * * *';

export interface BillingExportSchedulerDeps extends ExportDeps {
  config: RelaisConfig;
  /** Run a check for every ISP at start (default true). */
  checkAtStart?: boolean;
}

export type BillingExportCheck =
  | { isp: string; period: string; outcome: 'delivered-before' | 'not-closed' | 'busy' }
  | { isp: string; period: string; outcome: 'exported'; lines: number };

/** Whether the ISP's lines of `period` are already delivered, by the ledger alone. */
async function deliveredBefore(deps: ExportDeps, isp: IspConfig, period: string): Promise<boolean> {
  const { settings, ctx } = invoiceLinesFor(isp, period);
  const name = isInvoiceFile(settings) ? invoiceLinesFileName(settings, ctx) : PUSH_LEDGER_NAME;
  const row = await findDelivery(deps.db, isp.id, period, name);
  return row?.status === 'delivered';
}

/** One check of one ISP: exports the last ended period if it is closed and not delivered. */
export async function exportDuePeriod(
  deps: ExportDeps,
  isp: IspConfig,
  now: Date = new Date(),
): Promise<BillingExportCheck> {
  const period = previousPeriod(periodOf(now, isp.timeZone));
  if (await deliveredBefore(deps, isp, period)) {
    return { isp: isp.id, period, outcome: 'delivered-before' };
  }
  const result = await withNamedLock(deps.db, `billing-export:${isp.id}`, async () => {
    try {
      const exported = await exportInvoiceLines(deps, isp, period);
      return { isp: isp.id, period, outcome: 'exported', lines: exported.lines } as const;
    } catch (err) {
      if (isRelaisError(err) && err.code === 'BILLING_PERIOD_NOT_CLOSED') {
        return { isp: isp.id, period, outcome: 'not-closed' } as const;
      }
      throw err;
    }
  });
  return result === BUSY ? { isp: isp.id, period, outcome: 'busy' } : result;
}

export interface BillingExportScheduler {
  stop(): Promise<void>;
}

export function startBillingExportScheduler(
  deps: BillingExportSchedulerDeps,
): BillingExportScheduler {
  return startIspSchedule({
    name: 'billing-export',
    cron: BILLING_EXPORT_CRON,
    isps: [...deps.config.isps.values()].filter((isp) => isp.enabled && isp.billing?.invoiceLines),
    log: deps.log,
    checkAtStart: deps.checkAtStart ?? true,
    failure: 'scheduled invoice-line export failed; retried next hour',
    check: async (isp) => {
      const result = await exportDuePeriod(deps, isp);
      if (result.outcome === 'exported')
        deps.log.info(result, 'invoice lines exported on schedule');
      else deps.log.debug(result, 'invoice lines: nothing to export');
    },
  });
}
