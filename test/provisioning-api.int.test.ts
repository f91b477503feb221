/**
 * The provisioning API end to end: a real fastify app on the test's own MariaDB and Redis,
 * driven the way the connector drives it (bearer token per ISP, JSON batches).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { provisioningRoutes } from '../api/provisioning.routes.js';
import { buildApi } from '../api/server.js';
import { hashKey, readKey } from '../licensing/activation-key.js';
import type { LicensingDeps } from '../licensing/context.js';
import { readDownloadToken } from '../licensing/download-token.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import type { ProvisioningFaults } from '../licensing/provisioning.js';
import type { BatchResponse, CommandResult, WireCommand } from '../licensing/provisioning-wire.js';
import { newId } from '../platform/ids.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const isp = (licensing: Record<string, unknown>) => stringify({ ...shipped, licensing });

const ctx = useTestContext({
  isps: {
    alpha: isp({ deviceLimit: 1, offerDeviceLimits: { FAMILLE: 3 }, downloadLinkDays: 30 }),
    beta: isp({}),
  },
});

/** 10 December 2026, 11:00 in Paris: period 2026-12, which ends 31 Dec 23:00 UTC. */
const NOW = new Date('2026-12-10T10:00:00.000Z');
const PERIOD_END = new Date('2026-12-31T23:00:00.000Z');
const VALID_UNTIL = new Date('2027-01-07T23:00:00.000Z');

let app: FastifyInstance;
let deps: LicensingDeps;
const faults: ProvisioningFaults = {};
const logLines: string[] = [];
const metrics = createMetrics({ defaultMetrics: false });

beforeAll(async () => {
  const { config } = ctx();
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  });
  deps = licensingDepsOf(ctx(), { config, log, metrics, now: () => NOW });
  app = await buildApi({
    log,
    metrics,
    readiness: [],
    bodyLimitBytes: 4 * 1024 * 1024,
    routes: [async (instance) => instance.register(provisioningRoutes, { deps, faults })],
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
});

const token = (ispId: string) => ispTokenOf(deps.config, deps.keystore, ispId);

function command(overrides: Partial<WireCommand> = {}): WireCommand {
  const subscriberId = overrides.subscriberId ?? newId('sub');
  const version = overrides.version ?? 1;
  return {
    key: `${subscriberId}:v${version}`,
    kind: 'subscribe',
    subscriberId,
    version,
    modules: ['antivirus'],
    status: 'active',
    effectiveAt: '2026-12-10T09:00:00.000Z',
    ...overrides,
  };
}

/** The next command of the same subscriber. */
function next(previous: WireCommand, overrides: Partial<WireCommand>): WireCommand {
  return command({
    subscriberId: previous.subscriberId,
    version: previous.version + 1,
    modules: previous.modules,
    status: previous.status,
    ...overrides,
  });
}

async function post(url: string, body: unknown, ispId = 'alpha') {
  return app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token(ispId)}`, 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function send(commands: unknown[], ispId = 'alpha'): Promise<CommandResult[]> {
  const res = await post('/v1/provisioning/batches', { commands }, ispId);
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as BatchResponse).results;
}

async function one(c: WireCommand, ispId = 'alpha'): Promise<CommandResult> {
  return (await send([c], ispId))[0] as CommandResult;
}

const db = () => ctx().licensingDb;
/** The link generation a download URL carries. */
function linkGeneration(url: string): number {
  const reading = readDownloadToken(
    deps.keystore.linkSecret,
    url.split('/v1/downloads/')[1] as string,
    NOW.getTime() / 1000,
  );
  if (!reading.ok) throw new Error(`unreadable link: ${reading.reason}`);
  return reading.claims.generation;
}
const subscription = (id: string) => db()('subscriptions').where('subscriber_id', id).first();
const licenceOf = (id: string) => db()('licences').where('subscriber_id', id).first();
const eventsOf = async (id: string) =>
  (await db()('subscription_events').where('subscriber_id', id).orderBy('id')).map((e) => ({
    type: e.type as string,
    data: typeof e.data === 'string' ? JSON.parse(e.data) : e.data,
  }));
async function rowsFor(subscriberIds: string[]): Promise<number> {
  let total = 0;
  for (const table of ['subscriptions', 'licences', 'subscription_events']) {
    const [row] = await db()(table).whereIn('subscriber_id', subscriberIds).count({ n: '*' });
    total += Number(row?.n);
  }
  const [requests] = await db()('provisioning_requests')
    .whereIn(
      'idempotency_key',
      subscriberIds.map((id) => `${id}:v1`),
    )
    .count({ n: '*' });
  return total + Number(requests?.n);
}

describe('authentication', () => {
  it('refuses a request without a token, and one with a wrong token, before reading it', async () => {
    const body = JSON.stringify({ commands: [command()] });
    const none = await app.inject({
      method: 'POST',
      url: '/v1/provisioning/batches',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    expect(none.statusCode).toBe(401);
    expect(none.json().code).toBe('PROVISIONING_UNAUTHORIZED');
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/provisioning/batches',
      headers: {
        authorization: `Bearer ${token('alpha')}x`,
        'content-type': 'application/json',
      },
      payload: '{not json',
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().code).toBe('PROVISIONING_UNAUTHORIZED');
    for (const url of ['/v1/licences/lic_x/key', '/v1/provisioning/deliveries']) {
      expect((await app.inject({ method: 'POST', url })).statusCode).toBe(401);
    }
  });
});

describe('refused batches', () => {
  async function refused(body: unknown): Promise<string> {
    const res = await post('/v1/provisioning/batches', body);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().code).toBe('PROVISIONING_INVALID');
    return res.json().message as string;
  }

  it('refuses malformed JSON without quoting it back', async () => {
    const message = await refused('{"commands": [{"key": "jean.dupont@example.fr"');
    expect(message).toBe('the body is not valid JSON');
  });

  it('refuses an unknown top-level field', async () => {
    expect(await refused({ commands: [command()], priority: 'high' })).toContain(
      'priority: unrecognized key',
    );
  });

  it('refuses personal fields smuggled into commands, naming each path, storing nothing', async () => {
    const commands = [
      command(),
      { ...command(), email: 'jean.dupont@example.fr' },
      command(),
      { ...command(), customerRef: '00012345', name: 'Jean Dupont' },
    ];
    const message = await refused({ commands });
    expect(message).toContain('commands[1].email: unrecognized key');
    expect(message).toContain('commands[3].customerRef: unrecognized key');
    expect(message).toContain('commands[3].name: unrecognized key');
    expect(message).not.toContain('dupont');
    expect(message).not.toContain('00012345');
    expect(await rowsFor(commands.map((c) => c.subscriberId))).toBe(0);
  });

  it('refuses free text in offer, and a key used as a data carrier', async () => {
    const message = await refused({
      commands: [
        command({ offer: 'Famille Dupont, 3 rue des Lilas' }),
        { ...command(), 'a@b.fr': 1 },
      ],
    });
    expect(message).toContain('commands[0].offer: expected an offer code');
    expect(message).toContain('commands[1].<unnamed key>: unrecognized key');
    expect(message).not.toContain('Lilas');
    expect(message).not.toContain('a@b.fr');
  });

  it('refuses a cancel that leaves the subscription active, naming the path, storing nothing', async () => {
    const v1 = command();
    await one(v1);
    const contradictory = next(v1, { kind: 'cancel', status: 'active' });
    expect(await refused({ commands: [contradictory] })).toContain(
      'commands[0].status: a cancel command must leave the subscription cancelled, not active',
    );
    expect(await subscription(v1.subscriberId)).toMatchObject({ status: 'active', version: 1 });
    expect((await eventsOf(v1.subscriberId)).map((e) => e.type)).toEqual(['provisioned']);
    expect(await db()('provisioning_requests').where('idempotency_key', contradictory.key)).toEqual(
      [],
    );
  });

  it('refuses more than 1000 commands, an empty batch and a repeated key', async () => {
    const many = Array.from({ length: 1001 }, () => command());
    expect(await refused({ commands: many })).toMatch(/^batch refused.*commands: /);
    expect(await rowsFor(many.map((c) => c.subscriberId))).toBe(0);
    expect(await refused({ commands: [] })).toContain('commands:');
    const c = command();
    expect(await refused({ commands: [c, command(), c] })).toContain(
      'commands[2].key: repeats commands[0].key',
    );
    const mismatched = { ...command(), version: 2 };
    expect(await refused({ commands: [mismatched] })).toContain(
      'commands[0].key: must be <subscriberId>:v<version>',
    );
    expect(await rowsFor([c.subscriberId, mismatched.subscriberId])).toBe(0);
  });
});

describe('subscribe', () => {
  it('creates the subscription, a licence with a key shown once, a link and an event', async () => {
    const c = command({ modules: ['firewall', 'antivirus'] });
    const result = await one(c);
    expect(result.outcome).toBe('applied');
    const issued = result.licence;
    if (!issued?.key) throw new Error('a first subscribe answers the key');
    const reading = readKey(issued.key);
    if (!reading.ok) throw new Error(reading.reason);

    const licence = await licenceOf(c.subscriberId);
    expect(licence.id).toBe(issued.licenceId);
    expect(
      Buffer.compare(licence.key_hash, hashKey(deps.keystore.keyHashSecret, reading.canonical)),
    ).toBe(0);
    expect(licence).toMatchObject({
      isp_id: 'alpha',
      status: 'valid',
      period: '2026-12',
      device_limit: 1,
      link_generation: 1,
      activated_at: null,
    });
    expect(licence.valid_until).toEqual(VALID_UNTIL);
    expect(issued.validUntil).toBe(VALID_UNTIL.toISOString());
    expect(await subscription(c.subscriberId)).toMatchObject({
      isp_id: 'alpha',
      status: 'active',
      modules: 'antivirus,firewall',
      version: 1,
    });

    const prefix = `${deps.config.deployment.server.url}/v1/downloads/`;
    expect(issued.downloadUrl.startsWith(prefix)).toBe(true);
    const tokenReading = readDownloadToken(
      deps.keystore.linkSecret,
      issued.downloadUrl.slice(prefix.length),
      NOW.getTime() / 1000,
    );
    expect(tokenReading).toEqual({
      ok: true,
      claims: {
        licenceId: issued.licenceId,
        generation: 1,
        expiresAt: NOW.getTime() / 1000 + 30 * 86_400,
      },
    });
    expect(issued.downloadExpiresAt).toBe('2027-01-09T10:00:00.000Z');

    expect(await eventsOf(c.subscriberId)).toEqual([
      {
        type: 'provisioned',
        data: {
          modules: ['antivirus', 'firewall'],
          offer: null,
          deviceLimit: 1,
          period: '2026-12',
          status: 'active',
          version: 1,
        },
      },
    ]);
    // Shown once: neither the stored answer nor the log holds the key. The answer is kept on
    // the command's own event, so a first load writes no provisioning_requests row.
    const stored = await db()('subscription_events').where('idempotency_key', c.key).first();
    expect(stored.command_hash).toHaveLength(32);
    expect(stored.command_reply).not.toContain(issued.key);
    expect(JSON.parse(stored.command_reply).licence).toMatchObject({
      licenceId: issued.licenceId,
      generation: 1,
    });
    expect(JSON.parse(stored.command_reply).licence.key).toBeUndefined();
    expect(await db()('provisioning_requests').where('idempotency_key', c.key)).toEqual([]);
    expect(logLines.join('')).not.toContain(issued.key);
  });

  it('gives an offer its own device limit', async () => {
    const family = command({ offer: 'FAMILLE' });
    const other = command({ offer: 'SECU_ESSENTIEL' });
    await send([family, other]);
    expect((await licenceOf(family.subscriberId)).device_limit).toBe(3);
    expect((await licenceOf(other.subscriberId)).device_limit).toBe(1);
  });

  it('answers a replay with the first result, without the key and without a second event', async () => {
    const batch = [command(), command({ kind: 'subscribe', modules: ['backup'] })];
    const first = await send(batch);
    const again = await send(batch);
    for (const [i, result] of again.entries()) {
      const original = first[i] as CommandResult;
      expect(result.outcome).toBe('replayed');
      const { key, ...withoutKey } = original.licence ?? {};
      expect(key).toBeDefined();
      expect(result.licence).toEqual(withoutKey);
      expect(await eventsOf(batch[i]?.subscriberId as string)).toHaveLength(1);
    }
    expect(
      await db()('licences').whereIn(
        'subscriber_id',
        batch.map((c) => c.subscriberId),
      ),
    ).toHaveLength(2);
  });

  it('replays and guards the commands that write no event of their own as well', async () => {
    // A subscribe that changes nothing and a rejection write no event under their key: their
    // answers are kept in provisioning_requests and replayed from there.
    const v1 = command();
    await one(v1);
    const same = next(v1, {});
    expect((await one(same)).outcome).toBe('applied');
    expect(await db()('provisioning_requests').where('idempotency_key', same.key)).toHaveLength(1);
    expect((await one(same)).outcome).toBe('replayed');
    expect(await one({ ...same, modules: ['backup'] })).toMatchObject({
      outcome: 'rejected',
      code: 'PROVISIONING_KEY_CONFLICT',
    });
    expect((await subscription(v1.subscriberId)).modules).toBe('antivirus');

    const unknown = command({ kind: 'suspend', status: 'suspended' });
    const refused = await one(unknown);
    expect(refused).toMatchObject({ outcome: 'rejected', code: 'SUBSCRIBER_NOT_FOUND' });
    expect(await one(unknown)).toEqual(refused);
    // The same key as a subscribe now: another body, so a conflict, and nothing is created.
    expect(await one({ ...unknown, kind: 'subscribe', status: 'active' })).toMatchObject({
      outcome: 'rejected',
      code: 'PROVISIONING_KEY_CONFLICT',
    });
    expect(await rowsFor([unknown.subscriberId])).toBe(1);
  });

  it('replays each command of a mixed batch from where its record lives, and applies the new', async () => {
    // The server reads event-held records only for subscribers that exist: a resent subscribe
    // (its record on its event), a resent refusal of an unknown subscriber (its record in
    // provisioning_requests) and a brand-new subscriber side by side in one batch.
    const applied = command();
    const unknown = command({ kind: 'suspend', status: 'suspended' });
    const [first, refused] = await send([applied, unknown]);
    expect(refused).toMatchObject({ outcome: 'rejected', code: 'SUBSCRIBER_NOT_FOUND' });
    const fresh = command({ modules: ['firewall'] });
    const results = await send([unknown, fresh, applied]);
    expect(results[0]).toEqual(refused);
    expect(results[1]).toMatchObject({ outcome: 'applied', licence: { key: expect.any(String) } });
    const { key, ...withoutKey } = first?.licence ?? {};
    expect(key).toBeDefined();
    expect(results[2]).toEqual({ key: applied.key, outcome: 'replayed', licence: withoutKey });
    // And each record still guards its key against another body.
    const conflicts = await send([
      { ...applied, modules: ['backup'] },
      { ...unknown, kind: 'cancel', status: 'cancelled' },
    ]);
    expect(conflicts.map((r) => r.code)).toEqual([
      'PROVISIONING_KEY_CONFLICT',
      'PROVISIONING_KEY_CONFLICT',
    ]);
    expect(await eventsOf(applied.subscriberId)).toHaveLength(1);
  });

  it('calls the same key with another body a conflict, and changes nothing', async () => {
    const c = command();
    await one(c);
    const result = await one({ ...c, modules: ['antivirus', 'backup'] });
    expect(result).toMatchObject({ outcome: 'rejected', code: 'PROVISIONING_KEY_CONFLICT' });
    expect((await subscription(c.subscriberId)).modules).toBe('antivirus');
    // Module order is not part of a command's identity.
    const reordered = command({ modules: ['backup', 'antivirus'] });
    await one(reordered);
    expect((await one({ ...reordered, modules: ['antivirus', 'backup'] })).outcome).toBe(
      'replayed',
    );
  });
});

describe('ordering', () => {
  it('defers a command that arrives early, stores nothing for it, and applies it when resent', async () => {
    const v1 = command();
    const v2 = next(v1, { kind: 'change', modules: ['antivirus', 'firewall'] });
    const v3 = next(v2, { kind: 'suspend', status: 'suspended' });
    await one(v1);
    const early = await one(v3);
    expect(early).toMatchObject({ outcome: 'deferred', code: 'PROVISIONING_OUT_OF_ORDER' });
    expect(await db()('provisioning_requests').where('idempotency_key', v3.key)).toHaveLength(0);
    // Both in one batch, newest first: applied in version order.
    const results = await send([v3, v2]);
    expect(results.map((r) => r.outcome)).toEqual(['applied', 'applied']);
    expect(await subscription(v1.subscriberId)).toMatchObject({
      version: 3,
      status: 'suspended',
      modules: 'antivirus,firewall',
    });
    expect((await eventsOf(v1.subscriberId)).map((e) => e.type)).toEqual([
      'provisioned',
      'modules-changed',
      'suspended',
    ]);
  });

  it('lets a first subscribe carry any version, and rejects an older unseen version as stale', async () => {
    const v5 = command({ version: 5 });
    expect((await one(v5)).outcome).toBe('applied');
    const stale = command({
      subscriberId: v5.subscriberId,
      version: 3,
      kind: 'cancel',
      status: 'cancelled',
    });
    expect(await one(stale)).toMatchObject({
      outcome: 'rejected',
      code: 'PROVISIONING_STALE_VERSION',
    });
    expect((await subscription(v5.subscriberId)).status).toBe('active');
    // The refusal is remembered: a resend answers it again.
    expect(await one(stale)).toMatchObject({
      outcome: 'rejected',
      code: 'PROVISIONING_STALE_VERSION',
    });
  });

  it('answers an unknown subscriber: not found at version 1, deferred later', async () => {
    const unknown = command({ kind: 'change' });
    expect(await one(unknown)).toMatchObject({ outcome: 'rejected', code: 'SUBSCRIBER_NOT_FOUND' });
    const later = command({ kind: 'suspend', status: 'suspended', version: 4 });
    expect((await one(later)).outcome).toBe('deferred');
  });
});

describe('state changes', () => {
  it('applies change, suspend, resume and cancel with their licence effects and events', async () => {
    const v1 = command();
    await one(v1);
    const v2 = next(v1, { kind: 'change', modules: ['antivirus', 'backup'] });
    await one(v2);
    expect((await subscription(v1.subscriberId)).modules).toBe('antivirus,backup');

    const v3 = next(v2, { kind: 'suspend', status: 'suspended' });
    await one(v3);
    expect((await subscription(v1.subscriberId)).status).toBe('suspended');
    // The suspension outlived the licence; resuming makes it valid for the current period.
    await db()('licences')
      .where('subscriber_id', v1.subscriberId)
      .update({ valid_until: new Date('2026-11-20T00:00:00.000Z'), period: '2026-10' });
    const v4 = next(v3, { kind: 'resume', status: 'active' });
    await one(v4);
    expect(await licenceOf(v1.subscriberId)).toMatchObject({
      valid_until: VALID_UNTIL,
      period: '2026-12',
    });

    const v5 = next(v4, { kind: 'cancel', status: 'cancelled', modules: ['antivirus'] });
    await one(v5);
    expect(await subscription(v1.subscriberId)).toMatchObject({
      status: 'cancelled',
      modules: 'antivirus',
      version: 5,
    });
    expect((await licenceOf(v1.subscriberId)).valid_until).toEqual(PERIOD_END);

    expect(await eventsOf(v1.subscriberId)).toEqual([
      expect.objectContaining({ type: 'provisioned' }),
      {
        type: 'modules-changed',
        data: { added: ['backup'], removed: [], modules: ['antivirus', 'backup'], version: 2 },
      },
      { type: 'suspended', data: { version: 3 } },
      { type: 'resumed', data: { version: 4 } },
      { type: 'cancelled', data: { version: 5 } },
      {
        type: 'modules-changed',
        data: { added: [], removed: ['backup'], modules: ['antivirus'], version: 5 },
      },
    ]);
  });

  it('keeps an earlier lapse date at cancel', async () => {
    const v1 = command();
    await one(v1);
    const early = new Date('2026-12-15T00:00:00.000Z');
    await db()('licences').where('subscriber_id', v1.subscriberId).update({ valid_until: early });
    await one(next(v1, { kind: 'cancel', status: 'cancelled' }));
    expect((await licenceOf(v1.subscriberId)).valid_until).toEqual(early);
  });

  it('reactivates a cancelled subscriber with its licence, a new link generation and a new key while never activated', async () => {
    const v1 = command();
    const first = (await one(v1)).licence;
    const v2 = next(v1, { kind: 'cancel', status: 'cancelled' });
    await one(v2);
    const back = await one(next(v2, { kind: 'subscribe', status: 'active', modules: ['backup'] }));
    expect(back.outcome).toBe('applied');
    expect(back.licence?.licenceId).toBe(first?.licenceId);
    expect(back.licence?.key).toBeDefined();
    expect(back.licence?.key).not.toBe(first?.key);
    const licence = await licenceOf(v1.subscriberId);
    const reading = readKey(back.licence?.key as string);
    if (!reading.ok) throw new Error(reading.reason);
    expect(
      Buffer.compare(licence.key_hash, hashKey(deps.keystore.keyHashSecret, reading.canonical)),
    ).toBe(0);
    expect(licence).toMatchObject({ link_generation: 2, valid_until: VALID_UNTIL });
    expect(await subscription(v1.subscriberId)).toMatchObject({
      status: 'active',
      modules: 'backup',
    });
  });

  it('reactivates an activated licence keeping its key and its link: nothing new to deliver', async () => {
    const v1 = command();
    const first = (await one(v1)).licence;
    await db()('licences').where('subscriber_id', v1.subscriberId).update({ activated_at: NOW });
    const before = await licenceOf(v1.subscriberId);
    const v2 = next(v1, { kind: 'cancel', status: 'cancelled' });
    await one(v2);
    const back = await one(next(v2, { kind: 'subscribe', status: 'active' }));
    expect(back.outcome).toBe('applied');
    expect(back.licence?.key).toBeUndefined();
    const after = await licenceOf(v1.subscriberId);
    expect(Buffer.compare(after.key_hash, before.key_hash)).toBe(0);
    // The customer's first link still works: same generation, which is what downloads check.
    expect(after).toMatchObject({ link_generation: 1, valid_until: VALID_UNTIL });
    for (const url of [first?.downloadUrl, back.licence?.downloadUrl]) {
      expect(linkGeneration(url as string)).toBe(after.link_generation);
    }
  });
});

describe('tenancy and erasure', () => {
  it("answers another ISP's subscriber exactly like an unknown one, and leaves it alone", async () => {
    const theirs = command();
    await one(theirs, 'beta');
    const unknown = command();
    const probes = (id: string) => [
      command({ subscriberId: id, version: 1, kind: 'cancel', status: 'cancelled' }),
      command({ subscriberId: id, version: 2, kind: 'suspend', status: 'suspended' }),
    ];
    const mine = await send(probes(unknown.subscriberId));
    const foreign = await send(probes(theirs.subscriberId));
    const anonymous = (r: CommandResult[]) =>
      r.map(({ key: _k, message, ...rest }) => ({
        ...rest,
        message: message?.replace(/sub_\w+/, 'X'),
      }));
    expect(anonymous(foreign)).toEqual(anonymous(mine));
    expect(foreign[0]).toMatchObject({ outcome: 'rejected', code: 'SUBSCRIBER_NOT_FOUND' });
    expect(await one(command({ subscriberId: theirs.subscriberId, version: 2 }))).toMatchObject({
      outcome: 'rejected',
      code: 'SUBSCRIBER_NOT_FOUND',
    });
    expect(await subscription(theirs.subscriberId)).toMatchObject({
      isp_id: 'beta',
      status: 'active',
      version: 1,
    });
    expect(await db()('licences').where('subscriber_id', theirs.subscriberId)).toHaveLength(1);
  });

  it('refuses commands for an erased subscriber', async () => {
    const v1 = command();
    await one(v1);
    await db()('subscriptions').where('subscriber_id', v1.subscriberId).update({ erased_at: NOW });
    expect(await one(next(v1, { kind: 'change', modules: [] }))).toMatchObject({
      outcome: 'rejected',
      code: 'SUBSCRIBER_ERASED',
    });
  });
});

describe('a database failure mid-batch', () => {
  it('rolls the whole batch back (503) and applies it exactly once when resent', async () => {
    const existing = command();
    await one(existing);
    const batch = [command(), command(), next(existing, { kind: 'change', modules: ['backup'] })];
    const newIds = [batch[0]?.subscriberId, batch[1]?.subscriberId] as string[];
    let killed = 0;
    faults.beforeCommit = async (trx) => {
      const [rows] = await trx.raw('SELECT CONNECTION_ID() AS id');
      await db().raw('KILL CONNECTION ?', [rows[0].id]);
      killed++;
    };
    try {
      const res = await post('/v1/provisioning/batches', { commands: batch });
      expect(res.statusCode, res.body).toBe(503);
      expect(res.json().code).toBe('DB_UNAVAILABLE');
    } finally {
      faults.beforeCommit = undefined;
    }
    expect(killed).toBe(1);
    expect(await rowsFor(newIds)).toBe(0);
    expect(await subscription(existing.subscriberId)).toMatchObject({
      version: 1,
      modules: 'antivirus',
    });
    expect(await eventsOf(existing.subscriberId)).toHaveLength(1);

    const resent = await send(batch);
    expect(resent.map((r) => r.outcome)).toEqual(['applied', 'applied', 'applied']);
    expect(resent[0]?.licence?.key).toBeDefined();
    expect((await send(batch)).map((r) => r.outcome)).toEqual(['replayed', 'replayed', 'replayed']);
    for (const id of newIds) {
      expect(await db()('licences').where('subscriber_id', id)).toHaveLength(1);
      expect(await eventsOf(id)).toHaveLength(1);
    }
    expect((await subscription(existing.subscriberId)).modules).toBe('backup');
    expect(await eventsOf(existing.subscriberId)).toHaveLength(2);
  });
});

describe('concurrent batches', () => {
  it('apply side by side without deadlock, and the same batch twice at once applies once', async () => {
    const batches = Array.from({ length: 4 }, () => Array.from({ length: 200 }, () => command()));
    const results = await Promise.all(batches.map((b) => send(b)));
    expect(results.flat().every((r) => r.outcome === 'applied')).toBe(true);

    const twice = Array.from({ length: 200 }, () => command());
    const [a, b] = await Promise.all([send(twice), send(twice)]);
    const outcomes = [...(a ?? []), ...(b ?? [])].map((r) => r.outcome).sort();
    expect(new Set(outcomes.slice(0, 200))).toEqual(new Set(['applied']));
    expect(new Set(outcomes.slice(200))).toEqual(new Set(['replayed']));
    const ids = twice.map((c) => c.subscriberId);
    const [licences] = await db()('licences').whereIn('subscriber_id', ids).count({ n: '*' });
    expect(Number(licences?.n)).toBe(200);
    const [events] = await db()('subscription_events')
      .whereIn('subscriber_id', ids)
      .count({ n: '*' });
    expect(Number(events?.n)).toBe(200);
  });
});

describe('licence repairs', () => {
  it('issues a new key only before activation, only to the owning ISP', async () => {
    const c = command();
    const first = (await one(c)).licence;
    const id = first?.licenceId as string;
    const res = await post(`/v1/licences/${id}/key`, '');
    expect(res.statusCode, res.body).toBe(200);
    const reissued = res.json();
    expect(reissued.licenceId).toBe(id);
    expect(reissued.key).not.toBe(first?.key);
    const reading = readKey(reissued.key);
    if (!reading.ok) throw new Error(reading.reason);
    const licence = await licenceOf(c.subscriberId);
    expect(
      Buffer.compare(licence.key_hash, hashKey(deps.keystore.keyHashSecret, reading.canonical)),
    ).toBe(0);
    expect((await eventsOf(c.subscriberId)).map((e) => e.type)).toEqual([
      'provisioned',
      'key-reissued',
    ]);

    const foreign = await post(`/v1/licences/${id}/key`, '', 'beta');
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().code).toBe('LICENCE_NOT_FOUND');
    expect((await post('/v1/licences/lic_nonsense/key', '')).json().code).toBe('LICENCE_NOT_FOUND');

    await db()('licences').where('id', id).update({ activated_at: NOW });
    const activated = await post(`/v1/licences/${id}/key`, '');
    expect(activated.statusCode).toBe(409);
    expect(activated.json().code).toBe('KEY_ALREADY_ACTIVATED');
    expect(Buffer.compare((await licenceOf(c.subscriberId)).key_hash, licence.key_hash)).toBe(0);
  });

  it('re-issues a download link with a new generation', async () => {
    const c = command();
    const id = (await one(c)).licence?.licenceId as string;
    const res = await post(`/v1/licences/${id}/download-link`, '');
    expect(res.statusCode, res.body).toBe(200);
    const { downloadUrl, downloadExpiresAt } = res.json();
    const tokenText = downloadUrl.split('/v1/downloads/')[1];
    const reading = readDownloadToken(deps.keystore.linkSecret, tokenText, NOW.getTime() / 1000);
    expect(reading).toMatchObject({ ok: true, claims: { licenceId: id, generation: 2 } });
    expect(downloadExpiresAt).toBe('2027-01-09T10:00:00.000Z');
    expect((await licenceOf(c.subscriberId)).link_generation).toBe(2);
    expect((await eventsOf(c.subscriberId)).map((e) => e.type)).toEqual([
      'provisioned',
      'link-reissued',
    ]);
    expect((await post(`/v1/licences/${id}/download-link`, '', 'beta')).statusCode).toBe(404);
  });
});

describe('delivery reports', () => {
  it('records one delivered event per licence, and nothing of a report naming a foreign licence', async () => {
    const mine = await one(command());
    const mineSub = (await db()('licences').where('id', mine.licence?.licenceId).first())
      .subscriber_id;
    const theirsCommand = command();
    const theirs = await one(theirsCommand, 'beta');
    const report = (licenceId: string, subscriberId: string) => ({
      licenceId,
      subscriberId,
      channel: 'email',
      deliveredAt: '2026-12-10T09:30:00.000Z',
    });
    const ok = report(mine.licence?.licenceId as string, mineSub);
    const mixed = await post('/v1/provisioning/deliveries', {
      deliveries: [ok, report(theirs.licence?.licenceId as string, theirsCommand.subscriberId)],
    });
    expect(mixed.statusCode).toBe(404);
    expect(mixed.json().code).toBe('SUBSCRIBER_NOT_FOUND');
    expect((await eventsOf(mineSub)).map((e) => e.type)).toEqual(['provisioned']);

    for (let i = 0; i < 2; i++) {
      const res = await post('/v1/provisioning/deliveries', { deliveries: [ok] });
      expect(res.statusCode, res.body).toBe(200);
    }
    expect(await eventsOf(mineSub)).toEqual([
      expect.objectContaining({ type: 'provisioned' }),
      { type: 'delivered', data: { channel: 'email' } },
    ]);
    // A later delivery of the licence (a new key after a reactivation) is a second event, and
    // its report repeated still records once.
    const later = { ...ok, channel: 'return-file', deliveredAt: '2027-01-05T08:00:00.000Z' };
    for (let i = 0; i < 2; i++) {
      const res = await post('/v1/provisioning/deliveries', { deliveries: [later] });
      expect(res.statusCode, res.body).toBe(200);
    }
    expect((await eventsOf(mineSub)).filter((e) => e.type === 'delivered')).toEqual([
      { type: 'delivered', data: { channel: 'email' } },
      { type: 'delivered', data: { channel: 'return-file' } },
    ]);
    const bad = await post('/v1/provisioning/deliveries', {
      deliveries: [{ ...ok, email: 'x@y.fr' }],
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toContain('deliveries[0].email: unrecognized key');
  });
});

describe('metrics', () => {
  it('counts commands by ISP, kind and outcome, and times batches', async () => {
    const text = await metrics.metrics();
    expect(text).toMatch(
      /relais_provisioning_commands_total\{isp="alpha",kind="subscribe",outcome="applied"\} [1-9]/,
    );
    expect(text).toMatch(
      /relais_provisioning_commands_total\{isp="alpha",kind="suspend",outcome="deferred"\} [1-9]/,
    );
    expect(text).toMatch(/relais_provisioning_batch_apply_seconds_count\{isp="alpha"\} [1-9]/);
  });
});
