import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { activationRoutes } from '../api/activation.routes.js';
import { buildApi } from '../api/server.js';
import type { RelaisConfig } from '../config/load.js';
import * as rules from '../licensing/activation.js';
import { checkCharacter, generateKey, readKey } from '../licensing/activation-key.js';
import type { LicensingDeps } from '../licensing/context.js';
import { openKeystore } from '../licensing/keystore.js';
import { checkLicenceDocument, type LicenceClaims } from '../licensing/licence-document.js';
import { signDocument } from '../licensing/signed-document.js';
import { createDb } from '../platform/db.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics, type Metrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { redisOptions } from '../platform/redis.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';
import { type SeedOptions, seedLicence } from './harness/seed-licences.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({
  isps: { 'demo-fai': stringify({ ...shipped, licensing: { transfersPerMonth: 2 } }) },
});

const DAY_MS = 86_400_000;
const RELAXED = {
  perAddressPerMinute: 100_000,
  perKeyPrefixPerMinute: 100_000,
  lockoutAfterFailures: 100_000,
  lockoutBaseS: 1,
  lockoutMaxS: 1,
};

let clock = new Date();
let deps: LicensingDeps;
let app: FastifyInstance;

function withLimits(config: RelaisConfig, activation: typeof RELAXED): RelaisConfig {
  const { deployment } = config;
  return {
    ...config,
    deployment: { ...deployment, server: { ...deployment.server, activation } },
  };
}

async function apiWith(
  limits: typeof RELAXED,
  metrics: Metrics = createMetrics(),
  parts: Partial<LicensingDeps> = {},
) {
  const own: LicensingDeps = {
    ...deps,
    ...parts,
    config: withLimits(ctx().config, limits),
    metrics,
  };
  const api = await buildApi({
    log: silentLogger(),
    metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [async (a) => a.register(activationRoutes, { deps: own })],
  });
  await api.ready();
  return api;
}

beforeAll(async () => {
  const c = ctx();
  deps = licensingDepsOf(c, { metrics: createMetrics(), now: () => clock });
  app = await apiWith(RELAXED, deps.metrics);
});
afterAll(() => app?.close());
beforeEach(() => {
  clock = new Date();
});

const seed = (options: SeedOptions = {}) =>
  seedLicence(ctx().licensingDb, deps.keystore.keyHashSecret, options);

let fpCounter = 0;
function fingerprint(): string {
  fpCounter += 1;
  return `machine-${process.pid}-${fpCounter}-0123456789abcdef`;
}

function activate(key: string, fp: string, extra: Partial<InjectOptions> = {}) {
  return app.inject({
    method: 'POST',
    url: '/v1/activations',
    payload: { key, fingerprint: fp },
    ...extra,
  });
}

async function publicKeys() {
  const res = await app.inject('/v1/licensing/keys');
  expect(res.statusCode).toBe(200);
  return (res.json() as { keys: Parameters<typeof checkLicenceDocument>[0] }).keys;
}

function claimsOf(document: unknown): LicenceClaims {
  const check = checkLicenceDocument(deps.keystore.publicKeys, document, clock);
  if (!check.ok) throw new Error(check.reason);
  return check.claims;
}

async function events(licenceId: string, type: string) {
  return ctx().licensingDb('subscription_events').where({ licence_id: licenceId, type });
}

async function activeDevices(licenceId: string) {
  return ctx().licensingDb('devices').where({ licence_id: licenceId, state: 'active' });
}

describe('activation', () => {
  it('activates a key, returns a document the software verifies offline, and records it once', async () => {
    clock = new Date();
    const licence = await seed({ modules: ['firewall', 'antivirus'], deviceLimit: 2 });
    const fp = fingerprint();
    const res = await activate(licence.key.toLowerCase(), fp);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ licenceId: licence.licenceId, outcome: 'activated' });
    expect(body.deviceId).toMatch(/^dev_/);

    const check = checkLicenceDocument(await publicKeys(), body.document, clock);
    expect(check).toMatchObject({ ok: true, usable: true });
    const claims = (check as { claims: LicenceClaims }).claims;
    expect(Object.keys(claims).sort()).toEqual(
      [
        'checkInAfter',
        'device',
        'deviceLimit',
        'ispId',
        'issuedAt',
        'licenceId',
        'modules',
        'period',
        'status',
        'subscriberId',
        'validUntil',
      ].sort(),
    );
    expect(claims).toMatchObject({
      licenceId: licence.licenceId,
      subscriberId: licence.subscriberId,
      ispId: 'demo-fai',
      status: 'active',
      modules: ['antivirus', 'firewall'],
      device: { id: body.deviceId },
      deviceLimit: 2,
    });
    expect(Date.parse(claims.checkInAfter) - clock.getTime()).toBe(24 * 3_600_000);

    const row = await ctx().licensingDb('licences').where({ id: licence.licenceId }).first();
    expect(row.activated_at).not.toBeNull();
    expect(await events(licence.licenceId, 'activated')).toHaveLength(1);
    expect(await events(licence.licenceId, 'device-added')).toHaveLength(1);
    const device = await ctx().licensingDb('devices').where({ id: body.deviceId }).first();
    expect(Buffer.from(device.fingerprint_hash).toString('utf8')).not.toContain(fp);
    expect(device.fingerprint_hash).toHaveLength(32);
  });

  it('re-activates a bound device without using a seat, and keeps one activated event', async () => {
    const licence = await seed({ deviceLimit: 1 });
    const fp = fingerprint();
    const first = (await activate(licence.key, fp)).json();
    clock = new Date(clock.getTime() + 60_000);
    const again = await activate(licence.key, fp);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ outcome: 'reactivated', deviceId: first.deviceId });
    expect(claimsOf(again.json().document).issuedAt).toBe(clock.toISOString());
    expect(await activeDevices(licence.licenceId)).toHaveLength(1);
    expect(await events(licence.licenceId, 'activated')).toHaveLength(1);
    expect(await events(licence.licenceId, 'device-added')).toHaveLength(1);
  });

  it('refuses a device beyond the seat limit, naming the devices to free', async () => {
    const licence = await seed({ deviceLimit: 2 });
    const a = (await activate(licence.key, fingerprint())).json();
    const b = await activate(licence.key, fingerprint());
    expect(b.json().outcome).toBe('device-added');
    const c = await activate(licence.key, fingerprint());
    expect(c.statusCode).toBe(409);
    expect(c.json().code).toBe('ACTIVATION_SEAT_LIMIT');
    expect(c.json().message).toContain(a.deviceId);
    expect(await activeDevices(licence.licenceId)).toHaveLength(2);
    expect(await events(licence.licenceId, 'activated')).toHaveLength(1);
  });

  it('leaves nothing behind, not even an open transaction, when refusing under the lock', async () => {
    // A seat taken on a licence never activated: only a refusal after the locking write (which
    // sets activated_at) can answer it, so the write must be rolled back.
    const licence = await seed({ deviceLimit: 1 });
    const before = await ctx().licensingDb('licences').where({ id: licence.licenceId }).first();
    await ctx()
      .licensingDb('devices')
      .insert({
        id: newId('dev'),
        licence_id: licence.licenceId,
        fingerprint_hash: Buffer.alloc(32, 7),
        state: 'active',
        activated_at: clock,
        last_seen_at: clock,
      });
    const refused = await activate(licence.key, fingerprint());
    expect(refused.json().code).toBe('ACTIVATION_SEAT_LIMIT');
    const after = await ctx().licensingDb('licences').where({ id: licence.licenceId }).first();
    expect(after.activated_at).toBeNull();
    expect(after.updated_at).toEqual(before.updated_at);
    // From a connection of its own: a transaction left open in the pool would still hold the
    // licence row's lock.
    const other = createDb(ctx().config.deployment.mysql, 'licensing');
    try {
      await other.transaction(async (trx) => {
        await trx.raw('SELECT id FROM licences WHERE id = ? FOR UPDATE NOWAIT', [
          licence.licenceId,
        ]);
      });
    } finally {
      await other.destroy();
    }
    expect(await events(licence.licenceId, 'activated')).toHaveLength(0);
  });

  it.each([
    ['suspended', { status: 'suspended' }, 403, 'ACTIVATION_SUSPENDED'],
    [
      'cancelled past its end',
      { status: 'cancelled', validUntil: new Date(Date.now() - DAY_MS) },
      403,
      'ACTIVATION_CANCELLED',
    ],
    [
      'expired (not renewed)',
      { status: 'active', validUntil: new Date(Date.now() - 1000) },
      403,
      'ACTIVATION_CANCELLED',
    ],
    ['revoked', { licenceStatus: 'revoked' }, 403, 'ACTIVATION_CANCELLED'],
    ['erased', { erasedAt: new Date() }, 403, 'ACTIVATION_CANCELLED'],
  ] as const)('refuses a %s licence', async (_name, options, status, code) => {
    clock = new Date();
    const licence = await seed(options as SeedOptions);
    const res = await activate(licence.key, fingerprint());
    expect(res.statusCode).toBe(status);
    expect(res.json().code).toBe(code);
    expect(await activeDevices(licence.licenceId)).toHaveLength(0);
    expect(await events(licence.licenceId, 'activated')).toHaveLength(0);
  });

  it('activates a cancelled licence still inside its paid period, saying it is cancelled', async () => {
    clock = new Date();
    const licence = await seed({ status: 'cancelled' });
    const res = await activate(licence.key, fingerprint());
    expect(res.statusCode).toBe(200);
    const check = checkLicenceDocument(deps.keystore.publicKeys, res.json().document, clock);
    expect(check).toMatchObject({ ok: true, usable: true, claims: { status: 'cancelled' } });
  });

  it('answers a mistyped key, an unknown key and garbage identically but for the request id', async () => {
    const licence = await seed();
    const canonical = (readKey(licence.key) as { canonical: string }).canonical;
    const swapped = `${canonical[0] === 'A' ? 'B' : 'A'}${canonical.slice(1)}`;
    expect(readKey(swapped).ok).toBe(false);
    const body = generateKey().replace(/-/g, '').slice(0, 24);
    const unknown = body + checkCharacter(body);
    expect(readKey(unknown).ok).toBe(true);

    const answers = [];
    for (const key of [swapped, unknown, 'not a key at all']) {
      const res = await activate(key, fingerprint());
      answers.push({ status: res.statusCode, headers: res.headers, body: res.json() });
    }
    for (const answer of answers) {
      expect(answer.status).toBe(404);
      expect(answer.body.requestId).toMatch(/^req_/);
      const { requestId: _r, ...rest } = answer.body;
      expect(rest).toEqual({
        code: 'ACTIVATION_KEY_INVALID',
        message: 'this activation key is not valid',
      });
      expect(answer.headers['content-length']).toBe(answers[0]?.headers['content-length']);
    }
  });

  it('names the field and reason of a malformed request', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/activations',
      payload: { key: 'X', fingerprint: 'short', email: 'someone@example.org' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('HTTP_BAD_REQUEST');
    expect(res.json().message).toMatch(/fingerprint: expected 16 to 128 characters/);
    expect(res.json().message).toMatch(/email/);
  });

  it('answers malformed JSON with 400, without echoing the body', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/activations',
      headers: { 'content-type': 'application/json' },
      payload: '{"key": "ABCDE-", "fingerprint": ',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'HTTP_BAD_REQUEST' });
    expect(res.body).not.toContain('ABCDE');
  });

  it('never binds more devices than the limit, however many activate at once', async () => {
    const licence = await seed({ deviceLimit: 3 });
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => activate(licence.key, fingerprint())),
    );
    const codes = answers.map((a) => a.statusCode);
    expect(codes.filter((c) => c === 200)).toHaveLength(3);
    expect(codes.filter((c) => c === 409)).toHaveLength(17);
    expect(await activeDevices(licence.licenceId)).toHaveLength(3);
    expect(await events(licence.licenceId, 'activated')).toHaveLength(1);
    expect(await events(licence.licenceId, 'device-added')).toHaveLength(3);

    const one = await seed({ deviceLimit: 1 });
    const fp = fingerprint();
    const same = await Promise.all(Array.from({ length: 10 }, () => activate(one.key, fp)));
    expect(same.map((a) => a.statusCode)).toEqual(Array(10).fill(200));
    expect(new Set(same.map((a) => a.json().deviceId)).size).toBe(1);
    expect(await events(one.licenceId, 'activated')).toHaveLength(1);
  });
});

describe('licence documents', () => {
  it('fails verification when forged: changed payload, wrong kid, another signing key', async () => {
    const licence = await seed();
    const doc = (await activate(licence.key, fingerprint())).json().document;
    const keys = await publicKeys();
    expect(checkLicenceDocument(keys, doc, clock).ok).toBe(true);

    const claims = JSON.parse(Buffer.from(doc.payload, 'base64url').toString('utf8'));
    const richer = { ...claims, modules: ['antivirus', 'backup'], deviceLimit: 50 };
    const changed = {
      ...doc,
      payload: Buffer.from(JSON.stringify(richer)).toString('base64url'),
    };
    expect(checkLicenceDocument(keys, changed, clock)).toEqual({
      ok: false,
      reason: 'signature does not match',
    });
    expect(checkLicenceDocument(keys, { ...doc, kid: 'k19990101' }, clock)).toEqual({
      ok: false,
      reason: 'signed with unknown key k19990101',
    });
    const other = openKeystore(join(ctx().dir, 'other-keys'));
    const foreign = signDocument(
      { ...other.signing, kid: deps.keystore.signing.kid },
      'relais-licence/1',
      richer,
    );
    expect(checkLicenceDocument(keys, foreign, clock)).toMatchObject({ ok: false });
    expect(checkLicenceDocument(keys, { ...doc, type: 'relais-receipt/1' }, clock).ok).toBe(false);
  });

  it('is genuine but unusable once expired', async () => {
    const licence = await seed({ validUntil: new Date(clock.getTime() + 1000) });
    const doc = (await activate(licence.key, fingerprint())).json().document;
    const later = new Date(clock.getTime() + 2000);
    expect(checkLicenceDocument(deps.keystore.publicKeys, doc, later)).toMatchObject({
      ok: true,
      usable: false,
      reason: expect.stringMatching(/expired/),
    });
  });
});

describe('check-in', () => {
  function checkIn(licenceId: string, fp: string) {
    return app.inject({
      method: 'POST',
      url: `/v1/licences/${licenceId}/check-in`,
      payload: { fingerprint: fp },
    });
  }

  it('returns the current document: new modules, then suspended, then expired', async () => {
    clock = new Date();
    const licence = await seed({ modules: ['antivirus', 'backup'] });
    const fp = fingerprint();
    const activated = (await activate(licence.key, fp)).json();
    const db = ctx().licensingDb;
    await db('subscriptions')
      .where({ subscriber_id: licence.subscriberId })
      .update({ modules: 'antivirus,parental-control' });

    clock = new Date(clock.getTime() + 3_600_000);
    const res = await checkIn(licence.licenceId, fp);
    expect(res.statusCode).toBe(200);
    expect(res.json().deviceId).toBe(activated.deviceId);
    const claims = claimsOf(res.json().document);
    expect(claims.modules).toEqual(['antivirus', 'parental-control']);
    expect(claims.issuedAt).toBe(clock.toISOString());
    const device = await db('devices').where({ id: activated.deviceId }).first();
    expect(device.last_seen_at.getTime()).toBe(clock.getTime());

    await db('subscriptions')
      .where({ subscriber_id: licence.subscriberId })
      .update({ status: 'suspended' });
    const suspended = await checkIn(licence.licenceId, fp);
    expect(claimsOf(suspended.json().document).status).toBe('suspended');
    expect(
      checkLicenceDocument(deps.keystore.publicKeys, suspended.json().document, clock),
    ).toMatchObject({ usable: false, reason: 'the licence is suspended' });

    await db('licences')
      .where({ id: licence.licenceId })
      .update({ valid_until: new Date(clock.getTime() - 1000) });
    const expired = await checkIn(licence.licenceId, fp);
    expect(claimsOf(expired.json().document).status).toBe('expired');
  });

  it('answers an unbound device and an unknown licence with the same LICENCE_NOT_FOUND', async () => {
    const licence = await seed();
    await activate(licence.key, fingerprint());
    const stranger = await checkIn(licence.licenceId, fingerprint());
    const unknown = await checkIn('lic_00000000000000000000000000', fingerprint());
    const nonsense = await checkIn('nope', fingerprint());
    for (const res of [stranger, unknown, nonsense]) {
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('LICENCE_NOT_FOUND');
    }
  });
});

describe('device removal', () => {
  function remove(licenceId: string, deviceId: string, headers: Record<string, string>) {
    return app.inject({
      method: 'DELETE',
      url: `/v1/licences/${licenceId}/devices/${deviceId}`,
      headers,
    });
  }

  it('frees a seat, records it, and caps transfers per calendar month', async () => {
    clock = new Date('2026-12-10T10:00:00Z');
    const licence = await seed({ deviceLimit: 1, validUntil: new Date('2027-02-07T00:00:00Z') });
    const [oldPc, newPc] = [fingerprint(), fingerprint()];
    const first = (await activate(licence.key, oldPc)).json();
    expect((await activate(licence.key, newPc)).statusCode).toBe(409);

    // The new PC cannot prove a binding yet: it frees the old one with the key.
    const stranger = await remove(licence.licenceId, first.deviceId, {
      'x-relais-fingerprint': newPc,
    });
    expect(stranger.statusCode).toBe(404);
    expect(stranger.json().code).toBe('LICENCE_NOT_FOUND');
    const freed = await remove(licence.licenceId, first.deviceId, {
      'x-relais-activation-key': licence.key,
    });
    expect(freed.statusCode).toBe(204);
    const second = (await activate(licence.key, newPc)).json();
    expect(second.outcome).toBe('device-added');

    // From a bound device (its own fingerprint), the second transfer of the month.
    const again = await remove(licence.licenceId, second.deviceId, {
      'x-relais-fingerprint': newPc,
    });
    expect(again.statusCode).toBe(204);
    const back = (await activate(licence.key, oldPc)).json();
    expect(back.deviceId).toBe(first.deviceId);
    const capped = await remove(licence.licenceId, back.deviceId, {
      'x-relais-fingerprint': oldPc,
    });
    expect(capped.statusCode).toBe(429);
    expect(capped.json().code).toBe('DEVICE_TRANSFER_LIMIT');
    expect(await activeDevices(licence.licenceId)).toHaveLength(1);
    expect(await events(licence.licenceId, 'device-removed')).toHaveLength(2);

    // Paris is already in January at 23:30 UTC on 31 December.
    clock = new Date('2026-12-31T23:30:00Z');
    const nextMonth = await remove(licence.licenceId, back.deviceId, {
      'x-relais-fingerprint': oldPc,
    });
    expect(nextMonth.statusCode).toBe(204);
  });

  it('answers an unknown device with DEVICE_NOT_FOUND and a missing proof with 400', async () => {
    clock = new Date();
    const licence = await seed();
    const fp = fingerprint();
    await activate(licence.key, fp);
    const unknown = await remove(licence.licenceId, 'dev_00000000000000000000000000', {
      'x-relais-fingerprint': fp,
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('DEVICE_NOT_FOUND');
    const wrongKey = await remove(licence.licenceId, 'dev_00000000000000000000000000', {
      'x-relais-activation-key': generateKey(),
    });
    expect(wrongKey.statusCode).toBe(404);
    expect(wrongKey.json().code).toBe('LICENCE_NOT_FOUND');
    const bare = await remove(licence.licenceId, 'dev_00000000000000000000000000', {});
    expect(bare.statusCode).toBe(400);
    expect(bare.json().message).toContain('x-relais-fingerprint');
  });

  it('answers a failed proof the same whatever the device id, so a guessed key learns nothing', async () => {
    clock = new Date();
    const licence = await seed({ deviceLimit: 2 });
    const bound = (await activate(licence.key, fingerprint())).json();
    const answers = [];
    for (const device of [bound.deviceId, 'dev_00000000000000000000000000', 'nope']) {
      const proofs: Record<string, string>[] = [
        { 'x-relais-activation-key': generateKey() },
        { 'x-relais-fingerprint': fingerprint() },
      ];
      for (const headers of proofs) {
        const res = await remove(licence.licenceId, device, headers);
        const { requestId: _r, ...rest } = res.json();
        answers.push({ status: res.statusCode, body: rest });
      }
    }
    for (const answer of answers) {
      expect(answer).toEqual({
        status: 404,
        body: {
          code: 'LICENCE_NOT_FOUND',
          message: 'no such licence with this device bound to it',
        },
      });
    }
    // The key's holder, and only they, hear that the device id is wrong.
    const holder = await remove(licence.licenceId, 'nope', {
      'x-relais-activation-key': licence.key,
    });
    expect(holder.statusCode).toBe(404);
    expect(holder.json().code).toBe('DEVICE_NOT_FOUND');
    expect(await activeDevices(licence.licenceId)).toHaveLength(1);
  });

  it('holds removals by key to the activation lockout and key prefix limit', async () => {
    clock = new Date();
    const guarded = await apiWith({
      perAddressPerMinute: 1000,
      perKeyPrefixPerMinute: 3,
      lockoutAfterFailures: 2,
      lockoutBaseS: 30,
      lockoutMaxS: 60,
    });
    try {
      const licence = await seed();
      const bound = (await activate(licence.key, fingerprint())).json();
      const removal = (key: string, remoteAddress: string) =>
        guarded.inject({
          method: 'DELETE',
          url: `/v1/licences/${licence.licenceId}/devices/${bound.deviceId}`,
          headers: { 'x-relais-activation-key': key },
          remoteAddress,
        });
      // Two wrong keys lock the address: its next removal by key and its activations wait.
      expect((await removal(generateKey(), '10.9.3.1')).statusCode).toBe(404);
      expect((await removal(generateKey(), '10.9.3.1')).statusCode).toBe(404);
      const locked = await removal(licence.key, '10.9.3.1');
      expect(locked.statusCode).toBe(429);
      expect(locked.json().code).toBe('ACTIVATION_LOCKED');
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
      const activation = await guarded.inject({
        method: 'POST',
        url: '/v1/activations',
        payload: { key: licence.key, fingerprint: fingerprint() },
        remoteAddress: '10.9.3.1',
      });
      expect(activation.json().code).toBe('ACTIVATION_LOCKED');

      // Keys with the licence's first group, from many addresses: the activation above was the
      // first of the minute, so the third removal is the fourth attempt and is rate-limited.
      const prefix = (readKey(licence.key) as { prefix: string }).prefix;
      const codes = [];
      for (let i = 0; i < 4; i++) {
        const body = `${prefix}${generateKey().replace(/-/g, '').slice(5, 24)}`;
        const res = await removal(body + checkCharacter(body), `10.9.4.${i}`);
        codes.push(res.json().code);
      }
      expect(codes).toEqual([
        'LICENCE_NOT_FOUND',
        'LICENCE_NOT_FOUND',
        'RATE_LIMITED',
        'RATE_LIMITED',
      ]);
      expect(await activeDevices(licence.licenceId)).toHaveLength(1);
    } finally {
      await guarded.close();
    }
  });
});

describe('outages', () => {
  it('answers 503 DB_UNAVAILABLE, retryable, when the licensing database cannot be reached', async () => {
    const licence = await seed();
    const fp = fingerprint();
    const bound = (await activate(licence.key, fp)).json();
    const down = createDb({ ...ctx().config.deployment.mysql, port: 1 }, 'licensing');
    const broken = await apiWith(RELAXED, createMetrics(), { db: down });
    try {
      const answers = [
        await broken.inject({
          method: 'POST',
          url: '/v1/activations',
          payload: { key: licence.key, fingerprint: fp },
        }),
        await broken.inject({
          method: 'POST',
          url: `/v1/licences/${licence.licenceId}/check-in`,
          payload: { fingerprint: fp },
        }),
        await broken.inject({
          method: 'DELETE',
          url: `/v1/licences/${licence.licenceId}/devices/${bound.deviceId}`,
          headers: { 'x-relais-activation-key': licence.key },
        }),
      ];
      for (const res of answers) {
        expect(res.statusCode, res.body).toBe(503);
        expect(res.json().code).toBe('DB_UNAVAILABLE');
        expect(res.json().message).not.toContain(licence.key);
      }
      // The rules raise it themselves, retryable, whoever calls them.
      const own = { ...deps, db: down };
      const outage = { code: 'DB_UNAVAILABLE', retryable: true };
      await expect(
        rules.activate(own, { key: licence.key, fingerprint: fp }),
      ).rejects.toMatchObject(outage);
      await expect(rules.checkIn(own, licence.licenceId, fp)).rejects.toMatchObject(outage);
      await expect(
        rules.removeDevice(own, licence.licenceId, bound.deviceId, { key: licence.key }),
      ).rejects.toMatchObject(outage);
    } finally {
      await broken.close();
      await down.destroy();
    }
  });

  it('fails closed with 503 REDIS_UNAVAILABLE when the guard cannot reach redis', async () => {
    const licence = await seed();
    const fp = fingerprint();
    const bound = (await activate(licence.key, fp)).json();
    // A producer connection, as the api has: no offline queue, so commands fail at once.
    const down = new Redis('redis://127.0.0.1:1', redisOptions('producer'));
    down.on('error', () => {});
    const broken = await apiWith(RELAXED, createMetrics(), { redis: down });
    try {
      const answers = [
        await broken.inject({
          method: 'POST',
          url: '/v1/activations',
          payload: { key: licence.key, fingerprint: fp },
        }),
        await broken.inject({
          method: 'POST',
          url: `/v1/licences/${licence.licenceId}/check-in`,
          payload: { fingerprint: fp },
        }),
        await broken.inject({
          method: 'DELETE',
          url: `/v1/licences/${licence.licenceId}/devices/${bound.deviceId}`,
          headers: { 'x-relais-activation-key': licence.key },
        }),
      ];
      for (const res of answers) {
        expect(res.statusCode, res.body).toBe(503);
        expect(res.json().code).toBe('REDIS_UNAVAILABLE');
      }
      expect(await activeDevices(licence.licenceId)).toHaveLength(1);
    } finally {
      await broken.close();
      down.disconnect();
    }
  });
});

describe('guessing protection', () => {
  function metric(text: string, line: string): number {
    const found = text.split('\n').find((l) => l.startsWith(`${line} `));
    return found ? Number(found.slice(line.length + 1)) : 0;
  }

  it('locks an address out after repeated failures, for a growing delay, with metrics', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const guarded = await apiWith(
      {
        perAddressPerMinute: 1000,
        perKeyPrefixPerMinute: 1000,
        lockoutAfterFailures: 3,
        lockoutBaseS: 1,
        lockoutMaxS: 2,
      },
      metrics,
    );
    try {
      const guess = () =>
        guarded.inject({
          method: 'POST',
          url: '/v1/activations',
          payload: { key: generateKey(), fingerprint: fingerprint() },
          remoteAddress: '10.9.0.1',
        });
      const retryAfters: number[] = [];
      const statuses: number[] = [];
      for (let round = 0; round < 3; round++) {
        // Three failures lock for 1 s; each failure after a lockout doubles it, up to 2 s.
        const tries = round === 0 ? 3 : 1;
        for (let i = 0; i < tries; i++) statuses.push((await guess()).statusCode);
        const locked = await guess();
        expect(locked.statusCode).toBe(429);
        expect(locked.json().code).toBe('ACTIVATION_LOCKED');
        retryAfters.push(Number(locked.headers['retry-after']));
        await new Promise((r) => setTimeout(r, (retryAfters.at(-1) ?? 0) * 1000 + 50));
      }
      expect(statuses).toEqual(Array(5).fill(404));
      expect(retryAfters).toEqual([1, 2, 2]);

      // Another address is not locked; a success clears its failures.
      const licence = await seed();
      const from = (address: string, key: string) =>
        guarded.inject({
          method: 'POST',
          url: '/v1/activations',
          payload: { key, fingerprint: fingerprint() },
          remoteAddress: address,
        });
      for (let i = 0; i < 2; i++)
        expect((await from('10.9.0.2', generateKey())).statusCode).toBe(404);
      expect((await from('10.9.0.2', licence.key)).statusCode).toBe(200);
      for (let i = 0; i < 2; i++)
        expect((await from('10.9.0.2', generateKey())).statusCode).toBe(404);
      expect((await from('10.9.0.2', generateKey())).statusCode).toBe(404);
      expect((await from('10.9.0.2', generateKey())).statusCode).toBe(429);

      const text = await metrics.metrics();
      expect(metric(text, 'relais_activation_lockouts_total')).toBe(4);
      expect(metric(text, 'relais_activation_attempts_total{result="locked"}')).toBe(4);
      expect(metric(text, 'relais_activation_attempts_total{result="unknown"}')).toBe(10);
      expect(metric(text, 'relais_activation_attempts_total{result="activated"}')).toBe(1);
    } finally {
      await guarded.close();
    }
  });

  it('rate-limits an address and a key prefix, with Retry-After', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const guarded = await apiWith(
      {
        perAddressPerMinute: 5,
        perKeyPrefixPerMinute: 3,
        lockoutAfterFailures: 1000,
        lockoutBaseS: 1,
        lockoutMaxS: 1,
      },
      metrics,
    );
    try {
      const licence = await seed({ deviceLimit: 100 });
      const fp = fingerprint();
      const codes: number[] = [];
      let last: Awaited<ReturnType<typeof guarded.inject>> | undefined;
      for (let i = 0; i < 6; i++) {
        last = await guarded.inject({
          method: 'POST',
          url: '/v1/activations',
          payload: { key: `xxxxx${i}`, fingerprint: fp },
          remoteAddress: '10.9.1.1',
        });
        codes.push(last.statusCode);
      }
      expect(codes).toEqual([404, 404, 404, 404, 404, 429]);
      expect(last?.json().code).toBe('RATE_LIMITED');
      const wait = Number(last?.headers['retry-after']);
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(wait).toBeLessThanOrEqual(60);
      // Check-ins count against the address as well.
      const checkIn = await guarded.inject({
        method: 'POST',
        url: `/v1/licences/${licence.licenceId}/check-in`,
        payload: { fingerprint: fp },
        remoteAddress: '10.9.1.1',
      });
      expect(checkIn.json().code).toBe('RATE_LIMITED');

      // Same first group from many addresses: the prefix limit stops the fourth.
      const prefix = (readKey(licence.key) as { prefix: string }).prefix;
      const sameStart = Array.from({ length: 4 }, (_, i) => {
        const body = `${prefix}${generateKey().replace(/-/g, '').slice(5, 24)}`;
        return { key: body + checkCharacter(body), address: `10.9.2.${i}` };
      });
      const answers = [];
      for (const { key, address } of sameStart) {
        answers.push(
          await guarded.inject({
            method: 'POST',
            url: '/v1/activations',
            payload: { key, fingerprint: fingerprint() },
            remoteAddress: address,
          }),
        );
      }
      expect(answers.map((a) => a.statusCode)).toEqual([404, 404, 404, 429]);
      expect(answers[3]?.json().message).toMatch(/keys starting like this one/);
      const text = await metrics.metrics();
      expect(metric(text, 'relais_activation_attempts_total{result="rate-limited"}')).toBe(3);
      expect(metric(text, 'relais_activation_attempts_total{result="mistyped"}')).toBe(5);
    } finally {
      await guarded.close();
    }
  });
});
