/**
 * The billing close schedule: every day in each ISP's time zone, close the ISP's last period
 * once its end plus `billing.cutoffDays` has passed, if it is not closed yet. Modelled on the
 * renewal schedule (`renewal.scheduler.ts`), and separate from it: renewal closes a period at
 * midnight on the 1st, billing waits for late events. Periods skipped while the scheduler was
 * down are closed oldest first, because each close emits the adjustments of those before it.
 * A MySQL named lock per ISP lets one scheduler act at a time; the close itself is safe to
 * repeat, resumes an interrupted run, and its primary key is the real guard.
 */

import type { IspConfig, RelaisConfig } from '../config/load.js';
import { type CloseOptions, closableAt, closeBillingPeriod } from '../licensing/billing/close.js';
import type { LicensingDeps } from '../licensing/context.js';
import { periodOf, shiftPeriod } from '../licensing/periods.js';
import type { Logger } from '../platform/logger.js';
import { BUSY, withNamedLock } from '../platform/named-lock.js';
import { startIspSchedule } from './isp-schedule.js';

/** Twenty past midnight: after the renewal check (ten past), clear of DST changes. */
export const BILLING_CLOSE_CRON = '20 0 * * *';

export interface BillingCloseSchedulerDeps {
  config: RelaisConfig;
  licensing: LicensingDeps;
  log: Logger;
  /** Run a check for every ISP at start (default true). */
  checkAtStart?: boolean;
  /** Passed to every close (the invoice writer's afterFreeze hangs here). */
  closeOptions?: Pick<CloseOptions, 'afterFreeze'>;
}

export interface BillingCloseScheduler {
  stop(): Promise<void>;
}

/**
 * The periods to close at `now`, oldest first: from the one after `lastClosed` (or the latest
 * closable one when none is closed) up to the latest whose end plus cutoff has passed.
 */
export function duePeriods(
  now: Date,
  timeZone: string,
  cutoffDays: number,
  lastClosed: string | null,
): string[] {
  let latest = shiftPeriod(periodOf(now, timeZone), -1);
  if (closableAt(latest, timeZone, cutoffDays) > now) latest = shiftPeriod(latest, -1);
  const due: string[] = [];
  for (
    let p = lastClosed === null ? latest : shiftPeriod(lastClosed, 1);
    p <= latest;
    p = shiftPeriod(p, 1)
  ) {
    due.push(p);
  }
  return due;
}

export type BillingCloseCheck =
  | { isp: string; outcome: 'busy' | 'up-to-date' }
  | { isp: string; outcome: 'closed'; periods: string[]; lines: number };

/**
 * A close whose freeze committed but whose vendor documents never got written (the hook threw,
 * or the process died in between) is closed for good, so no later check would close it again:
 * run the close once more, which finds it closed and runs the hook alone.
 */
async function repairDocuments(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  options: Pick<CloseOptions, 'afterFreeze'>,
): Promise<void> {
  const close = (await deps
    .db('billing_closes')
    .where({ isp_id: ispId, period })
    .first('line_count')) as { line_count: number } | undefined;
  if (!close || close.line_count === 0) return;
  const documents = await deps.db('billing_documents').where({ isp_id: ispId, period }).first('id');
  if (documents) return;
  deps.log.warn({ isp: ispId, period }, 'closed period has no vendor documents; writing them now');
  await closeBillingPeriod(deps, ispId, period, options);
}

/** One check of one ISP: closes what is due, holding the ISP's billing-close lock. */
export async function closeDueBillingPeriods(
  deps: LicensingDeps,
  isp: IspConfig,
  options: Pick<CloseOptions, 'afterFreeze'> = {},
): Promise<BillingCloseCheck> {
  const billing = isp.billing;
  if (!billing) return { isp: isp.id, outcome: 'up-to-date' };
  const result = await withNamedLock(deps.db, `billing-close:${isp.id}`, async () => {
    const row = (await deps
      .db('billing_closes')
      .where({ isp_id: isp.id, status: 'closed' })
      .max({ last: 'period' })
      .first()) as { last: string | null } | undefined;
    const last = row?.last ?? null;
    if (last !== null && options.afterFreeze) await repairDocuments(deps, isp.id, last, options);
    const due = duePeriods(deps.now(), isp.timeZone, billing.cutoffDays, last);
    if (due.length === 0) return { isp: isp.id, outcome: 'up-to-date' } as const;
    let lines = 0;
    for (const period of due) {
      const closed = await closeBillingPeriod(deps, isp.id, period, options);
      lines += closed.summary.lineCount;
    }
    return { isp: isp.id, outcome: 'closed', periods: due, lines } as const;
  });
  return result === BUSY ? { isp: isp.id, outcome: 'busy' } : result;
}

export function startBillingCloseScheduler(deps: BillingCloseSchedulerDeps): BillingCloseScheduler {
  return startIspSchedule({
    name: 'billing-close',
    cron: BILLING_CLOSE_CRON,
    isps: [...deps.config.isps.values()].filter((isp) => isp.enabled && isp.billing),
    log: deps.log,
    checkAtStart: deps.checkAtStart ?? true,
    failure: 'scheduled billing close failed; retried tomorrow',
    check: async (isp) => {
      const result = await closeDueBillingPeriods(deps.licensing, isp, deps.closeOptions);
      if (result.outcome === 'closed') deps.log.info(result, 'billing period closed on schedule');
      else if (result.outcome === 'busy') {
        deps.log.debug({ isp: isp.id }, 'another scheduler is closing this ISP');
      }
    },
  });
}
