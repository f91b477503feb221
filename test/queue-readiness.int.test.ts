/**
 * The stalled-queue readiness check against real BullMQ workers on the real Redis, served by a
 * real api's /readyz over HTTP: a worker paused or closed with a job waiting past the bound
 * turns it 503 with a reason that names the queue and says what to do; a resumed worker turns
 * it 200 again; a busy worker (a job active) keeps it 200 however many jobs wait.
 */
import type { AddressInfo } from 'node:net';
import { type Job, Queue, Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApi } from '../api/server.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { queueStallCheck, readySinceMs, workerCheck } from '../platform/queue-readiness.js';
import type { ReadinessCheck } from '../platform/readiness.js';
import { useTestContext } from './harness/context.js';
import { waitFor } from './harness/wait.js';

const ctx = useTestContext();
const STALLED_AFTER_S = 1;

let serial = 0;
const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function openQueue(): Queue {
  const queue = new Queue(`stall-${++serial}`, { connection: ctx().redis, prefix: ctx().prefix });
  closers.push(() => queue.close());
  return queue;
}

/** A worker of `queue` on its own blocking connection; `process` decides how long jobs take. */
function startWorker(queue: Queue, process: (job: Job) => Promise<void>): Worker {
  const connection = new Redis(ctx().config.deployment.redis.url, { maxRetriesPerRequest: null });
  const worker = new Worker(queue.name, process, {
    connection,
    prefix: ctx().prefix,
    concurrency: 1,
  });
  closers.push(async () => {
    await worker.close();
    connection.disconnect();
  });
  return worker;
}

async function serveReadiness(readiness: ReadinessCheck[]): Promise<string> {
  const app: FastifyInstance = await buildApi({
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    bodyLimitBytes: 1024 * 1024,
    readiness,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/readyz`;
}

async function readyz(url: string) {
  const response = await fetch(url);
  const body = (await response.json()) as {
    status: string;
    checks: Record<string, { ok: boolean; reason?: string }>;
  };
  return { ...body, httpStatus: response.status };
}

const waitPastBound = () => new Promise((r) => setTimeout(r, STALLED_AFTER_S * 1000 + 300));

describe('queue stall check', () => {
  it('turns /readyz 503 for a paused worker with a job waiting, and 200 once it resumes', async () => {
    const queue = openQueue();
    const done: string[] = [];
    const worker = startWorker(queue, async (job) => {
      done.push(job.id as string);
    });
    await worker.waitUntilReady();
    await worker.pause();
    const url = await serveReadiness([
      queueStallCheck(queue, STALLED_AFTER_S),
      workerCheck(worker),
    ]);
    await queue.add('work', {}, { jobId: 'waiting-1' });
    await waitPastBound();

    const stalled = await readyz(url);
    expect(stalled).toMatchObject({ httpStatus: 503, status: 'not ready' });
    expect(stalled.checks[`queue.${queue.name}`]).toEqual({
      ok: false,
      reason: expect.stringMatching(
        new RegExp(
          `^queue ${queue.name} has 1 job\\(s\\) waiting, the oldest for \\d+ s, and none active: no worker is taking its jobs; restart the worker processes \\(see docs/operations.md\\)$`,
        ),
      ),
    });
    expect(stalled.checks[`worker.${queue.name}`]?.reason).toBe(
      `the worker of queue ${queue.name} in this process is paused: resume it or restart this process (see docs/operations.md)`,
    );

    worker.resume();
    await waitFor('the waiting job done', async () => (done.length > 0 ? true : undefined));
    const ready = await readyz(url);
    expect(ready).toMatchObject({ httpStatus: 200, status: 'ready' });
    expect(ready.checks).toEqual({
      [`queue.${queue.name}`]: { ok: true },
      [`worker.${queue.name}`]: { ok: true },
    });
  });

  it('turns /readyz 503 for a closed worker with a job waiting', async () => {
    const queue = openQueue();
    const worker = startWorker(queue, async () => {});
    await worker.waitUntilReady();
    await worker.close();
    const url = await serveReadiness([
      queueStallCheck(queue, STALLED_AFTER_S),
      workerCheck(worker),
    ]);
    await queue.add('work', {});
    await waitPastBound();

    const stalled = await readyz(url);
    expect(stalled).toMatchObject({ httpStatus: 503, status: 'not ready' });
    expect(stalled.checks[`queue.${queue.name}`]?.reason).toMatch(/1 job\(s\) waiting/);
    expect(stalled.checks[`worker.${queue.name}`]?.reason).toBe(
      `the worker of queue ${queue.name} in this process is not running: restart this process (see docs/operations.md)`,
    );
  });

  it('stays ready while a busy worker has a job active and others wait past the bound', async () => {
    const queue = openQueue();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const worker = startWorker(queue, () => held);
    // Released before the worker closes (closers run last first): close waits for active jobs.
    closers.push(async () => release());
    const url = await serveReadiness([
      queueStallCheck(queue, STALLED_AFTER_S),
      workerCheck(worker),
    ]);
    await queue.addBulk([1, 2, 3].map((n) => ({ name: 'work', data: { n } })));
    await waitFor('one job active', async () =>
      (await queue.getActiveCount()) === 1 ? true : undefined,
    );
    await waitPastBound();

    const busy = await readyz(url);
    expect(await queue.getWaitingCount()).toBe(2);
    expect(busy).toMatchObject({ httpStatus: 200, status: 'ready' });
    expect(busy.checks[`queue.${queue.name}`]).toEqual({ ok: true });
  });

  it('stays ready while the oldest waiting job is younger than the bound', async () => {
    const queue = openQueue();
    await queue.add('work', {});
    const check = queueStallCheck(queue, 60);
    expect(await check.run()).toEqual({ ok: true });
    // The same job, judged 61 s later, is stalled: the bound is what made the difference.
    const later = queueStallCheck(queue, 60, () => Date.now() + 61_000);
    expect((await later.run()).ok).toBe(false);
  });

  it('judges the oldest waiting job, not the newest', async () => {
    const queue = openQueue();
    await queue.add('work', { n: 1 });
    await waitPastBound();
    await queue.add('work', { n: 2 });
    const result = await queueStallCheck(queue, STALLED_AFTER_S).run();
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/has 2 job\(s\) waiting, the oldest for [1-9]\d* s/);
  });

  it('does not call a queue paused on purpose stalled', async () => {
    const queue = openQueue();
    await queue.add('work', {});
    await queue.pause();
    const later = queueStallCheck(queue, 1, () => Date.now() + 60_000);
    expect(await later.run()).toEqual({ ok: true });
    await queue.resume();
    expect((await later.run()).ok).toBe(false);
  });
});

describe('readySinceMs', () => {
  it.each([
    ['a fresh job', { timestamp: 1_000, processedOn: undefined, delay: 0 }, 1_000],
    ['a delayed job', { timestamp: 1_000, processedOn: undefined, delay: 500 }, 1_500],
    [
      'a retried job after its backoff',
      { timestamp: 1_000, processedOn: 9_000, delay: 250 },
      9_250,
    ],
  ])('dates %s from when it could run', (_what, job, expected) => {
    expect(readySinceMs(job)).toBe(expected);
  });
});
