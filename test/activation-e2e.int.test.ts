import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activationRoutes } from '../api/activation.routes.js';
import { buildApi } from '../api/server.js';
import type { LicensingDeps } from '../licensing/context.js';
import { checkLicenceDocument } from '../licensing/licence-document.js';
import { applyBatch } from '../licensing/provisioning.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';

const ctx = useTestContext({
  isps: { 'demo-fai': readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8') },
});

let deps: LicensingDeps;
let app: FastifyInstance;

beforeAll(async () => {
  const c = ctx();
  deps = licensingDepsOf(c);
  app = await buildApi({
    log: silentLogger(),
    metrics: deps.metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [async (a) => a.register(activationRoutes, { deps })],
  });
  await app.ready();
});
afterAll(() => app?.close());

function command(
  subscriberId: string,
  version: number,
  kind: string,
  modules: string[],
  status = 'active',
) {
  return {
    key: `${subscriberId}:v${version}`,
    kind,
    subscriberId,
    version,
    modules,
    status,
    effectiveAt: new Date().toISOString(),
  };
}

describe('activation after real provisioning', () => {
  it('activates the key a subscribe handed out, then follows module changes and suspension', async () => {
    const subscriberId = newId('sub');
    const provisioned = await applyBatch(deps, 'demo-fai', {
      commands: [command(subscriberId, 1, 'subscribe', ['antivirus', 'backup'])],
    });
    const issued = provisioned.results[0]?.licence;
    expect(issued?.key).toBeDefined();

    const fingerprint = 'e2e-device-0123456789abcdef';
    const res = await app.inject({
      method: 'POST',
      url: '/v1/activations',
      payload: { key: issued?.key, fingerprint },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ licenceId: issued?.licenceId, outcome: 'activated' });
    const first = checkLicenceDocument(deps.keystore.publicKeys, res.json().document, new Date());
    expect(first).toMatchObject({
      ok: true,
      usable: true,
      claims: { subscriberId, modules: ['antivirus', 'backup'], validUntil: issued?.validUntil },
    });

    const checkIn = async () => {
      const answer = await app.inject({
        method: 'POST',
        url: `/v1/licences/${issued?.licenceId}/check-in`,
        payload: { fingerprint },
      });
      expect(answer.statusCode).toBe(200);
      return checkLicenceDocument(deps.keystore.publicKeys, answer.json().document, new Date());
    };
    await applyBatch(deps, 'demo-fai', {
      commands: [command(subscriberId, 2, 'change', ['antivirus', 'firewall'])],
    });
    expect(await checkIn()).toMatchObject({
      usable: true,
      claims: { modules: ['antivirus', 'firewall'] },
    });

    await applyBatch(deps, 'demo-fai', {
      commands: [command(subscriberId, 3, 'suspend', ['antivirus', 'firewall'], 'suspended')],
    });
    expect(await checkIn()).toMatchObject({ usable: false, claims: { status: 'suspended' } });
    const again = await app.inject({
      method: 'POST',
      url: '/v1/activations',
      payload: { key: issued?.key, fingerprint },
    });
    expect(again.json().code).toBe('ACTIVATION_SUSPENDED');

    const events = await deps
      .db('subscription_events')
      .where({ licence_id: issued?.licenceId, type: 'activated' })
      .select('idempotency_key');
    expect(events).toEqual([{ idempotency_key: `activated:${issued?.licenceId}` }]);
  });
});
