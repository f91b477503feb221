/**
 * The queues, their jobs and payloads, in one place. Payloads carry ids only (an ISP id, a
 * feed id, a batch id): BullMQ stores job data in clear in Redis, so nothing personal may sit
 * there. Job ids are derived from what the job is about, so a repeat adds nothing (delivery
 * jobs deduplicate by batch instead, see `deliveryJobOptions`).
 */
import { randomUUID } from 'node:crypto';
import { type BackoffStrategy, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export const QUEUE_NAMES = {
  feeds: 'feeds',
  provisioning: 'provisioning',
  delivery: 'delivery',
} as const;

export interface PollIspJob {
  ispId: string;
  /** The schedule minute this poll belongs to, ISO 8601 (absent for a poll asked by hand). */
  scheduledFor?: string;
}

export interface IngestIspJob {
  ispId: string;
  feedId?: string;
}

export interface ProvisionBatchJob {
  ispId: string;
  batchId: number;
}

/** Hand the keys of one sent provisioning batch to the customers (e-mail or return file). */
export interface DeliverBatchJob {
  ispId: string;
  batchId: number;
}

export const JOB_NAMES = {
  pollIsp: 'poll-isp',
  ingestIsp: 'ingest-isp',
  provisionBatch: 'provision-batch',
  deliverBatch: 'deliver-batch',
} as const;

/**
 * Defaults for every job: retried with exponential backoff; completed jobs kept a week (their
 * ids keep deduplicating replays that long), failed jobs kept until a person looks.
 */
export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 5_000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 100_000 },
  removeOnFail: false,
};

/** The backoff type of the provisioning and delivery queues (see `backoffDelayMs`). */
export const CAPPED_BACKOFF = 'capped-exponential';
/** The longest pause between two attempts of a provisioning or delivery job. */
export const MAX_BACKOFF_MS = 5 * 60_000;

/**
 * Jobs that wait on a licensing server, a relay or a database which may be down for hours: 5 s
 * doubling up to 5 minutes, then every 5 minutes, 300 attempts in all (about 24.5 hours, see
 * `retryBudgetMs`), after which a person looks (provisioning) or the sweep adds a fresh job
 * (delivery). The workers of both queues pass `backoffDelayMs` as their backoff strategy.
 */
export const PROVISIONING_JOB_OPTIONS: JobsOptions = {
  ...DEFAULT_JOB_OPTIONS,
  attempts: 300,
  backoff: { type: CAPPED_BACKOFF, delay: 5_000 },
};

/**
 * As provisioning, but failed jobs are not kept for good: the `deliveries` rows are the record,
 * and `sweepPendingDeliveries` adds a fresh job for keys still pending, so failed jobs would
 * only pile up (one per sweep for an ISP whose templates are broken, for instance).
 */
export const DELIVERY_JOB_OPTIONS: JobsOptions = {
  ...PROVISIONING_JOB_OPTIONS,
  removeOnFail: { age: 30 * 24 * 3600, count: 10_000 },
};

/**
 * The pause before attempt `attemptsMade + 1` (BullMQ counts the attempt that just failed), for
 * any backoff option: BullMQ's own `fixed` and `exponential`, and `capped-exponential`, which
 * is exponential capped at `MAX_BACKOFF_MS`.
 */
export function backoffDelayMs(backoff: JobsOptions['backoff'], attemptsMade: number): number {
  if (backoff === undefined) return 0;
  if (typeof backoff === 'number') return backoff;
  const delay = backoff.delay ?? 0;
  if (backoff.type === 'fixed') return delay;
  const exponential = delay * 2 ** Math.max(0, attemptsMade - 1);
  return backoff.type === CAPPED_BACKOFF ? Math.min(exponential, MAX_BACKOFF_MS) : exponential;
}

/** The worker setting that makes `capped-exponential` known to BullMQ. */
export const BACKOFF_STRATEGY: BackoffStrategy = (attemptsMade, _type, _err, job) =>
  backoffDelayMs(job?.opts.backoff, attemptsMade);

/** How long a job with these options keeps being retried before it fails for good. */
export function retryBudgetMs(options: JobsOptions): number {
  let total = 0;
  for (let made = 1; made < (options.attempts ?? 1); made++) {
    total += backoffDelayMs(options.backoff, made);
  }
  return total;
}

/** The UTC minute of `date` as yyyyMMddHHmm: unambiguous whatever the ISP's time zone. */
function minuteStamp(date: Date): string {
  return date.toISOString().slice(0, 16).replace(/[-:T]/g, '');
}

export function pollJobId(ispId: string, minute: Date): string {
  return `poll-${ispId}-${minuteStamp(minute)}`;
}

/** The drain asked for when a feed arrives (push, CLI): one per feed. */
export function ingestJobId(ispId: string, feedId: string): string {
  return `ingest-${ispId}-${feedId}`;
}

/**
 * The drain the scheduler's sweep asks for: one per feed and sweep minute. Not the arrival id,
 * which a completed (BUSY) or failed job keeps taken for days, so the sweep could never retry.
 */
export function sweepJobId(ispId: string, feedId: string, minute: Date): string {
  return `${ingestJobId(ispId, feedId)}-${minuteStamp(minute)}`;
}

/**
 * A batch's job id: its outbox id and, when known, the instant the batch was written. The
 * instant keeps a recreated connector database (ids start at 1 again) from meeting the
 * completed jobs BullMQ still keeps for the old batches of the same ids, which would silently
 * swallow the new ones.
 */
export function batchJobId(batchId: number, createdAt?: Date): string {
  return createdAt ? `batch-${batchId}-${createdAt.getTime().toString(36)}` : `batch-${batchId}`;
}

/**
 * The deduplication id of a batch's delivery job. Not a job id: a completed or failed job would
 * keep a fixed id taken for days, and keys recorded later for that batch would get no job.
 */
export function deliveryJobId(batchId: number): string {
  return `delivery-${batchId}`;
}

/**
 * Adds the delivery job of a batch unless one is waiting, delayed or retrying (it will read
 * every pending row when it runs). While one is running, BullMQ keeps this add and starts it
 * once the running one finishes, so keys recorded meanwhile are not left behind. Once the job
 * completed or failed, the next add starts a new one.
 */
export function deliveryJobOptions(batchId: number): JobsOptions {
  return {
    // Unique, so no earlier job of the batch, finished or not, can make this add a no-op.
    jobId: `${deliveryJobId(batchId)}-${randomUUID()}`,
    deduplication: { id: deliveryJobId(batchId), keepLastIfActive: true },
  };
}

export interface Queues {
  feeds: Queue<PollIspJob | IngestIspJob>;
  provisioning: Queue<ProvisionBatchJob>;
  delivery: Queue<DeliverBatchJob>;
  close(): Promise<void>;
}

/** Producer-side queue handles sharing one fail-fast connection. */
export function openQueues(connection: Redis, prefix: string): Queues {
  const options = { connection, prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS };
  const feeds = new Queue<PollIspJob | IngestIspJob>(QUEUE_NAMES.feeds, options);
  const provisioning = new Queue<ProvisionBatchJob>(QUEUE_NAMES.provisioning, {
    ...options,
    defaultJobOptions: PROVISIONING_JOB_OPTIONS,
  });
  const delivery = new Queue<DeliverBatchJob>(QUEUE_NAMES.delivery, {
    ...options,
    defaultJobOptions: DELIVERY_JOB_OPTIONS,
  });
  // BullMQ passes every error of the connection on to each queue, and prints it raw on stderr
  // when the queue has no listener: three multi-line traces per reconnect while Redis is down,
  // outside the JSON log. The connection's own listener logs them once (platform/redis.ts).
  for (const queue of [feeds, provisioning, delivery]) queue.on('error', () => {});
  return {
    feeds,
    provisioning,
    delivery,
    async close() {
      await Promise.all([feeds.close(), provisioning.close(), delivery.close()]);
    },
  };
}
