/**
 * The ops listener of worker and scheduler processes: the real `relais start` in a child
 * process, on the real MariaDB and Redis, scraped over HTTP like Prometheus and a supervisor
 * would. `--ops-port 0` takes a free port and logs it; `http.opsPort` is used otherwise; the
 * api's routes are not there.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { collect, runCli, spawnCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { freePort } from './harness/ports.js';
import { readPrometheusText } from './harness/prometheus-text.js';
import { waitFor } from './harness/wait.js';

const ctx = useTestContext();

function writeConfig(name: string, extra: Record<string, unknown> = {}): string {
  const { mysql, redis } = ctx().config.deployment;
  const file = join(ctx().dir, name);
  writeFileSync(
    file,
    stringify({
      mysql: {
        connectorDatabase: mysql.connectorDatabase,
        licensingDatabase: mysql.licensingDatabase,
      },
      redis: { prefix: redis.prefix },
      log: { level: 'info', pretty: false },
      shutdownTimeoutMs: 5_000,
      ...extra,
    }),
  );
  return file;
}

/** Starts `relais start` with `args`; resolves with the child once it logged `relais started`. */
async function start(args: string[]): Promise<{ child: ChildProcess; started: LogLine }> {
  const child = spawnCli(['start', ...args]);
  const done = collect(child, 60_000);
  onTestFinished(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await done;
  });
  const started = await logLine(child, (line) => line.msg === 'relais started');
  return { child, started };
}

type LogLine = Record<string, unknown>;

function logLine(child: ChildProcess, matches: (line: LogLine) => boolean): Promise<LogLine> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no such log line in: ${buffered}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const text of buffered.split('\n').slice(0, -1)) {
        const line = JSON.parse(text) as LogLine;
        if (matches(line)) {
          clearTimeout(timer);
          resolve(line);
        }
      }
    });
    child.once('exit', () => reject(new Error(`exited before the log line: ${buffered}`)));
  });
}

async function readyz(base: string) {
  const response = await fetch(`${base}/readyz`);
  const body = (await response.json()) as { checks: Record<string, { ok: boolean }> };
  return { status: response.status, checks: Object.keys(body.checks).sort() };
}

describe('ops listener', () => {
  it('serves /healthz, /readyz and /metrics of a worker on the port --ops-port 0 picked', async () => {
    const { child, started } = await start([
      '--role',
      'worker',
      '--ops-port',
      '0',
      '--config',
      writeConfig('worker.yaml'),
    ]);
    const opsUrl = String(started.opsUrl);
    expect(opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(opsUrl).not.toBe('http://127.0.0.1:9464');

    expect((await fetch(`${opsUrl}/healthz`)).status).toBe(200);
    const ready = await waitFor('the worker ready', async () => {
      const r = await readyz(opsUrl);
      return r.status === 200 ? r : undefined;
    });
    expect(ready.checks).toEqual([
      'mysql.connector',
      'mysql.licensing',
      'queue.delivery',
      'queue.feeds',
      'queue.provisioning',
      'redis',
      'worker.delivery',
      'worker.feeds',
      'worker.provisioning',
    ]);

    const metrics = await fetch(`${opsUrl}/metrics`);
    const page = readPrometheusText(await metrics.text());
    expect(page.problems).toEqual([]);
    expect(page.types.get('relais_provisioning_latency_seconds')).toBe('histogram');
    const up = page.samples.filter((s) => s.name === 'relais_queue_metrics_up');
    expect(up.map((s) => [s.labels.queue, s.value])).toEqual([
      ['feeds', 1],
      ['provisioning', 1],
      ['delivery', 1],
    ]);
    expect(
      page.samples.some((s) => s.name === 'bullmq_job_count' && s.labels.queue === 'provisioning'),
    ).toBe(true);
    // Only the ops endpoints: the api's routes live on the api.
    expect((await fetch(`${opsUrl}/v1/licensing/keys`)).status).toBe(404);

    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(child.exitCode).toBe(0);
  });

  it('serves a scheduler on http.opsPort, with the service checks only', async () => {
    const opsPort = await freePort();
    const { started } = await start([
      '--role',
      'scheduler',
      '--config',
      writeConfig('scheduler.yaml', { http: { opsPort } }),
    ]);
    expect(started.opsUrl).toBe(`http://127.0.0.1:${opsPort}`);
    const ready = await readyz(`http://127.0.0.1:${opsPort}`);
    expect(ready).toEqual({
      status: 200,
      checks: ['mysql.connector', 'mysql.licensing', 'redis'],
    });
    const page = readPrometheusText(
      await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text(),
    );
    expect(page.problems).toEqual([]);
    expect(page.types.get('relais_billing_closes_total')).toBe('counter');
  });

  it('refuses an --ops-port that is not a port', async () => {
    const result = await runCli(['start', '--role', 'worker', '--ops-port', 'ninety']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('expected a port number from 0 to 65535');
  });
});
