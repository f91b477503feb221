/**
 * `relais queue list|retry|clean` as an operator runs them: the real command in a child
 * process against this file's Redis prefix, with jobs left failed, completed, waiting and
 * delayed by real BullMQ workers, and what each command leaves in the queues.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openQueues, type Queues } from '../queue/queues.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { completeJobs, failJobs } from './harness/operations.js';

const ctx = useTestContext();
const queue = (...args: string[]) =>
  runCli(['queue', ...args, '--config', join(ctx().dir, 'relais.yaml')]);

let queues: Queues;
/** In the payload of a failed feeds job: the list must not print payloads. */
const PAYLOAD_MARK = 'payload-field-never-shown';

beforeAll(async () => {
  queues = openQueues(ctx().redis, ctx().prefix);
  await failJobs(
    queues.feeds,
    ctx().redis,
    [
      { name: 'poll-isp', data: { ispId: 'north', scheduledFor: PAYLOAD_MARK }, jobId: 'poll-a' },
      { name: 'poll-isp', data: { ispId: 'south' }, jobId: 'poll-b' },
    ],
    'SFTP_UNREACHABLE: sftp.example.net:22 refused the connection',
  );
  await failJobs(
    queues.provisioning,
    ctx().redis,
    [{ name: 'provision-batch', data: { ispId: 'north', batchId: 3 }, jobId: 'batch-3' }],
    'PROVISIONING_REJECTED: the server refused the batch',
  );
  await completeJobs(queues.delivery, ctx().redis, [
    { name: 'deliver-batch', data: { ispId: 'north', batchId: 1 } },
    { name: 'deliver-batch', data: { ispId: 'north', batchId: 2 } },
  ]);
  await queues.feeds.add('ingest-isp', { ispId: 'north' }, { jobId: 'ingest-waiting' });
  await queues.feeds.add('poll-isp', { ispId: 'east' }, { jobId: 'poll-later', delay: 3_600_000 });
}, 60_000);

afterAll(async () => {
  await queues?.close();
});

describe('relais queue list', () => {
  it('lists the failed jobs of every queue: ids, ISP, attempts, the first line of the reason', async () => {
    const { code, stdout, stderr } = await queue('list');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const [header, ...rows] = stdout.trimEnd().split('\n');
    expect(header).toMatch(
      /^queue\s+job\s+name\s+isp\s+tries\s+created \(UTC\)\s+finished \(UTC\)\s+reason$/,
    );
    expect(rows).toHaveLength(3);
    const time = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d';
    // Newest first within a queue; the two feeds jobs may fail within the same millisecond.
    expect(rows.slice(0, 2)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          new RegExp(
            `^feeds\\s+poll-b\\s+poll-isp\\s+south\\s+1/1\\s+${time}\\s+${time}\\s+SFTP_UNREACHABLE: sftp.example.net:22 refused the connection$`,
          ),
        ),
        expect.stringMatching(/^feeds\s+poll-a\s+poll-isp\s+north\s+1\/1\s/),
      ]),
    );
    expect(rows[2]).toEqual(
      expect.stringMatching(
        /^provisioning\s+batch-3\s+provision-batch\s+north\s+1\/1\s.*PROVISIONING_REJECTED: the server refused the batch$/,
      ),
    );
    expect(stdout).not.toContain('second line');
    expect(stdout).not.toContain(PAYLOAD_MARK);
  });

  it('lists one queue and state as JSON lines, a delayed job with when it is due', async () => {
    const { code, stdout } = await queue(
      'list',
      '--queue',
      'feeds',
      '--state',
      'delayed',
      '--json',
    );
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const job = JSON.parse(lines[0] as string);
    expect(job).toMatchObject({
      queue: 'feeds',
      id: 'poll-later',
      name: 'poll-isp',
      state: 'delayed',
      ispId: 'east',
      attemptsMade: 0,
      failedReason: null,
      finishedAt: null,
    });
    expect(Date.parse(job.dueAt) - Date.parse(job.createdAt)).toBe(3_600_000);
    expect(job).not.toHaveProperty('data');
  });

  it('says so when no job is in that state', async () => {
    const { code, stdout } = await queue('list', '--queue', 'delivery', '--state', 'active');
    expect(code).toBe(0);
    expect(stdout).toBe('no active job in delivery\n');
  });

  it('refuses an unknown queue, listing the known ones, and an unknown state', async () => {
    const unknown = await queue('list', '--queue', 'mail');
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe(
      'unknown queue mail; the queues are feeds, provisioning, delivery\n',
    );
    const state = await queue('list', '--state', 'stuck');
    expect(state.code).toBe(2);
    expect(state.stdout).toMatch(/^unknown state stuck; one of failed, waiting, delayed/);
  });
});

describe('relais queue retry', () => {
  it('sends one failed job back to waiting with a fresh set of attempts', async () => {
    const { code, stdout, stderr } = await queue(
      'retry',
      '--queue',
      'provisioning',
      '--job',
      'batch-3',
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe('provisioning job batch-3 retried\n');
    const job = await queues.provisioning.getJob('batch-3');
    expect(await job?.getState()).toBe('waiting');
    expect(job?.attemptsMade).toBe(0);
  });

  it('refuses a job that is not failed, or not there, with exit code 1', async () => {
    const waiting = await queue('retry', '--queue', 'feeds', '--job', 'ingest-waiting');
    expect(waiting.code).toBe(1);
    expect(waiting.stdout).toBe(
      'job ingest-waiting of queue feeds is waiting; only a failed job can be retried\n',
    );
    const missing = await queue('retry', '--queue', 'feeds', '--job', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('no job nope in queue feeds\n');
  });

  it('retries every failed job of a queue with --failed', async () => {
    expect(await queues.feeds.getFailedCount()).toBe(2);
    const { code, stdout } = await queue('retry', '--queue', 'feeds', '--failed');
    expect(code).toBe(0);
    expect(stdout).toBe('feeds: 2 failed jobs retried\n');
    expect(await queues.feeds.getFailedCount()).toBe(0);
    expect(await queues.feeds.getJobState('poll-a')).toBe('waiting');
  });

  it('wants exactly one of --job and --failed', async () => {
    const neither = await queue('retry', '--queue', 'feeds');
    expect(neither.code).toBe(2);
    expect(neither.stdout).toBe('give either --job ID or --failed\n');
    const both = await queue('retry', '--queue', 'feeds', '--job', 'x', '--failed');
    expect(both.code).toBe(2);
  });
});

describe('relais queue clean', () => {
  it('removes finished jobs older than --older-than, then all of them', async () => {
    const young = await queue(
      'clean',
      '--queue',
      'delivery',
      '--state',
      'completed',
      '--older-than',
      '1h',
    );
    expect(young.code).toBe(0);
    expect(young.stdout).toBe('delivery: 0 completed jobs removed\n');
    expect(await queues.delivery.getCompletedCount()).toBe(2);
    const all = await queue('clean', '--queue', 'delivery', '--state', 'completed', '--limit', '1');
    expect(all.code).toBe(0);
    expect(all.stdout).toBe(
      'delivery: 1 completed jobs removed; there may be more: run it again\n',
    );
    const rest = await queue('clean', '--queue', 'delivery', '--state', 'completed');
    expect(rest.stdout).toBe('delivery: 1 completed jobs removed\n');
    expect(await queues.delivery.getCompletedCount()).toBe(0);
  });

  it('refuses a state it does not clean and an age it cannot read', async () => {
    const state = await queue('clean', '--queue', 'feeds', '--state', 'waiting');
    expect(state.code).toBe(2);
    expect(state.stdout).toBe('unknown state waiting; one of completed, failed\n');
    const age = await queue(
      'clean',
      '--queue',
      'feeds',
      '--state',
      'failed',
      '--older-than',
      'soon',
    );
    expect(age.code).toBe(2);
    expect(age.stdout).toMatch(/^--older-than must be a duration such as 90s, 30m, 1h or 7d/);
  });
});
