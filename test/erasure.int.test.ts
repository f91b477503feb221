import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { activationRoutes } from '../api/activation.routes.js';
import { downloadRoutes } from '../api/download.routes.js';
import { buildApi } from '../api/server.js';
import { subscriberRoutes } from '../api/subscriber.routes.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ERASURE_RECEIPT_TYPE, type ErasureClaims, scrubEventData } from '../licensing/erasure.js';
import { createIspAuthenticator } from '../licensing/isp-auth.js';
import { applyBatch } from '../licensing/provisioning.js';
import { verifyDocument } from '../licensing/signed-document.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({
  isps: { 'demo-fai': stringify(shipped), other: stringify(shipped) },
});

let deps: LicensingDeps;
let app: FastifyInstance;
let tokenOf: (ispId: string) => string;
let fpCounter = 0;

beforeAll(async () => {
  const c = ctx();
  deps = licensingDepsOf(c);
  tokenOf = createIspAuthenticator(c.config, deps.keystore).tokenOf;
  app = await buildApi({
    log: silentLogger(),
    metrics: deps.metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [
      async (a) => a.register(activationRoutes, { deps }),
      async (a) => a.register(downloadRoutes, { deps }),
      async (a) => a.register(subscriberRoutes, { deps }),
    ],
  });
  await app.ready();
});
afterAll(() => app?.close());

interface Used {
  subscriberId: string;
  licenceId: string;
  key: string;
  fingerprint: string;
  downloadPath: string;
}

/** A subscriber provisioned, activated on one device and with one download, as in real life. */
async function usedSubscriber(ispId = 'demo-fai'): Promise<Used> {
  const subscriberId = newId('sub');
  const { results } = await applyBatch(deps, ispId, {
    commands: [
      {
        key: `${subscriberId}:v1`,
        kind: 'subscribe',
        subscriberId,
        version: 1,
        modules: ['antivirus', 'firewall'],
        status: 'active',
        effectiveAt: new Date().toISOString(),
      },
    ],
  });
  const licence = results[0]?.licence;
  if (!licence?.key) throw new Error(`subscribe failed: ${JSON.stringify(results[0])}`);
  fpCounter += 1;
  const fingerprint = `erasure-test-machine-${process.pid}-${fpCounter}-0123456789`;
  const activation = await app.inject({
    method: 'POST',
    url: '/v1/activations',
    payload: { key: licence.key, fingerprint },
  });
  expect(activation.statusCode).toBe(200);
  const downloadPath = new URL(licence.downloadUrl).pathname;
  const download = await app.inject(`${downloadPath}/antivirus`);
  expect(download.statusCode).toBe(200);
  return {
    subscriberId,
    licenceId: licence.licenceId,
    key: licence.key,
    fingerprint,
    downloadPath,
  };
}

function erase(subscriberId: string, ispId = 'demo-fai') {
  return app.inject({
    method: 'DELETE',
    url: `/v1/subscribers/${subscriberId}`,
    headers: { authorization: `Bearer ${tokenOf(ispId)}` },
  });
}

async function stateOf(used: Used) {
  const db = ctx().licensingDb;
  return {
    subscription: await db('subscriptions').where({ subscriber_id: used.subscriberId }).first(),
    licence: await db('licences').where({ id: used.licenceId }).first(),
    devices: await db('devices').where({ licence_id: used.licenceId }),
    downloads: await db('downloads').where({ subscriber_id: used.subscriberId }),
    events: await db('subscription_events')
      .where({ subscriber_id: used.subscriberId })
      .orderBy('id'),
    receipts: await db('erasure_receipts').where({ subscriber_id: used.subscriberId }),
  };
}

describe('erasing a subscriber', () => {
  it('deletes devices and downloads, scrubs device data, revokes, and signs a receipt', async () => {
    const used = await usedSubscriber();
    const before = await stateOf(used);
    expect(before.devices).toHaveLength(1);
    expect(before.downloads).toHaveLength(1);
    expect(JSON.stringify(before.events.map((e) => e.data))).toMatch(/dev_/);

    const res = await erase(used.subscriberId);
    expect(res.statusCode).toBe(200);
    const body = res.json() as { receipt: unknown; erasure: ErasureClaims; repeated: boolean };
    expect(body.repeated).toBe(false);
    const check = verifyDocument<ErasureClaims>(
      deps.keystore.publicKeys,
      body.receipt,
      ERASURE_RECEIPT_TYPE,
    );
    if (!check.ok) throw new Error(check.reason);
    expect(check.claims).toEqual(body.erasure);
    expect(check.claims).toMatchObject({
      ispId: 'demo-fai',
      subscriberId: used.subscriberId,
      revokedLicences: [used.licenceId],
      deleted: { devices: 1, downloads: 1, ledgerEvents: 2 }, // device-added, downloaded
      scrubbed: { ledgerEvents: 1 }, // activated {deviceId}
    });
    expect(check.claims.receiptId).toMatch(/^rcp_/);
    expect(check.claims.kept.length).toBeGreaterThan(0);

    const after = await stateOf(used);
    expect(after.devices).toEqual([]);
    expect(after.downloads).toEqual([]);
    expect(after.licence.status).toBe('revoked');
    expect(after.licence.revoked_at).toBeInstanceOf(Date);
    expect(Buffer.compare(after.licence.key_hash, before.licence.key_hash)).not.toBe(0);
    expect(after.subscription).toMatchObject({
      status: 'cancelled',
      modules: 'antivirus,firewall',
    });
    expect(after.subscription.erased_at).toBeInstanceOf(Date);
    // Billing keeps the lifecycle: provisioned, activated (without its device), erased.
    expect(after.events.map((e) => e.type)).toEqual(['provisioned', 'activated', 'erased']);
    expect(JSON.stringify(after.events.map((e) => e.data))).not.toMatch(/dev_|deviceId|finger/i);
    expect(after.receipts).toHaveLength(1);
    expect(JSON.parse(after.receipts[0].receipt)).toEqual(body.receipt);
  });

  it('leaves nothing the delivered key, the device or the link can still open', async () => {
    const used = await usedSubscriber();
    expect((await erase(used.subscriberId)).statusCode).toBe(200);
    const activation = await app.inject({
      method: 'POST',
      url: '/v1/activations',
      payload: { key: used.key, fingerprint: used.fingerprint },
    });
    expect(activation.statusCode).toBe(404);
    expect(activation.json().code).toBe('ACTIVATION_KEY_INVALID');
    const checkIn = await app.inject({
      method: 'POST',
      url: `/v1/licences/${used.licenceId}/check-in`,
      payload: { fingerprint: used.fingerprint },
    });
    expect(checkIn.statusCode).toBeGreaterThanOrEqual(400);
    expect(checkIn.json()).not.toHaveProperty('document');
    const link = await app.inject(used.downloadPath);
    expect(link.statusCode).toBe(403);
    expect(link.json().code).toBe('DOWNLOAD_LINK_INVALID');
  });

  it('answers a repeated request with the same receipt and changes nothing', async () => {
    const used = await usedSubscriber();
    const first = await erase(used.subscriberId);
    const state = await stateOf(used);
    const second = await erase(used.subscriberId);
    expect(second.statusCode).toBe(200);
    expect(second.json().receipt).toEqual(first.json().receipt);
    expect(second.json().repeated).toBe(true);
    expect(await stateOf(used)).toEqual(state);
  });

  it('erases once when two requests race', async () => {
    const used = await usedSubscriber();
    const [a, b] = await Promise.all([erase(used.subscriberId), erase(used.subscriberId)]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    expect(a.json().receipt).toEqual(b.json().receipt);
    const state = await stateOf(used);
    expect(state.receipts).toHaveLength(1);
    expect(state.events.filter((e) => e.type === 'erased')).toHaveLength(1);
  });
});

describe('refusing an erasure', () => {
  it("answers another ISP's subscriber like an unknown one, and touches nothing", async () => {
    const used = await usedSubscriber('demo-fai');
    const before = await stateOf(used);
    const foreign = await erase(used.subscriberId, 'other');
    const unknown = await erase(newId('sub'), 'other');
    for (const res of [foreign, unknown]) {
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('SUBSCRIBER_NOT_FOUND');
    }
    expect(foreign.json().message.replace(used.subscriberId, 'X')).toBe(
      unknown.json().message.replace(/sub_\w+/, 'X'),
    );
    expect(await stateOf(used)).toEqual(before);
  });

  it('refuses a request without a valid ISP token, and a malformed subscriber id', async () => {
    const used = await usedSubscriber();
    const anonymous = await app.inject({
      method: 'DELETE',
      url: `/v1/subscribers/${used.subscriberId}`,
    });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().code).toBe('PROVISIONING_UNAUTHORIZED');
    const forged = await app.inject({
      method: 'DELETE',
      url: `/v1/subscribers/${used.subscriberId}`,
      headers: { authorization: 'Bearer rlt_not-the-token-of-anyone-at-all' },
    });
    expect(forged.statusCode).toBe(401);
    const malformed = await erase('customer-42');
    expect(malformed.statusCode).toBe(404);
    expect(malformed.json().message).toMatch(/subscriber id must be sub_/);
    expect((await stateOf(used)).licence.status).toBe('valid');
  });
});

describe('scrubbing event data', () => {
  it('drops device ids and device-derived fields at any depth, keeping the rest', () => {
    const clean = { modules: ['antivirus'], version: 3 };
    expect(scrubEventData(clean)).toBe(clean);
    expect(
      scrubEventData({
        deviceId: 'dev_0123456789abcdefghjkmnpqrs',
        fingerprintHash: 'ab12',
        clientAddress: '203.0.113.9',
        period: '2026-11',
        deviceLimit: 2,
        nested: { previous: 'dev_0123456789abcdefghjkmnpqrs', modules: ['backup'] },
        list: ['dev_0123456789abcdefghjkmnpqrs', 'antivirus'],
      }),
    ).toEqual({
      period: '2026-11',
      deviceLimit: 2,
      nested: { modules: ['backup'] },
      list: ['antivirus'],
    });
  });
});
