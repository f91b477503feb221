/**
 * The scheduler role. Each ISP's cron expression is evaluated by node-cron in the ISP's time
 * zone; each tick adds one poll job whose id is the ISP and the scheduled minute, so any number
 * of schedulers add one job per tick. The database (ISP locks, ledger) is the final guard
 * against doing work twice; the job id only saves the duplicate effort. Every minute the
 * scheduler also sweeps: it moves provisioning batches still pending in the outbox to the queue
 * (after a Redis outage, for instance) and asks for a drain of each ISP with feeds waiting;
 * every five minutes it asks for a delivery job for each batch with keys still waiting, and
 * every hour it erases e-mail addresses no delivery needs any more.
 * A sweep's drain job id is the oldest waiting feed and the sweep minute (`sweepJobId`), never
 * the id the push route used for that feed: BullMQ keeps completed jobs a week and failed ones
 * for good, so a push-time drain that found the ISP busy, or failed, would hold that id and the
 * feed would wait forever. Two schedulers' sweeps of one minute still add one job; the ledger
 * and the ISP lock make a drain with nothing to do, or a concurrent one, harmless.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { RelaisConfig } from '../config/load.js';
import { purgeStaleContacts } from '../connectors/contacts-retention.js';
import { POLLED_TRANSPORTS } from '../connectors/transports/registry.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { sweepPendingDeliveries } from './delivery.worker.js';
import { flushOutbox } from './outbox.js';
import { JOB_NAMES, pollJobId, type Queues, sweepJobId } from './queues.js';

export interface SchedulerDeps {
  config: RelaisConfig;
  db: Db;
  queues: Queues;
  log: Logger;
}

export interface Scheduler {
  tasks: ScheduledTask[];
  stop(): Promise<void>;
}

/** Minutes between two sweeps of keys waiting for a delivery job; an hour for stale contacts. */
const DELIVERY_SWEEP_MINUTES = 5;

async function sweep(deps: SchedulerDeps, minute: Date): Promise<void> {
  await flushOutbox(deps.db, deps.queues, deps.log);
  const minuteOfHour = minute.getUTCMinutes();
  if (minuteOfHour % DELIVERY_SWEEP_MINUTES === 0) {
    const batches = await sweepPendingDeliveries(deps);
    if (batches > 0) deps.log.info({ batches }, 'delivery jobs asked for keys still waiting');
  }
  if (minuteOfHour === 0) {
    const purged = await purgeStaleContacts(deps.db, deps.config, minute);
    if (purged.notEmailIsp + purged.expired > 0) deps.log.info(purged, 'stale contacts purged');
  }
  const waiting: { isp_id: string; id: string }[] = await deps
    .db('feeds')
    .select('isp_id')
    .min({ id: 'id' })
    .whereIn('status', ['received', 'parsing'])
    .groupBy('isp_id');
  for (const { isp_id: ispId, id } of waiting) {
    if (!deps.config.isps.has(ispId)) continue;
    const jobId = sweepJobId(ispId, id, minute);
    await deps.queues.feeds.add(JOB_NAMES.ingestIsp, { ispId }, { jobId });
  }
}

export function startScheduler(deps: SchedulerDeps): Scheduler {
  const tasks: ScheduledTask[] = [];
  for (const isp of deps.config.isps.values()) {
    if (!isp.enabled || !POLLED_TRANSPORTS.includes(isp.intake.transport.type)) continue;
    const { cron: expression, timeZone } = isp.intake.schedule;
    const task = cron.schedule(
      expression,
      async (context) => {
        const jobId = pollJobId(isp.id, context.date);
        try {
          await deps.queues.feeds.add(
            JOB_NAMES.pollIsp,
            { ispId: isp.id, scheduledFor: context.date.toISOString() },
            { jobId },
          );
        } catch (err) {
          deps.log.warn({ err, isp: isp.id, jobId }, 'cannot queue scheduled poll');
        }
      },
      { name: `poll-${isp.id}`, timezone: timeZone, noOverlap: true },
    );
    tasks.push(task);
    deps.log.info({ isp: isp.id, cron: expression, timeZone }, 'poll scheduled');
  }
  const sweeper = cron.schedule(
    '* * * * *',
    async (context) => {
      try {
        await sweep(deps, context.date);
      } catch (err) {
        deps.log.warn({ err }, 'outbox sweep failed; retrying next minute');
      }
    },
    { name: 'sweep', noOverlap: true },
  );
  tasks.push(sweeper);
  return {
    tasks,
    async stop() {
      for (const task of tasks) await task.destroy();
    },
  };
}
