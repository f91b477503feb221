/**
 * Activation metrics per ISP, through the real activation routes on the real licensing
 * database and Redis guard: successes by outcome, refusals by error code with the ISP of the
 * licence, and an empty ISP when no licence was found.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { activationRoutes } from '../api/activation.routes.js';
import { buildApi } from '../api/server.js';
import { generateKey } from '../licensing/activation-key.js';
import type { LicensingDeps } from '../licensing/context.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';
import { readPrometheusText, sampleValue } from './harness/prometheus-text.js';
import { seedLicence } from './harness/seed-licences.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({ isps: { north: shipped, south: shipped } });

const metrics = createMetrics({ defaultMetrics: false });
let deps: LicensingDeps;
let app: FastifyInstance;
let fingerprints = 0;

beforeAll(async () => {
  deps = licensingDepsOf(ctx(), { metrics });
  app = await buildApi({
    log: silentLogger(),
    metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [async (a) => a.register(activationRoutes, { deps })],
  });
  await app.ready();
});
afterAll(() => app?.close());

function activate(
  key: string,
  fingerprint = `machine-${process.pid}-${++fingerprints}-0123456789`,
) {
  return app.inject({ method: 'POST', url: '/v1/activations', payload: { key, fingerprint } });
}

async function page() {
  return readPrometheusText(await metrics.metrics());
}

describe('activation metrics', () => {
  it('counts successes per ISP and outcome, refusals per ISP and code', async () => {
    const north = await seedLicence(ctx().licensingDb, deps.keystore.keyHashSecret, {
      ispId: 'north',
      deviceLimit: 1,
    });
    const south = await seedLicence(ctx().licensingDb, deps.keystore.keyHashSecret, {
      ispId: 'south',
      status: 'suspended',
    });
    const device = 'machine-fixed-0123456789abcdef';
    expect((await activate(north.key, device)).statusCode).toBe(200);
    expect((await activate(north.key, device)).statusCode).toBe(200);
    expect((await activate(north.key)).json().code).toBe('ACTIVATION_SEAT_LIMIT');
    expect((await activate(south.key)).json().code).toBe('ACTIVATION_SUSPENDED');
    expect((await activate(generateKey())).json().code).toBe('ACTIVATION_KEY_INVALID');
    expect(
      (await app.inject({ method: 'POST', url: '/v1/activations', payload: { key: 1 } })).json()
        .code,
    ).toBe('HTTP_BAD_REQUEST');

    const text = await page();
    expect(text.problems).toEqual([]);
    const ok = (isp: string, outcome: string) =>
      sampleValue(text, 'relais_activations_total', { isp, outcome });
    const refused = (isp: string, code: string) =>
      sampleValue(text, 'relais_activation_failures_total', { isp, code });
    expect(ok('north', 'activated')).toBe(1);
    expect(ok('north', 'reactivated')).toBe(1);
    expect(refused('north', 'ACTIVATION_SEAT_LIMIT')).toBe(1);
    expect(refused('south', 'ACTIVATION_SUSPENDED')).toBe(1);
    expect(refused('', 'ACTIVATION_KEY_INVALID')).toBe(1);
    expect(refused('', 'HTTP_BAD_REQUEST')).toBe(1);
    const failures = text.samples.filter((s) => s.name === 'relais_activation_failures_total');
    expect(failures.reduce((n, s) => n + s.value, 0)).toBe(4);
  });
});
