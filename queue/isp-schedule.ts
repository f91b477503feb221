/**
 * What every month-end schedule shares: one cron task per ISP in the ISP's time zone, an
 * optional check of every ISP at start, one ISP at a time (each check holds a lock connection
 * and works with more, so checking every ISP at once could take every database connection),
 * failures logged and left to the next run, and a stop that waits for the check in progress.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { IspConfig } from '../config/load.js';
import type { Logger } from '../platform/logger.js';
import { createSerialRunner } from '../platform/serial.js';

export interface IspSchedule {
  /** Task names are `<name>-<isp id>`; also the log's word for the schedule. */
  name: string;
  cron: string;
  /** The ISPs this schedule serves (enabled ones with the section it needs). */
  isps: readonly IspConfig[];
  log: Logger;
  checkAtStart: boolean;
  /** One check of one ISP; logs its own outcome. */
  check: (isp: IspConfig) => Promise<void>;
  /** Logged with the error when a check fails, e.g. "...; retried tomorrow". */
  failure: string;
}

export interface RunningSchedule {
  stop(): Promise<void>;
}

export function startIspSchedule(schedule: IspSchedule): RunningSchedule {
  const tasks: ScheduledTask[] = [];
  const running = new Set<Promise<unknown>>();
  const serial = createSerialRunner();

  const check = (isp: IspConfig) => {
    const run = serial(() => schedule.check(isp))
      .catch((err) => schedule.log.warn({ err, isp: isp.id }, schedule.failure))
      .finally(() => running.delete(run));
    running.add(run);
    return run;
  };

  for (const isp of schedule.isps) {
    tasks.push(
      cron.schedule(schedule.cron, () => check(isp), {
        name: `${schedule.name}-${isp.id}`,
        timezone: isp.timeZone,
        noOverlap: true,
      }),
    );
    schedule.log.info(
      { isp: isp.id, cron: schedule.cron, timeZone: isp.timeZone },
      `${schedule.name} scheduled`,
    );
    if (schedule.checkAtStart) void check(isp);
  }

  return {
    async stop() {
      for (const task of tasks) await task.destroy();
      await Promise.allSettled([...running]);
    },
  };
}
