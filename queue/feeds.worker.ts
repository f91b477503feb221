/**
 * The worker of the `feeds` queue: polls of an ISP inbox and drains of received feeds. Jobs for
 * one ISP may run on any worker of any host; the ISP locks inside make that safe, and a worker
 * that finds an ISP busy completes its job at once (the lock holder processes what waits).
 */
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RelaisConfig } from '../config/load.js';
import type { IntakeDeps, IntakeService } from '../connectors/intake/intake-service.js';
import { pollIsp } from '../connectors/intake/poll.js';
import type { Logger } from '../platform/logger.js';
import { BUSY } from '../platform/named-lock.js';
import { forQueue } from './job-errors.js';
import { WORKER_METRICS } from './queue-metrics.js';
import { type IngestIspJob, JOB_NAMES, type PollIspJob, QUEUE_NAMES } from './queues.js';

export interface FeedsWorkerDeps {
  config: RelaisConfig;
  intake: IntakeService;
  intakeDeps: IntakeDeps;
  log: Logger;
  connection: Redis;
  prefix: string;
  concurrency?: number;
}

async function run(deps: FeedsWorkerDeps, job: Job<PollIspJob | IngestIspJob>): Promise<unknown> {
  const isp = deps.intake.isp(job.data.ispId);
  if (job.name === JOB_NAMES.pollIsp) {
    const result = await pollIsp(deps.intakeDeps, deps.intake, isp);
    return result === BUSY ? { busy: true } : result;
  }
  const result = await deps.intake.drain(isp);
  return result === BUSY
    ? { busy: true }
    : { processed: result.processed.map((p) => [p.feed.id, p.outcome.status]) };
}

export function startFeedsWorker(deps: FeedsWorkerDeps): Worker {
  const worker = new Worker<PollIspJob | IngestIspJob>(
    QUEUE_NAMES.feeds,
    async (job) => {
      try {
        return await run(deps, job);
      } catch (err) {
        throw forQueue(err);
      }
    },
    {
      connection: deps.connection,
      prefix: deps.prefix,
      concurrency: deps.concurrency ?? 2,
      metrics: WORKER_METRICS,
    },
  );
  worker.on('failed', (job, err) => {
    deps.log.error(
      { err, jobId: job?.id, job: job?.name, isp: job?.data.ispId, attempts: job?.attemptsMade },
      'feeds job failed',
    );
  });
  worker.on('error', (err) => deps.log.error({ err }, 'feeds worker error'));
  return worker;
}
