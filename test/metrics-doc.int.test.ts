/**
 * docs/metrics.md against a real process: Relais started with role `all` (every part of every
 * role, admin users configured so the admin pages register their counter too) on the real
 * MariaDB and Redis. Every metric of its registry must have a row in the page's reference
 * table with the same type and labels, and every row must name a metric the process has; its
 * /metrics page must be valid Prometheus text and /readyz must run the workers' checks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRelais, startRelais } from '../cli/commands/start.js';
import { registerRelaisMetrics } from '../cli/role-metrics.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';
import { readPrometheusText } from './harness/prometheus-text.js';

const ctx = useTestContext({
  deployment: {
    admin: { users: [{ name: 'watcher', role: 'viewer', password: 'a-long-test-password' }] },
  },
});

const DEFAULT_METRIC = /^(process|nodejs)_/;

interface Row {
  type: string;
  labels: string[];
}

/** The reference table of docs/metrics.md: metric name → type and labels. */
function documentedMetrics(): Map<string, Row> {
  const page = readFileSync(join(packageRoot(), 'docs/metrics.md'), 'utf8');
  const section = page.split('## Metric reference')[1]?.split(/\n#{2,3} /)[0] ?? '';
  const rows = new Map<string, Row>();
  for (const line of section.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const name = /^`([a-z_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (!name) continue;
    if (rows.has(name)) throw new Error(`docs/metrics.md lists ${name} twice`);
    const labels = [...(cells[3] ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1] as string);
    rows.set(name, { type: cells[2] ?? '', labels });
  }
  return rows;
}

let lifecycle: Lifecycle;
let running: RunningRelais;

beforeAll(async () => {
  lifecycle = new Lifecycle(silentLogger(), 10_000);
  running = await startRelais(ctx().config, 'all', silentLogger(), lifecycle, { port: 0 });
}, 60_000);

afterAll(async () => {
  await lifecycle?.shutdown('metrics doc test done');
});

describe('docs/metrics.md', () => {
  it('lists every metric of a running process, with its type and labels, and no other', async () => {
    const registry = running.services.metrics;
    const types = new Map(
      (await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)] as const),
    );
    const actual = new Map<string, Row>();
    for (const metric of registry.getMetricsAsArray()) {
      const { name, labelNames } = metric as unknown as { name: string; labelNames: string[] };
      if (DEFAULT_METRIC.test(name)) continue;
      actual.set(name, { type: types.get(name) ?? '?', labels: [...labelNames] });
    }
    const documented = documentedMetrics();

    expect(
      [...actual.keys()].filter((n) => !documented.has(n)),
      'missing from the doc',
    ).toEqual([]);
    expect(
      [...documented.keys()].filter((n) => !actual.has(n)),
      'not in the process',
    ).toEqual([]);
    for (const [name, row] of documented) {
      expect({ name, ...row }).toEqual({ name, ...actual.get(name) });
    }
    // The page says prom-client's defaults are there too.
    const names = registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name);
    expect(names.some((n) => n.startsWith('process_'))).toBe(true);
    expect(names.some((n) => n.startsWith('nodejs_'))).toBe(true);
  });

  it('registers the metrics once, however often the roles ask', () => {
    const registry = running.services.metrics;
    const before = registry.getMetricsAsArray().length;
    registerRelaisMetrics(registry, running.runtime.queues);
    expect(registry.getMetricsAsArray().length).toBe(before);
  });

  it('is served as valid Prometheus text, and /readyz runs the workers checks too', async () => {
    const metrics = await fetch(`${running.apiUrl}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const page = readPrometheusText(await metrics.text());
    expect(page.problems).toEqual([]);
    expect(page.types.get('relais_provisioning_latency_seconds')).toBe('histogram');

    const ready = await fetch(`${running.apiUrl}/readyz`);
    const body = (await ready.json()) as { checks: Record<string, { ok: boolean }> };
    expect(ready.status).toBe(200);
    expect(Object.keys(body.checks).sort()).toEqual([
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
  });
});
