/**
 * Rows of every table the operations overview reads, written straight into a test context's
 * databases in the shape the intake, the workers and the close write them, and jobs in each
 * state on its queues. For the overview and for the `relais status` and `relais queue` tests,
 * which look at what an operator sees rather than at how the rows came to be.
 */
import { createHash } from 'node:crypto';
import { type Job, type Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Db } from '../../platform/db.js';
import { newId } from '../../platform/ids.js';

export interface FeedRowOptions {
  name: string;
  status: 'received' | 'parsing' | 'applied' | 'held' | 'failed' | 'duplicate';
  receivedAt: Date;
  records?: number;
  applied?: number;
  rejected?: number;
  errorCode?: string | null;
  errorMessage?: string | null;
}

/** A feed ledger row; returns its id. The ISP must be in `isps` (see `syncIsps`). */
export async function insertFeed(db: Db, ispId: string, feed: FeedRowOptions): Promise<string> {
  const id = newId('feed');
  const sha256 = createHash('sha256').update(id).digest('hex');
  await db('feeds').insert({
    id,
    isp_id: ispId,
    source: 'cli',
    name: feed.name,
    size_bytes: 100,
    sha256,
    content_key: feed.status === 'failed' ? null : sha256,
    status: feed.status,
    records: feed.records ?? 0,
    applied: feed.applied ?? 0,
    rejected: feed.rejected ?? 0,
    error_code: feed.errorCode ?? null,
    error_message: feed.errorMessage ?? null,
    received_at: feed.receivedAt,
    finished_at: feed.receivedAt,
  });
  return id;
}

/** A provisioning outbox batch of one command; returns its id. */
export async function insertBatch(
  db: Db,
  ispId: string,
  state: 'pending' | 'queued' | 'sent' | 'failed',
  createdAt: Date,
): Promise<number> {
  const [id] = await db('provisioning_batches').insert({
    isp_id: ispId,
    feed_id: 'feed_seeded',
    command_count: 1,
    subscribes: 1,
    commands: '[]',
    state,
    created_at: createdAt,
    queued_at: state === 'pending' ? null : createdAt,
  });
  return Number(id);
}

/** Commands the server refused for good. */
export async function insertRejections(db: Db, ispId: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await db('provisioning_rejections').insert({
      isp_id: ispId,
      batch_id: 1,
      command_key: `${ispId}-${newId('cmd')}`,
      subscriber_id: newId('sub'),
      code: 'SUBSCRIBER_UNKNOWN',
      message: 'no such subscriber',
      created_at: new Date(),
    });
  }
}

/** Key delivery rows in one state. */
export async function insertDeliveries(
  db: Db,
  ispId: string,
  state: 'pending' | 'delivered' | 'failed',
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    await db('deliveries').insert({
      isp_id: ispId,
      subscriber_id: newId('sub'),
      licence_id: newId('lic'),
      channel: 'email',
      state,
      attempts: state === 'pending' ? 0 : 1,
      last_error: state === 'failed' ? 'mailbox unavailable' : null,
      created_at: new Date(),
      delivered_at: state === 'delivered' ? new Date() : null,
    });
  }
}

/** A month-end file in the delivery ledger. */
export async function insertBillingDelivery(
  db: Db,
  ispId: string,
  period: string,
  fileName: string,
  status: 'uploading' | 'uploaded' | 'delivered',
  at: Date,
): Promise<void> {
  await db('billing_deliveries').insert({
    isp_id: ispId,
    period,
    file_name: fileName,
    sha256: createHash('sha256').update(fileName).digest('hex'),
    size_bytes: 10,
    status,
    target: 'outbox',
    attempts: 1,
    created_at: at,
    updated_at: at,
    delivered_at: status === 'delivered' ? at : null,
  });
}

export interface SeededLine {
  licenceId: string;
  module: string;
  amount: string;
  kind?: 'charge' | 'adjustment';
}

/**
 * A closed billing period: its rated lines and its `billing_closes` row, as the close leaves
 * them. `licences: null` is a period closed before the column existed.
 */
export async function insertClosedPeriod(
  db: Db,
  ispId: string,
  period: string,
  lines: SeededLine[],
  options: { closedAt: Date; licences: number | null; currency?: string },
): Promise<void> {
  const currency = options.currency ?? 'EUR';
  let cents = 0;
  for (const [i, line] of lines.entries()) {
    cents += Math.round(Number(line.amount) * 100);
    await db('rated_lines').insert({
      isp_id: ispId,
      period,
      line_id: `${period}/${String(i).padStart(4, '0')}/${line.licenceId}/${line.module}`,
      kind: line.kind ?? 'charge',
      service_period: period,
      subscriber_id: `sub_${line.licenceId}`,
      licence_id: line.licenceId,
      module: line.module,
      days: 30,
      days_in_period: 30,
      quantity: '1',
      unit_price: line.amount,
      amount: line.amount,
      currency,
      activation_event_id: 1,
      activated_at: options.closedAt,
    });
  }
  const total = (cents / 100).toFixed(2);
  await db('billing_closes').insert({
    isp_id: ispId,
    period,
    status: 'closed',
    ledger_high_id: 1,
    rules: '{}',
    line_count: lines.length,
    summary: JSON.stringify({ currency, lineCount: lines.length, total, totals: [] }),
    licences: options.licences,
    started_at: options.closedAt,
    closed_at: options.closedAt,
  });
}

export interface SeededJob {
  name: string;
  data: Record<string, unknown>;
  jobId?: string;
}

/**
 * Adds `jobs` to `queue` and lets a worker fail each for good with `reason` (one attempt) and
 * a second line below it. Returns the jobs' ids.
 */
export function failJobs(
  queue: Queue,
  redis: Redis,
  jobs: SeededJob[],
  reason: string,
): Promise<string[]> {
  return finishJobs(queue, redis, jobs, 'failed', async () => {
    throw new Error(`${reason}\nsecond line of the error`);
  });
}

/** Adds `jobs` to `queue` and lets a worker complete each. Returns the jobs' ids. */
export function completeJobs(queue: Queue, redis: Redis, jobs: SeededJob[]): Promise<string[]> {
  return finishJobs(queue, redis, jobs, 'completed', async () => 'done');
}

async function finishJobs(
  queue: Queue,
  redis: Redis,
  jobs: SeededJob[],
  state: 'failed' | 'completed',
  processor: () => Promise<unknown>,
): Promise<string[]> {
  const finished = () => (state === 'failed' ? queue.getFailedCount() : queue.getCompletedCount());
  const before = await finished();
  const added: Job[] = [];
  for (const job of jobs) {
    added.push(
      await queue.add(job.name, job.data, {
        attempts: 1,
        ...(job.jobId ? { jobId: job.jobId } : {}),
      }),
    );
  }
  const connection = redis.duplicate({ maxRetriesPerRequest: null });
  const worker = new Worker(queue.name, processor, { connection, prefix: queue.opts.prefix });
  try {
    const deadline = Date.now() + 10_000;
    while ((await finished()) < before + added.length) {
      if (Date.now() > deadline) throw new Error(`jobs not ${state} within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await worker.close();
    connection.disconnect();
  }
  return added.map((j) => j.id as string);
}
