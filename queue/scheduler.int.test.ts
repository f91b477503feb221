/**
 * The scheduler role against real Redis: which ISPs get a poll task, the time zone each cron
 * runs in, the job ids that make two schedulers add one poll job per tick, and the sweep that
 * re-asks for the drain of feeds left waiting. Ticks are triggered through node-cron's
 * `execute()` under a pinned clock, so no test waits a minute; every task is stopped first so
 * that no real tick lands in the middle of a test.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import type { ScheduledTask } from 'node-cron';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { writeHashed } from '../connectors/intake/feed-files.js';
import { receiveFeed } from '../connectors/intake/receive.js';
import { BUSY, withNamedLock } from '../platform/named-lock.js';
import { packageRoot } from '../platform/package-root.js';
import { encode, generateCustomers, renderCsv } from '../test/generators/isp-exports.js';
import { useTestContext } from '../test/harness/context.js';
import { openTestIntake, type TestIntake } from '../test/harness/intake.js';
import { startFeedsWorker } from './feeds.worker.js';
import {
  ingestJobId,
  JOB_NAMES,
  openQueues,
  pollJobId,
  type Queues,
  sweepJobId,
} from './queues.js';
import { type Scheduler, startScheduler } from './scheduler.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));

/** The shipped demo-fai config with another transport, schedule or switch. */
function isp(extra: { enabled?: boolean; timeZone?: string }, intake: Record<string, unknown>) {
  return stringify({ ...shipped, ...extra, intake: { ...shipped.intake, ...intake } });
}

const NIGHTLY = '30 2 * * *';

const ctx = useTestContext({
  isps: {
    paris: isp({ timeZone: 'Europe/Paris' }, { schedule: { cron: NIGHTLY } }),
    tokyo: isp({}, { schedule: { cron: NIGHTLY, timeZone: 'Asia/Tokyo' } }),
    remote: isp(
      {},
      {
        transport: {
          type: 'sftp',
          host: '127.0.0.1',
          username: 'relais',
          password: 'unused-password',
          hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`,
        },
        schedule: { cron: NIGHTLY, timeZone: 'UTC' },
      },
    ),
    dormant: isp({ enabled: false }, { schedule: { cron: NIGHTLY } }),
    pushed: isp({}, { transport: { type: 'http', secret: 'pushed-secret-0123456789abcdef0123' } }),
  },
});

let intake: TestIntake;
beforeAll(async () => {
  intake = await openTestIntake(ctx());
});
afterAll(async () => {
  await intake?.close();
});

/** Two processes' worth of schedulers: each with its own Redis connection and queues. */
const running: { scheduler: Scheduler; queues: Queues; redis: Redis }[] = [];

function startStopped(): Scheduler {
  const redis = new Redis(ctx().config.deployment.redis.url, { maxRetriesPerRequest: null });
  const queues = openQueues(redis, ctx().prefix);
  const scheduler = startScheduler({
    config: ctx().config,
    db: ctx().connectorDb,
    queues,
    log: intake.deps.log,
  });
  for (const task of scheduler.tasks) expect(task.getStatus()).toBe('idle');
  for (const task of scheduler.tasks) task.stop();
  running.push({ scheduler, queues, redis });
  return scheduler;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const { scheduler, queues, redis } of running.splice(0)) {
    await scheduler.stop();
    await queues.close();
    redis.disconnect();
  }
  await intake.queues.feeds.obliterate({ force: true });
});

function taskOf(scheduler: Scheduler, name: string): ScheduledTask {
  const task = scheduler.tasks.find((t) => t.name === name);
  if (!task) throw new Error(`no task ${name}`);
  return task;
}

/** Pins the clock (Date only; timers stay real, so Redis and MySQL work as usual). */
function pinClock(iso: string): void {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(new Date(iso));
}

async function pollJobIds(): Promise<string[]> {
  const jobs = await intake.queues.feeds.getJobs(['waiting', 'delayed', 'prioritized']);
  return jobs
    .filter((job) => job.name === JOB_NAMES.pollIsp)
    .map((job) => job.id as string)
    .sort();
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('startScheduler', () => {
  it('gives a poll task to each enabled polled ISP, none to disabled or pushing ones', () => {
    const names = startStopped()
      .tasks.map((t) => t.name)
      .sort();
    expect(names).toEqual(['poll-paris', 'poll-remote', 'poll-tokyo', 'sweep']);
  });

  it.each([
    ['paris', 'in winter (UTC+1)', '2026-01-15T01:30:00Z', ['2026-01-15T02:30:00Z']],
    ['paris', 'in summer (UTC+2)', '2026-07-15T00:30:00Z', ['2026-07-15T01:30:00Z']],
    ['tokyo', 'from its own schedule zone', '2026-01-14T17:30:00Z', ['2026-01-15T01:30:00Z']],
    ['remote', 'in UTC', '2026-01-15T02:30:00Z', ['2026-01-15T01:30:00Z']],
  ])('evaluates the cron of %s %s', (ispId, _case, tick, notTicks) => {
    const task = taskOf(startStopped(), `poll-${ispId}`);
    expect(task.match(new Date(tick))).toBe(true);
    for (const other of notTicks) expect(task.match(new Date(other))).toBe(false);
  });

  it('plans the next runs at 02:30 Paris time whatever the UTC offset', () => {
    const runs = taskOf(startStopped(), 'poll-paris').getNextRuns(3);
    const clock = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Paris',
      hour: '2-digit',
      minute: '2-digit',
    });
    expect(runs.map((run) => clock.format(run))).toEqual(['02:30', '02:30', '02:30']);
  });
});

describe('pollJobId', () => {
  it.each([
    ['2026-01-15T01:30:00.000Z', 'poll-paris-202601150130'],
    ['2026-01-15T01:30:59.999Z', 'poll-paris-202601150130'],
    ['2026-10-25T00:30:00.000Z', 'poll-paris-202610250030'],
    // 02:30 Paris happens twice on the night clocks go back; the UTC minute tells them apart.
    ['2026-10-25T01:30:00.000Z', 'poll-paris-202610250130'],
  ])('names the tick at %s by the ISP and its UTC minute', (tick, id) => {
    expect(pollJobId('paris', new Date(tick))).toBe(id);
  });
});

describe('two schedulers on one config and one Redis', () => {
  it('add exactly one poll job per ISP per tick', async () => {
    const schedulers = [startStopped(), startStopped()];
    const tick = async () => {
      for (const name of ['poll-paris', 'poll-tokyo', 'poll-remote']) {
        await Promise.all(schedulers.map((s) => taskOf(s, name).execute()));
      }
    };

    pinClock('2026-01-15T01:30:00.200Z');
    await tick();
    await tick(); // a second tick within the same minute, as a restarted scheduler may give
    expect(await pollJobIds()).toEqual([
      'poll-paris-202601150130',
      'poll-remote-202601150130',
      'poll-tokyo-202601150130',
    ]);
    const job = await intake.queues.feeds.getJob('poll-paris-202601150130');
    expect(job?.data).toEqual({
      ispId: 'paris',
      scheduledFor: expect.stringMatching(/^2026-01-15T01:30:/),
    });

    pinClock('2026-01-15T01:31:00.200Z');
    await tick();
    expect(await pollJobIds()).toHaveLength(6);
    expect(await pollJobIds()).toContain('poll-paris-202601150131');
  });
});

describe('the sweep', () => {
  it('drains a pushed feed whose push-time ingest job completed while the ISP was busy', async () => {
    const body = encode(renderCsv(generateCustomers(20, 3)), 'windows-1252');
    const { feed } = await receiveFeed(intake.deps, {
      ispId: 'pushed',
      source: 'http',
      name: 'abonnes_push.csv',
      fill: (path) => writeHashed(Readable.from([body]), path),
    });
    const pushJobId = ingestJobId('pushed', feed.id);
    const connection = new Redis(ctx().config.deployment.redis.url, {
      maxRetriesPerRequest: null,
    });
    const worker = startFeedsWorker({
      config: ctx().config,
      intake: intake.intake,
      intakeDeps: intake.deps,
      log: intake.deps.log,
      connection,
      prefix: ctx().prefix,
    });
    try {
      // The push route's drain runs while another process holds the ISP lock, and that
      // process ends before it gets to the feed: the job completes BUSY, the feed waits.
      const held = await withNamedLock(ctx().connectorDb, 'isp:pushed', async () => {
        await intake.queues.feeds.add(
          JOB_NAMES.ingestIsp,
          { ispId: 'pushed', feedId: feed.id },
          { jobId: pushJobId },
        );
        return waitFor(async () => {
          const job = await intake.queues.feeds.getJob(pushJobId);
          return (await job?.getState()) === 'completed' ? job : undefined;
        });
      });
      expect(held).not.toBe(BUSY);
      expect(held === BUSY ? undefined : held.returnvalue).toEqual({ busy: true });
      expect(await intake.ledger.get(feed.id)).toMatchObject({ status: 'received' });

      const schedulers = [startStopped(), startStopped()];
      pinClock('2026-01-15T01:30:00.200Z');
      await Promise.all(schedulers.map((s) => taskOf(s, 'sweep').execute()));
      vi.useRealTimers();

      const status = await waitFor(async () => {
        const row = await intake.ledger.get(feed.id);
        return row?.status === 'received' || row?.status === 'parsing' ? undefined : row?.status;
      });
      expect(status).toBe('applied');
      const drains = await intake.queues.feeds.getJobs([
        'completed',
        'failed',
        'active',
        'waiting',
      ]);
      expect(drains.map((job) => job.id).sort()).toEqual([
        pushJobId,
        sweepJobId('pushed', feed.id, new Date('2026-01-15T01:30:00Z')),
      ]);
      expect(sweepJobId('pushed', feed.id, new Date('2026-01-15T01:30:00Z'))).toBe(
        `ingest-pushed-${feed.id}-202601150130`,
      );
    } finally {
      await worker.close();
      connection.disconnect();
    }
  });
});

describe('the sweep on the hour', () => {
  it('asks for a delivery job for keys still waiting and erases addresses no e-mail needs', async () => {
    const db = ctx().connectorDb;
    const now = new Date('2026-01-15T01:00:00Z');
    await db('deliveries').insert({
      isp_id: 'pushed',
      subscriber_id: 'sub_0000000000000000000000sweep',
      licence_id: 'lic_0000000000000000000000sweep',
      batch_id: 77,
      channel: 'return-file',
      secret: Buffer.from('sealed'),
      state: 'pending',
      created_at: now,
    });
    // An address of an ISP that delivers by return file: kept by nothing, so purged.
    await db('contacts').insert({
      subscriber_id: 'sub_0000000000000000000000sweep',
      isp_id: 'pushed',
      email: Buffer.from('sealed address'),
      language: 'fr',
      created_at: now,
    });
    const [scheduler] = [startStopped()];
    const queues = running[running.length - 1]?.queues as Queues;
    try {
      pinClock('2026-01-15T02:00:00.200Z');
      await taskOf(scheduler as Scheduler, 'sweep').execute();
      vi.useRealTimers();

      const jobs = await queues.delivery.getJobs(['waiting', 'delayed', 'active', 'completed']);
      expect(jobs.map((j) => j.data)).toEqual([{ ispId: 'pushed', batchId: 77 }]);
      expect(await db('contacts').where({ isp_id: 'pushed' })).toEqual([]);
    } finally {
      await queues.delivery.obliterate({ force: true });
      await db('deliveries').where({ batch_id: 77 }).delete();
    }
  });
});
