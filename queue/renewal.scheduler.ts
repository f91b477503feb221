/**
 * The renewal schedule: every day shortly after midnight in each ISP's time zone, close the
 * period that has just ended if it is not closed yet. Checking daily rather than only on the
 * 1st means a scheduler that was down at month end catches up the next day (and a check also
 * runs at start); closing the latest ended period renews every licence behind it, so a missed
 * month needs no separate run. A MySQL named lock per ISP lets one scheduler act at a time;
 * the period close itself is safe to repeat and resumes an interrupted run.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import type { LicensingDeps } from '../licensing/context.js';
import { periodOf, previousPeriod } from '../licensing/periods.js';
import { renewPeriod } from '../licensing/renewal.js';
import type { Logger } from '../platform/logger.js';
import { BUSY, withNamedLock } from '../platform/named-lock.js';

/** Ten past midnight: clear of the DST changes, which happen at 01:00 UTC or 02:00-03:00 local. */
export const RENEWAL_CRON = '10 0 * * *';

export interface RenewalSchedulerDeps {
  config: RelaisConfig;
  licensing: LicensingDeps;
  log: Logger;
  /** Run a check for every ISP at start (default true). */
  checkAtStart?: boolean;
}

export interface RenewalScheduler {
  stop(): Promise<void>;
}

/**
 * The period to close at `now` for an ISP in `timeZone`: the latest one that has ended there,
 * unless it (or a later one) is closed already (`lastClosed`, YYYY-MM or null). Null: nothing due.
 */
export function duePeriod(now: Date, timeZone: string, lastClosed: string | null): string | null {
  const ended = previousPeriod(periodOf(now, timeZone));
  return lastClosed !== null && lastClosed >= ended ? null : ended;
}

class Stopped extends Error {}

export type RenewalCheck =
  | { isp: string; outcome: 'busy' | 'up-to-date' }
  | {
      isp: string;
      outcome: 'closed';
      period: string;
      renewed: number;
      held: number;
      lapsed: number;
    };

/** One check of one ISP: closes the due period, if any, holding the ISP's renewal lock. */
export async function renewDuePeriod(
  deps: LicensingDeps,
  isp: IspConfig,
  shouldStop: () => boolean = () => false,
): Promise<RenewalCheck> {
  const result = await withNamedLock(deps.db, `renewal:${isp.id}`, async () => {
    const row = (await deps
      .db('period_closes')
      .where({ isp_id: isp.id })
      .whereNotNull('finished_at')
      .max({ last: 'period' })
      .first()) as { last: string | null } | undefined;
    const period = duePeriod(deps.now(), isp.timeZone, row?.last ?? null);
    if (period === null) return { isp: isp.id, outcome: 'up-to-date' } as const;
    const counts = await renewPeriod(deps, isp.id, period, {
      afterChunk: () => {
        if (shouldStop()) throw new Stopped('renewal scheduler stopping');
      },
    });
    return {
      isp: isp.id,
      outcome: 'closed',
      period,
      renewed: counts.renewed,
      held: counts.held,
      lapsed: counts.lapsed,
    } as const;
  });
  return result === BUSY ? { isp: isp.id, outcome: 'busy' } : result;
}

export function startRenewalScheduler(deps: RenewalSchedulerDeps): RenewalScheduler {
  const tasks: ScheduledTask[] = [];
  const running = new Set<Promise<unknown>>();
  let stopping = false;

  const check = (isp: IspConfig) => {
    const run = renewDuePeriod(deps.licensing, isp, () => stopping)
      .then((result) => {
        if (result.outcome === 'closed') deps.log.info(result, 'period closed on schedule');
        else if (result.outcome === 'busy') {
          deps.log.debug({ isp: isp.id }, 'another scheduler is renewing this ISP');
        }
      })
      .catch((err) => {
        if (err instanceof Stopped) {
          deps.log.info({ isp: isp.id }, 'period close paused for shutdown; it resumes next run');
        } else {
          deps.log.warn({ err, isp: isp.id }, 'scheduled period close failed; retried tomorrow');
        }
      })
      .finally(() => running.delete(run));
    running.add(run);
    return run;
  };

  for (const isp of deps.config.isps.values()) {
    if (!isp.enabled) continue;
    const task = cron.schedule(RENEWAL_CRON, () => check(isp), {
      name: `renewal-${isp.id}`,
      timezone: isp.timeZone,
      noOverlap: true,
    });
    tasks.push(task);
    deps.log.info({ isp: isp.id, cron: RENEWAL_CRON, timeZone: isp.timeZone }, 'renewal scheduled');
    if (deps.checkAtStart ?? true) void check(isp);
  }

  return {
    async stop() {
      stopping = true;
      for (const task of tasks) await task.destroy();
      await Promise.allSettled([...running]);
    },
  };
}
