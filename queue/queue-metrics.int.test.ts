/**
 * BullMQ's export of the real queues on the real Redis, through the process registry: the page
 * stays valid Prometheus text with the three queues in it (one HELP and TYPE per metric), the
 * counts are the queues' own, and a Redis that does not answer costs a bounded wait and a 0 in
 * `relais_queue_metrics_up`, never a hung scrape.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../platform/metrics.js';
import { useTestContext } from '../test/harness/context.js';
import { readPrometheusText, sampleValue } from '../test/harness/prometheus-text.js';
import { waitFor } from '../test/harness/wait.js';
import {
  BULLMQ_METRIC_NAMES,
  parseSamples,
  queueList,
  registerQueueMetrics,
  WORKER_METRICS,
} from './queue-metrics.js';
import { openQueues, type Queues } from './queues.js';

const ctx = useTestContext();
let queues: Queues;

beforeAll(async () => {
  queues = openQueues(ctx().redis, ctx().prefix);
  // feeds: 1 completed and 1 failed (by a worker keeping BullMQ's totals), then 2 waiting.
  const connection = new Redis(ctx().config.deployment.redis.url, { maxRetriesPerRequest: null });
  const worker = new Worker(
    queues.feeds.name,
    async (job) => {
      if (job.data.ispId === 'bad') throw new Error('refused');
    },
    { connection, prefix: ctx().prefix, metrics: WORKER_METRICS },
  );
  await queues.feeds.add('poll-isp', { ispId: 'good' }, { attempts: 1 });
  await queues.feeds.add('poll-isp', { ispId: 'bad' }, { attempts: 1 });
  await waitFor('one job completed and one failed', async () => {
    const counts = await queues.feeds.getJobCounts('completed', 'failed');
    return counts.completed === 1 && counts.failed === 1 ? true : undefined;
  });
  await worker.close();
  connection.disconnect();
  await queues.feeds.add('poll-isp', { ispId: 'a' });
  await queues.feeds.add('poll-isp', { ispId: 'b' });
  await queues.provisioning.add('provision-batch', { ispId: 'a', batchId: 1 });
});

afterAll(async () => {
  await queues?.close();
});

describe('queue metrics', () => {
  it('serves every queue on one valid page with the counts BullMQ exports', async () => {
    const registry = createMetrics();
    registerQueueMetrics(registry, queueList(queues));
    registerQueueMetrics(registry, queueList(queues)); // a second call adds nothing
    const page = readPrometheusText(await registry.metrics());

    expect(page.problems).toEqual([]);
    expect(page.types.get('bullmq_job_count')).toBe('gauge');
    expect(page.types.get('bullmq_job_completed_total')).toBe('counter');
    expect(page.types.get('bullmq_job_failed_total')).toBe('counter');
    const count = (queue: string, state: string) =>
      sampleValue(page, 'bullmq_job_count', { queue, state });
    expect(count('feeds', 'waiting')).toBe(2);
    expect(count('feeds', 'completed')).toBe(1);
    expect(count('feeds', 'failed')).toBe(1);
    expect(count('provisioning', 'waiting')).toBe(1);
    expect(count('delivery', 'waiting')).toBe(0);
    expect(sampleValue(page, 'bullmq_job_completed_total', { queue: 'feeds' })).toBe(1);
    expect(sampleValue(page, 'bullmq_job_failed_total', { queue: 'feeds' })).toBe(1);
    for (const queue of ['feeds', 'provisioning', 'delivery']) {
      expect(sampleValue(page, 'relais_queue_metrics_up', { queue })).toBe(1);
    }
  });

  it('follows the queues from one scrape to the next', async () => {
    const registry = createMetrics({ defaultMetrics: false });
    registerQueueMetrics(registry, queueList(queues));
    const before = readPrometheusText(await registry.metrics());
    await queues.delivery.add('deliver-batch', { ispId: 'a', batchId: 1 });
    const after = readPrometheusText(await registry.metrics());
    const waiting = { queue: 'delivery', state: 'waiting' };
    expect(sampleValue(before, 'bullmq_job_count', waiting)).toBe(0);
    expect(sampleValue(after, 'bullmq_job_count', waiting)).toBe(1);
  });

  it('names the metrics BullMQ exports', async () => {
    const raw = await queues.feeds.exportPrometheusMetrics();
    const declared = [...raw.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
    expect(declared).toEqual([...BULLMQ_METRIC_NAMES]);
    expect(new Set(parseSamples(raw).map((s) => s.name))).toEqual(new Set(BULLMQ_METRIC_NAMES));
  });

  describe('when Redis does not answer', () => {
    let silent: Server;
    const sockets: Socket[] = [];
    let mute: Redis;

    beforeAll(async () => {
      // Accepts connections and never says a word: every command waits forever.
      silent = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const { port } = silent.address() as { port: number };
      mute = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
    });

    afterAll(async () => {
      mute.disconnect();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it('answers within the bound, without the silent queue, and says so', async () => {
      const hung = new Queue('feeds', { connection: mute, prefix: 'hung' });
      hung.on('error', () => {});
      const registry = createMetrics({ defaultMetrics: false });
      registerQueueMetrics(registry, [hung, queues.provisioning], { timeoutMs: 300 });

      const started = Date.now();
      const page = readPrometheusText(await registry.metrics());
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(page.problems).toEqual([]);
      expect(sampleValue(page, 'relais_queue_metrics_up', { queue: 'feeds' })).toBe(0);
      expect(sampleValue(page, 'relais_queue_metrics_up', { queue: 'provisioning' })).toBe(1);
      expect(
        page.samples.filter((s) => s.labels.queue === 'feeds' && s.name.startsWith('bullmq')),
      ).toEqual([]);
      expect(
        sampleValue(page, 'bullmq_job_count', { queue: 'provisioning', state: 'waiting' }),
      ).toBe(1);
    });
  });
});

describe('parseSamples', () => {
  it('reads BullMQ lines, escaped label values and all', () => {
    const text = [
      '# HELP bullmq_job_count Number of jobs in the queue by state',
      '# TYPE bullmq_job_count gauge',
      'bullmq_job_count{queue="a \\"b\\" \\\\ c", state="waiting"} 3',
      'bullmq_job_completed_total{queue="a"} 12',
      'garbage line',
    ].join('\n');
    expect(parseSamples(text)).toEqual([
      { name: 'bullmq_job_count', labels: { queue: 'a "b" \\ c', state: 'waiting' }, value: 3 },
      { name: 'bullmq_job_completed_total', labels: { queue: 'a' }, value: 12 },
    ]);
  });
});
