/**
 * Metrics of the two month-end closes on the real licensing database: the period close
 * (licence renewal) and the billing close count runs by outcome, failures by code, the
 * duration of the runs that closed, and (renewal) the licences renewed, held and lapsed, once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { licensingDepsOf } from '../test/harness/licensing.js';
import { readPrometheusText, sampleValue } from '../test/harness/prometheus-text.js';
import { seedLicences } from '../test/harness/seed-licences.js';
import { closeBillingPeriod } from './billing/close.js';
import type { LicensingDeps } from './context.js';
import { renewPeriod } from './renewal.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const { billing: _billing, ...unbilled } = shipped;
const ctx = useTestContext({
  isps: {
    paid: stringify({ ...shipped, timeZone: 'Europe/Paris' }),
    unbilled: stringify({ ...unbilled, timeZone: 'Europe/Paris' }),
  },
});

const metrics = createMetrics({ defaultMetrics: false });
let deps: LicensingDeps;

beforeAll(() => {
  deps = licensingDepsOf(ctx(), { metrics, now: () => new Date('2026-03-02T08:00:00Z') });
});

async function page() {
  const text = readPrometheusText(await metrics.metrics());
  expect(text.problems).toEqual([]);
  return text;
}

describe('period close metrics', () => {
  it('counts a close, its licences once, a repeat and a refused one', async () => {
    const seed = { ispId: 'paid', period: '2026-02' };
    await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 2, seed);
    await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 1, {
      ...seed,
      status: 'suspended',
    });
    await renewPeriod(deps, 'paid', '2026-02');
    await renewPeriod(deps, 'paid', '2026-02');
    await expect(renewPeriod(deps, 'paid', '2026-03')).rejects.toThrow(/has not ended yet/);

    const text = await page();
    const closes = (outcome: string) =>
      sampleValue(text, 'relais_period_closes_total', { isp: 'paid', outcome });
    expect([closes('closed'), closes('already-closed'), closes('failed')]).toEqual([1, 1, 1]);
    const licences = (result: string) =>
      sampleValue(text, 'relais_period_close_licences_total', { isp: 'paid', result });
    expect([licences('renewed'), licences('held'), licences('lapsed')]).toEqual([2, 1, 0]);
    expect(
      sampleValue(text, 'relais_period_close_failures_total', {
        isp: 'paid',
        code: 'PERIOD_INVALID',
      }),
    ).toBe(1);
    expect(sampleValue(text, 'relais_period_close_duration_seconds_count', { isp: 'paid' })).toBe(
      1,
    );
  });
});

describe('billing close metrics', () => {
  it('counts a close with its duration, a repeat, and a refusal by code', async () => {
    await closeBillingPeriod(deps, 'paid', '2026-02', { force: true });
    await closeBillingPeriod(deps, 'paid', '2026-02', { force: true });
    await expect(closeBillingPeriod(deps, 'unbilled', '2026-02')).rejects.toThrow(
      /has no billing section/,
    );

    const text = await page();
    const closes = (isp: string, outcome: string) =>
      sampleValue(text, 'relais_billing_closes_total', { isp, outcome });
    expect(closes('paid', 'closed')).toBe(1);
    expect(closes('paid', 'already-closed')).toBe(1);
    expect(closes('unbilled', 'failed')).toBe(1);
    expect(
      sampleValue(text, 'relais_billing_close_failures_total', {
        isp: 'unbilled',
        code: 'BILLING_NOT_CONFIGURED',
      }),
    ).toBe(1);
    expect(sampleValue(text, 'relais_billing_close_duration_seconds_count', { isp: 'paid' })).toBe(
      1,
    );
  });
});
