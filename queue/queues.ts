/**
 * The queues, their jobs and payloads, in one place. Payloads carry ids only (an ISP id, a
 * feed id, a batch id): BullMQ stores job data in clear in Redis, so nothing personal may sit
 * there. Job ids are derived from what the job is about, so a repeat adds nothing.
 */
import { type JobsOptions, Queue } from 'bullmq';
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

export function batchJobId(batchId: number): string {
  return `batch-${batchId}`;
}

export function deliveryJobId(batchId: number): string {
  return `delivery-${batchId}`;
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
  const provisioning = new Queue<ProvisionBatchJob>(QUEUE_NAMES.provisioning, options);
  const delivery = new Queue<DeliverBatchJob>(QUEUE_NAMES.delivery, options);
  return {
    feeds,
    provisioning,
    delivery,
    async close() {
      await Promise.all([feeds.close(), provisioning.close(), delivery.close()]);
    },
  };
}
