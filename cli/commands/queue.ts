/**
 * `relais queue list|retry|clean`: the BullMQ queues (queue/queues.ts) for a person at a
 * terminal. `list` shows jobs of one state, newest first, in a short view: id, name, ISP,
 * attempts, the first line of the failure and the times, never the payload. `retry` sends
 * failed jobs back to waiting with a fresh set of attempts; `clean` removes finished jobs.
 *
 * Retrying is how a person sends a provisioning batch the server refused for good once the
 * cause is fixed (queue/provisioning.worker.ts). Job by job through `job.retry`, not one
 * `queue.retryJobs` call: that keeps the attempts a job already made, so a provisioning job
 * retried after 300 attempts would get exactly one more instead of its day of backoff.
 */

import type { Job, Queue } from 'bullmq';
import type { Command } from 'commander';
import { openQueues, QUEUE_NAMES, type Queues } from '../../queue/queues.js';
import { withServices } from '../command-context.js';
import { EXIT_FAILURE, EXIT_USAGE, ExitRequest } from '../exit.js';
import { configOption, out } from '../output.js';
import type { Services } from '../services.js';
import { minute } from './status.js';

const LIST_STATES = ['failed', 'waiting', 'delayed', 'active', 'completed'] as const;
type ListState = (typeof LIST_STATES)[number];
const CLEAN_STATES = ['completed', 'failed'] as const;
type CleanState = (typeof CLEAN_STATES)[number];

const KNOWN_QUEUES = Object.values(QUEUE_NAMES);
/** Failed jobs retried per `retry --failed` run, unless --limit says otherwise. */
const DEFAULT_RETRY_LIMIT = 1000;
/** Jobs removed per `clean` run: BullMQ removes them in one Redis script, kept short. */
const DEFAULT_CLEAN_LIMIT = 10_000;
/** Longest failure text shown: its first line, cut here. */
const REASON_CHARS = 120;

export interface JobView {
  queue: string;
  id: string;
  name: string;
  state: ListState;
  ispId: string | null;
  attemptsMade: number;
  attempts: number;
  failedReason: string | null;
  createdAt: Date;
  processedAt: Date | null;
  finishedAt: Date | null;
  /** When a delayed job is due. */
  dueAt: Date | null;
}

function usage(message: string): never {
  out(message);
  throw new ExitRequest(EXIT_USAGE);
}

function failure(message: string): never {
  out(message);
  throw new ExitRequest(EXIT_FAILURE);
}

function queueName(value: string): string {
  if ((KNOWN_QUEUES as string[]).includes(value)) return value;
  return usage(`unknown queue ${value}; the queues are ${KNOWN_QUEUES.join(', ')}`);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  return usage(`unknown ${what} ${value}; one of ${allowed.join(', ')}`);
}

function positiveInt(value: string, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    usage(`${option} must be a whole number above 0, got "${value}"`);
  return n;
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** "90s", "30m", "1h", "7d" (or "0") as milliseconds. */
export function parseDuration(value: string): number | undefined {
  if (value === '0') return 0;
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * (UNIT_MS[match[2] as string] as number);
}

function firstLine(text: string | undefined): string | null {
  if (!text) return null;
  const line = text.split('\n', 1)[0] as string;
  return line.length > REASON_CHARS ? `${line.slice(0, REASON_CHARS - 1)}…` : line;
}

function dateOrNull(ms: number | undefined): Date | null {
  return ms ? new Date(ms) : null;
}

/** What `list` shows of a job: ids and times, the ISP id of its payload, nothing else of it. */
export function jobView(queue: string, state: ListState, job: Job): JobView {
  const data = job.data as { ispId?: unknown } | undefined;
  return {
    queue,
    id: String(job.id),
    name: job.name,
    state,
    ispId: typeof data?.ispId === 'string' ? data.ispId : null,
    attemptsMade: job.attemptsMade,
    attempts: job.opts.attempts ?? 1,
    failedReason: firstLine(job.failedReason),
    createdAt: new Date(job.timestamp),
    processedAt: dateOrNull(job.processedOn),
    finishedAt: dateOrNull(job.finishedOn),
    dueAt: state === 'delayed' ? new Date(job.timestamp + (job.delay ?? 0)) : null,
  };
}

function time(date: Date | null): string {
  return date ? minute(date) : '-';
}

function printJobs(views: readonly JobView[]): void {
  const idWidth = Math.max(6, ...views.map((v) => v.id.length));
  const nameWidth = Math.max(4, ...views.map((v) => v.name.length));
  const ispWidth = Math.max(3, ...views.map((v) => (v.ispId ?? '-').length));
  out(
    [
      'queue'.padEnd(12),
      'job'.padEnd(idWidth),
      'name'.padEnd(nameWidth),
      'isp'.padEnd(ispWidth),
      'tries'.padStart(7),
      'created (UTC)'.padEnd(16),
      'finished (UTC)'.padEnd(16),
      'reason',
    ].join('  '),
  );
  for (const v of views) {
    const end = v.state === 'delayed' ? v.dueAt : v.finishedAt;
    out(
      [
        v.queue.padEnd(12),
        v.id.padEnd(idWidth),
        v.name.padEnd(nameWidth),
        (v.ispId ?? '-').padEnd(ispWidth),
        `${v.attemptsMade}/${v.attempts}`.padStart(7),
        time(v.createdAt).padEnd(16),
        (v.state === 'delayed' ? `due ${time(end)}` : time(end)).padEnd(16),
        v.failedReason ?? '',
      ]
        .join('  ')
        .trimEnd(),
    );
  }
}

function queueOf(queues: Queues, name: string): Queue {
  return queues[name as keyof typeof QUEUE_NAMES] as Queue;
}

async function withQueues<T>(
  configFile: string | undefined,
  fn: (queues: Queues, services: Services) => Promise<T>,
): Promise<T> {
  return withServices(configFile, async (services) => {
    const queues = openQueues(services.redis, services.config.deployment.redis.prefix);
    try {
      return await fn(queues, services);
    } finally {
      await queues.close();
    }
  });
}

/** Jobs of `state`, newest first (delayed: soonest due first), at most `limit` per queue. */
async function listJobs(queue: Queue, state: ListState, limit: number): Promise<JobView[]> {
  const jobs = await queue.getJobs([state], 0, limit - 1, state === 'delayed');
  return jobs.filter((j): j is Job => j !== undefined).map((j) => jobView(queue.name, state, j));
}

/** Sends one failed job back to waiting with all its attempts; says why when it cannot. */
async function retryJob(queue: Queue, id: string): Promise<void> {
  const job = await queue.getJob(id);
  if (!job) failure(`no job ${id} in queue ${queue.name}`);
  const state = await job.getState();
  if (state !== 'failed') {
    failure(`job ${id} of queue ${queue.name} is ${state}; only a failed job can be retried`);
  }
  await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
}

async function retryFailed(
  queue: Queue,
  limit: number,
): Promise<{ retried: number; left: number }> {
  const jobs = await queue.getJobs(['failed'], 0, limit - 1, true);
  let retried = 0;
  for (const job of jobs) {
    if (!job) continue;
    try {
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      retried++;
    } catch {
      // Retried or removed by someone else meanwhile: nothing to do for this one.
    }
  }
  return { retried, left: await queue.getFailedCount() };
}

export function registerQueueCommands(program: Command): void {
  const queue = program
    .command('queue')
    .description('look at the job queues; retry failed jobs; remove finished ones');

  configOption(queue.command('list'))
    .description('list jobs of one state, newest first, without their payload')
    .option('--queue <name>', `only this queue (${KNOWN_QUEUES.join(', ')})`)
    .option('--state <state>', `jobs in this state (${LIST_STATES.join(', ')})`, 'failed')
    .option('--limit <n>', 'at most this many per queue', '20')
    .option('--json', 'one JSON object per line')
    .action(
      async (options: {
        config?: string;
        queue?: string;
        state: string;
        limit: string;
        json?: boolean;
      }) => {
        const names = options.queue ? [queueName(options.queue)] : KNOWN_QUEUES;
        const state = oneOf(options.state, LIST_STATES, 'state');
        const limit = positiveInt(options.limit, '--limit');
        await withQueues(options.config, async (queues) => {
          const views: JobView[] = [];
          for (const name of names)
            views.push(...(await listJobs(queueOf(queues, name), state, limit)));
          if (options.json) {
            for (const view of views) out(JSON.stringify(view));
            return;
          }
          if (views.length === 0) {
            out(`no ${state} job in ${names.join(', ')}`);
            return;
          }
          printJobs(views);
        });
      },
    );

  configOption(queue.command('retry'))
    .description('send failed jobs back to waiting, with a fresh set of attempts')
    .requiredOption('--queue <name>', `the queue (${KNOWN_QUEUES.join(', ')})`)
    .option('--job <id>', 'this failed job')
    .option('--failed', 'every failed job of the queue (up to --limit)')
    .option('--limit <n>', 'with --failed: at most this many', String(DEFAULT_RETRY_LIMIT))
    .action(
      async (options: {
        config?: string;
        queue: string;
        job?: string;
        failed?: boolean;
        limit: string;
      }) => {
        const name = queueName(options.queue);
        if ((options.job === undefined) === (options.failed === undefined)) {
          usage('give either --job ID or --failed');
        }
        const limit = positiveInt(options.limit, '--limit');
        await withQueues(options.config, async (queues) => {
          const target = queueOf(queues, name);
          if (options.job !== undefined) {
            await retryJob(target, options.job);
            out(`${name} job ${options.job} retried`);
            return;
          }
          const { retried, left } = await retryFailed(target, limit);
          out(`${name}: ${retried} failed jobs retried${left > 0 ? `, ${left} still failed` : ''}`);
        });
      },
    );

  configOption(queue.command('clean'))
    .description('remove completed or failed jobs from a queue')
    .requiredOption('--queue <name>', `the queue (${KNOWN_QUEUES.join(', ')})`)
    .requiredOption('--state <state>', `jobs in this state (${CLEAN_STATES.join(', ')})`)
    .option('--older-than <age>', 'only jobs finished longer ago than this (90s, 30m, 1h, 7d)', '0')
    .option('--limit <n>', 'at most this many', String(DEFAULT_CLEAN_LIMIT))
    .action(
      async (options: {
        config?: string;
        queue: string;
        state: string;
        olderThan: string;
        limit: string;
      }) => {
        const name = queueName(options.queue);
        const state: CleanState = oneOf(options.state, CLEAN_STATES, 'state');
        const graceMs = parseDuration(options.olderThan);
        if (graceMs === undefined) {
          usage(
            `--older-than must be a duration such as 90s, 30m, 1h or 7d, got "${options.olderThan}"`,
          );
        }
        const limit = positiveInt(options.limit, '--limit');
        await withQueues(options.config, async (queues) => {
          const removed = await queueOf(queues, name).clean(graceMs, limit, state);
          const more = removed.length === limit ? '; there may be more: run it again' : '';
          out(`${name}: ${removed.length} ${state} jobs removed${more}`);
        });
      },
    );
}
