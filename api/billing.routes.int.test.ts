/**
 * The billing routes over real HTTP: bearer token per ISP, NDJSON streamed from the test's own
 * MariaDB, byte-identical on a second read, and nothing of another ISP's period.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { closeBillingPeriod } from '../licensing/billing/close.js';
import { ratedLineSchema } from '../licensing/billing/rated-line.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { appendEvents } from '../licensing/ledger.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { licensingDepsOf } from '../test/harness/licensing.js';
import { seedLicences } from '../test/harness/seed-licences.js';
import { billingRoutes } from './billing.routes.js';
import { buildApi } from './server.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({ isps: { alpha: stringify(shipped), beta: stringify(shipped) } });

let app: FastifyInstance;
let base: string;
let deps: LicensingDeps;

async function activatedSubscriber(ispId: string, modules: string[]): Promise<void> {
  const [seeded] = await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 1, {
    ispId,
    modules,
  });
  const { subscriberId, licenceId } = seeded as { subscriberId: string; licenceId: string };
  const at = new Date('2026-10-03T10:00:00Z');
  await appendEvents(ctx().licensingDb, [
    { ispId, subscriberId, licenceId, type: 'provisioned', data: { modules }, occurredAt: at },
    {
      ispId,
      subscriberId,
      licenceId,
      type: 'activated',
      idempotencyKey: `activated:${licenceId}`,
      occurredAt: at,
    },
  ]);
  await ctx().licensingDb('licences').where({ id: licenceId }).update({ activated_at: at });
}

beforeAll(async () => {
  deps = licensingDepsOf(ctx(), { now: () => new Date('2026-12-05T08:00:00Z') });
  app = await buildApi({
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 1024 * 1024,
    routes: [async (instance) => instance.register(billingRoutes, { deps })],
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  for (let i = 0; i < 12; i++) await activatedSubscriber('alpha', ['antivirus', 'firewall']);
  await activatedSubscriber('beta', ['backup']);
  await closeBillingPeriod(deps, 'alpha', '2026-11');
});

afterAll(async () => {
  await app?.close();
});

const get = (path: string, ispId: string | null) =>
  fetch(`${base}${path}`, {
    headers:
      ispId === null
        ? {}
        : { authorization: `Bearer ${ispTokenOf(ctx().config, deps.keystore, ispId)}` },
  });

describe('GET /v1/billing/periods/:period/lines', () => {
  it('streams the closed lines as NDJSON in lineId order, byte-identical on a second read', async () => {
    const first = await get('/v1/billing/periods/2026-11/lines', 'alpha');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    const text = await first.text();
    const lines = text
      .trimEnd()
      .split('\n')
      .map((l) => ratedLineSchema.parse(JSON.parse(l)));
    expect(lines).toHaveLength(24);
    const ids = lines.map((l) => l.lineId);
    expect(ids).toEqual([...ids].sort());
    expect(new Set(lines.map((l) => l.ispId))).toEqual(new Set(['alpha']));
    const second = await (await get('/v1/billing/periods/2026-11/lines', 'alpha')).text();
    expect(Buffer.from(second).equals(Buffer.from(text))).toBe(true);
  });

  it('answers 409 BILLING_PERIOD_NOT_CLOSED for a period the calling ISP has not closed', async () => {
    // Alpha's November is closed, beta's is not: beta sees nothing of alpha's.
    const response = await get('/v1/billing/periods/2026-11/lines', 'beta');
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: 'BILLING_PERIOD_NOT_CLOSED' });
  });

  it('refuses a caller without a valid token', async () => {
    const response = await get('/v1/billing/periods/2026-11/lines', null);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'PROVISIONING_UNAUTHORIZED' });
  });

  it('refuses a malformed period', async () => {
    const response = await get('/v1/billing/periods/2026-13/lines', 'alpha');
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'PERIOD_INVALID' });
  });
});

describe('GET /v1/billing/periods/:period', () => {
  it('returns the close summary', async () => {
    const response = await get('/v1/billing/periods/2026-11', 'alpha');
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      ispId: 'alpha',
      period: '2026-11',
      currency: 'EUR',
      lineCount: 24,
      total: '24.00',
      totals: [
        { module: 'antivirus', kind: 'charge', lines: 12, amount: '14.40' },
        { module: 'firewall', kind: 'charge', lines: 12, amount: '9.60' },
      ],
    });
    expect(typeof body.closedAt).toBe('string');
  });
});
