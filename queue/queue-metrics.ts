/**
 * Queue depths on /metrics: BullMQ's own Prometheus export (`Queue#exportPrometheusMetrics`)
 * of every queue, served through prom-client collectors on the process's registry, so the
 * page has one HELP and TYPE line per metric however many queues there are, and every value
 * is formatted and escaped by prom-client. A scrape reads every queue at once, each within
 * `QUEUE_METRICS_TIMEOUT_MS`: a slow or lost Redis drops that queue's samples from the page and
 * sets `relais_queue_metrics_up` to 0, it never holds the scrape.
 *
 * The values are counts kept in Redis, the same whichever process is scraped; several
 * processes serve identical series (aggregate with `max by (queue, state)`).
 */
import type { MetricsOptions, Queue } from 'bullmq';
import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../platform/metrics.js';
import type { Queues } from './queues.js';

/**
 * Given to every Worker: without it BullMQ keeps no completed/failed totals and its export
 * reports 0 forever. A day of per-minute points per queue and outcome (a few kB in Redis).
 */
export const WORKER_METRICS: MetricsOptions = { maxDataPoints: 1440 };

/** How long a scrape waits for one queue's counts. */
export const QUEUE_METRICS_TIMEOUT_MS = 2_000;

/** The metric names BullMQ's export writes (checked against its output by a test). */
export const BULLMQ_METRIC_NAMES = [
  'bullmq_job_count',
  'bullmq_job_completed_total',
  'bullmq_job_failed_total',
] as const;

/** Every queue of a deployment, in a stable order. */
export function queueList(queues: Queues): Queue[] {
  return [queues.feeds, queues.provisioning, queues.delivery];
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** The samples of a Prometheus text page; comment lines and unreadable lines are left out. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const [, name, labelText = '', valueText] = match as unknown as [
      string,
      string,
      string,
      string,
    ];
    const value = Number(valueText);
    if (!Number.isFinite(value)) continue;
    const labels: Record<string, string> = {};
    for (const [, key, raw] of labelText.matchAll(LABEL_PAIR)) {
      labels[key as string] = unescapeLabel(raw as string);
    }
    samples.push({ name, labels, value });
  }
  return samples;
}

/** One queue's samples, or undefined when Redis did not answer in time or failed. */
async function readQueue(queue: Queue, timeoutMs: number): Promise<Sample[] | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const exported = queue.exportPrometheusMetrics();
  exported.catch(() => {}); // a late failure after the timeout must not surface as unhandled
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    const text = await Promise.race([exported, timeout]);
    return text === undefined ? undefined : parseSamples(text);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

const registered = new WeakSet<Metrics>();

/**
 * Adds the BullMQ metrics of `queues` to `registry` (once per registry; a later call is a
 * no-op). Nothing is read from Redis until a scrape.
 */
export function registerQueueMetrics(
  registry: Metrics,
  queues: readonly Queue[],
  options: { timeoutMs?: number } = {},
): void {
  if (registered.has(registry)) return;
  registered.add(registry);
  const timeoutMs = options.timeoutMs ?? QUEUE_METRICS_TIMEOUT_MS;

  // The three collectors of one scrape run at once (prom-client gathers metrics in parallel):
  // the first starts the read of every queue, the others wait for that same read.
  let reading: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    reading ??= readAll().finally(() => {
      reading = undefined;
    });
    return reading;
  };

  const jobCount = new Gauge({
    name: 'bullmq_job_count',
    help: 'Number of jobs in the queue by state (BullMQ export).',
    labelNames: ['queue', 'state'],
    registers: [registry],
    collect: refresh,
  });
  const completed = new Counter({
    name: 'bullmq_job_completed_total',
    help: 'Total number of completed jobs (BullMQ export).',
    labelNames: ['queue'],
    registers: [registry],
    collect: refresh,
  });
  const failed = new Counter({
    name: 'bullmq_job_failed_total',
    help: 'Total number of failed jobs (BullMQ export).',
    labelNames: ['queue'],
    registers: [registry],
    collect: refresh,
  });
  const up = new Gauge({
    name: 'relais_queue_metrics_up',
    help: `1 when the last scrape read the queue's BullMQ counts within ${timeoutMs} ms, 0 when Redis failed or was too slow (its bullmq_* samples are then missing).`,
    labelNames: ['queue'],
    registers: [registry],
    collect: refresh,
  });

  async function readAll(): Promise<void> {
    const read = await Promise.all(queues.map((queue) => readQueue(queue, timeoutMs)));
    jobCount.reset();
    completed.reset();
    failed.reset();
    read.forEach((samples, i) => {
      const queue = (queues[i] as Queue).name;
      up.set({ queue }, samples ? 1 : 0);
      for (const sample of samples ?? []) record(queue, sample);
    });
  }

  function record(queue: string, sample: Sample): void {
    if (sample.name === 'bullmq_job_count' && sample.labels.state !== undefined) {
      jobCount.set({ queue, state: sample.labels.state }, sample.value);
    } else if (sample.name === 'bullmq_job_completed_total') {
      completed.inc({ queue }, sample.value);
    } else if (sample.name === 'bullmq_job_failed_total') {
      failed.inc({ queue }, sample.value);
    }
  }
}
