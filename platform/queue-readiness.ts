/**
 * Readiness of queue consumption, for the processes that run workers. A BullMQ worker can stop
 * taking jobs without dying (a known failure after Redis reconnects: the blocking connection
 * never resumes), so "the process is up" says little. Two checks catch it:
 *
 * - per queue: jobs wait, the oldest has waited longer than `stalledAfterS`, and no job of the
 *   queue is active anywhere. Busy workers (a job active) are fine however long the queue is;
 *   a queue paused on purpose (`Queue#pause`) is not a stall either;
 * - per local worker: it runs and is not paused.
 *
 * The first is about the whole deployment (any worker on any host taking jobs keeps it green),
 * the second about this process. Each reason says what to do.
 */
import type { Job, Queue, Worker } from 'bullmq';
import type { ReadinessCheck } from './readiness.js';

const RESTART_HINT = 'see docs/operations.md';

/**
 * When a job became ready to run, in epoch ms: when it was added, or when its last attempt
 * started (a retry), plus any delay it waited out. A retried job is ready a little later than
 * this (its failed attempt's duration), so its wait reads a little long; never short.
 */
export function readySinceMs(job: Pick<Job, 'timestamp' | 'processedOn' | 'delay'>): number {
  const start = Math.max(Number(job.timestamp) || 0, Number(job.processedOn) || 0);
  return start + (Number(job.delay) || 0);
}

/** Not ready when `queue` has jobs waiting longer than `stalledAfterS` and none active. */
export function queueStallCheck(
  queue: Queue,
  stalledAfterS: number,
  nowMs: () => number = Date.now,
): ReadinessCheck {
  return {
    name: `queue.${queue.name}`,
    async run() {
      const counts = await queue.getJobCounts('waiting', 'active');
      const waiting = counts.waiting ?? 0;
      if (waiting === 0 || (counts.active ?? 0) > 0) return { ok: true };
      const [oldest] = await queue.getWaiting(0, 0);
      if (!oldest) return { ok: true }; // taken meanwhile
      const waitedS = Math.floor((nowMs() - readySinceMs(oldest)) / 1000);
      if (waitedS < stalledAfterS) return { ok: true };
      if (await queue.isPaused()) return { ok: true };
      return {
        ok: false,
        reason: `queue ${queue.name} has ${waiting} job(s) waiting, the oldest for ${waitedS} s, and none active: no worker is taking its jobs; restart the worker processes (${RESTART_HINT})`,
      };
    },
  };
}

/** Not ready when this process's worker of a queue has stopped or was paused. */
export function workerCheck(worker: Worker): ReadinessCheck {
  return {
    name: `worker.${worker.name}`,
    async run() {
      // Paused first: a paused worker's loop ends, so it does not run either.
      if (worker.isPaused() && !worker.closing) {
        return {
          ok: false,
          reason: `the worker of queue ${worker.name} in this process is paused: resume it or restart this process (${RESTART_HINT})`,
        };
      }
      if (!worker.isRunning() || worker.closing) {
        return {
          ok: false,
          reason: `the worker of queue ${worker.name} in this process is not running: restart this process (${RESTART_HINT})`,
        };
      }
      return { ok: true };
    },
  };
}
