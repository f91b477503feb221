/**
 * Tenant isolation (issue 7, "Privacy and tenant isolation"): ISP A's credentials against ISP
 * B's feeds, subscribers, licences, rated lines and reports, over real HTTP on a whole Relais
 * (`startRelais`, role all: the api, the workers, both databases, Redis).
 *
 * Both ISPs start with real data made the real way: each pushes its export signed with its own
 * secret (docs/push-api.md), the workers provision it with the ISP's own token and hand the keys
 * over in the ISP's return file, customers of both activate, and B's December is closed. The
 * two exports carry the same customer refs (`10000001`...): refs are the ISP's own numbering,
 * and two ISPs' customers must never meet.
 *
 * Then every credential A holds (its bearer token for provisioning, erasure and billing, its
 * push secret) is tried against B, each attempt its own test: the answer's status and code,
 * and B's data (every row of both databases that is B's) unchanged. The activation and check-in
 * routes take no ISP credential at all (a key or a bound device proves the caller), so there
 * isolation means an ISP token opens nothing: A's token neither checks in B's licence nor frees
 * its device, and A cannot re-key it or replace its download link. The operations overview is
 * the operator's, not any ISP's: an ISP token does not open it.
 *
 * Controls: the same requests with B's own credentials succeed, so each refusal is about the
 * credential, not a broken request.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { signPush } from '../api/feed-push.routes.js';
import { type RunningRelais, startRelais } from '../cli/commands/start.js';
import { closeBillingPeriod } from '../licensing/billing/close.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { SimulatedClock } from '../platform/clock.js';
import type { Db } from '../platform/db.js';
import { newId } from '../platform/ids.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { encode, generateCustomers, renderXml } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { tablesOf } from './harness/privacy-scan.js';
import { waitFor } from './harness/wait.js';

const A = 'isp-a';
const B = 'isp-b';
const SECRETS = {
  [A]: 'isp-a-push-secret-0123456789abcdef',
  [B]: 'isp-b-push-secret-fedcba9876543210',
} as const;
const OPERATOR = { name: 'operator', password: 'operator-password-of-the-test' };
const PERIOD = '2026-12';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/alpha-telecom.yaml'), 'utf8'));

/** The shipped Alpha Télécom config, receiving by push and handing keys over in return files. */
function pushIsp(secret: string): string {
  const { pickup: _pickup, schedule: _schedule, ...intake } = shipped.intake;
  return stringify({
    ...shipped,
    intake: { ...intake, transport: { type: 'http', secret } },
    delivery: { mode: 'return-file' },
  });
}

const ctx = useTestContext({
  isps: { [A]: pushIsp(SECRETS[A]), [B]: pushIsp(SECRETS[B]) },
  deployment: {
    admin: { users: [{ ...OPERATOR, role: 'operator' }] },
    shutdownTimeoutMs: 10_000,
  },
});

const clock = new SimulatedClock();
let lifecycle: Lifecycle;
let running: RunningRelais;
let api: string;

const tokenOf = (ispId: string) =>
  ispTokenOf(running.services.config, running.licensing.keystore, ispId);
const bearer = (ispId: string) => ({ authorization: `Bearer ${tokenOf(ispId)}` });
const json = { 'content-type': 'application/json', accept: 'application/json' };

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Answer> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: body === undefined ? headers : { ...json, ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    parsed = { text };
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

/** Signs and pushes `body` to `ispId`'s address with `secret`, as an ISP's billing system does. */
function push(
  ispId: string,
  secret: string,
  body: Buffer,
  name: string,
  ageS = 0,
): Promise<Answer> {
  const timestamp = Math.floor(Date.now() / 1000) - ageS;
  return call(
    'POST',
    `/v1/isps/${ispId}/feeds`,
    {
      'content-type': 'application/xml',
      'x-relais-timestamp': String(timestamp),
      'x-relais-signature': signPush(secret, timestamp, body),
      'x-relais-filename': name,
    },
    body.toString('utf8'),
  );
}

// ---------------------------------------------------------------------------------------------
// B's data, every row of it

/** Every file under `dir` (relative path and size), in name order. */
function filesUnder(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const stat = statSync(path);
      return stat.isDirectory() ? filesUnder(path, base) : [`${relative(base, path)} ${stat.size}`];
    });
}

/**
 * Every row of both databases that belongs to `ispId`: rows of tables with an `isp_id` column,
 * and rows tied to its licences or subscribers (devices, downloads) in tables without one; and
 * every file of its folder (inbox, staging, feeds kept, outbox).
 */
async function dataOf(ispId: string): Promise<Record<string, unknown[]>> {
  const { connectorDb, licensingDb, config } = ctx();
  const { connectorDatabase, licensingDatabase } = config.deployment.mysql;
  const licences = (await licensingDb('licences').where({ isp_id: ispId }).pluck('id')) as string[];
  const subscribers = (await licensingDb('subscriptions')
    .where({ isp_id: ispId })
    .pluck('subscriber_id')) as string[];
  const isp = config.isps.get(ispId);
  const data: Record<string, unknown[]> = { files: isp ? filesUnder(isp.workDir) : [] };
  for (const [side, db, database] of [
    ['connector', connectorDb, connectorDatabase],
    ['licensing', licensingDb, licensingDatabase],
  ] as [string, Db, string][]) {
    for (const table of await tablesOf(db, database)) {
      const columns = Object.keys(await db(table).columnInfo());
      const query = db(table).select('*');
      if (columns.includes('isp_id')) query.where({ isp_id: ispId });
      else if (columns.includes('licence_id')) query.whereIn('licence_id', licences);
      else if (columns.includes('subscriber_id')) query.whereIn('subscriber_id', subscribers);
      else continue;
      const rows = (await query) as Record<string, unknown>[];
      data[`${side}.${table}`] = rows
        .map((row) => JSON.stringify(row))
        .sort()
        .map((row) => JSON.parse(row));
    }
  }
  return data;
}

let before: Record<string, unknown[]>;

/** Runs `attempt`, then checks that not one of B's rows changed. */
async function leavesBUnchanged<T>(attempt: () => Promise<T>): Promise<T> {
  before = await dataOf(B);
  const result = await attempt();
  expect(await dataOf(B)).toEqual(before);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The world: two ISPs, provisioned, keys handed over, some activated, B's month closed

interface Customer {
  ref: string;
  subscriberId: string;
  licenceId: string;
  key: string;
  link: string;
}

/** The ISP's customers as its return file names them, with their server-side ids. */
async function customersOf(ispId: string): Promise<Customer[]> {
  const isp = running.services.config.isps.get(ispId);
  if (!isp) throw new Error(`no ISP ${ispId}`);
  const dir = join(isp.workDir, 'outbox', 'keys');
  const { delimiter } = isp.delivery.returnFile;
  const unquote = (cell: string) => cell.replace(/^"|"$/g, '').replace(/""/g, '"');
  const customers: Customer[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.csv'))) {
    for (const line of readFileSync(join(dir, name), 'utf8').split('\r\n').slice(1)) {
      const [ref, key, link] = line.split(delimiter).map(unquote);
      if (!ref || !key || !link) continue;
      const subscriber = await ctx()
        .connectorDb('subscribers')
        .where({ isp_id: ispId, customer_ref: ref })
        .first();
      const licence = await ctx()
        .licensingDb('licences')
        .where({ isp_id: ispId, subscriber_id: subscriber.subscriber_id })
        .first();
      customers.push({
        ref,
        subscriberId: subscriber.subscriber_id,
        licenceId: licence.id,
        key,
        link,
      });
    }
  }
  return customers.sort((x, y) => x.ref.localeCompare(y.ref));
}

async function settled(): Promise<void> {
  const db = ctx().connectorDb;
  await waitFor('both feeds applied, every batch sent and every key handed over', async () => {
    const feeds = await db('feeds').select('status');
    const batches = await db('provisioning_batches').select('state');
    const pending = await db('deliveries').where({ state: 'pending' }).first();
    const done =
      feeds.length === 2 &&
      feeds.every((f) => f.status === 'applied') &&
      batches.length >= 2 &&
      batches.every((b) => b.state === 'sent') &&
      !pending;
    return done ? true : undefined;
  });
}

const fingerprint = (who: string) => `tenant-test-desktop-${who}-0123456789`;

async function activate(customer: Customer, who: string): Promise<void> {
  const answer = await call(
    'POST',
    '/v1/activations',
    {},
    {
      key: customer.key,
      fingerprint: fingerprint(who),
    },
  );
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
}

let customersA: Customer[];
let customersB: Customer[];
/** B's customer whose software activated (a device bound) and one who never activated. */
let activeB: Customer;
let idleB: Customer;
let exportA: Buffer;

beforeAll(async () => {
  clock.set(new Date('2026-12-01T06:00:00Z'));
  lifecycle = new Lifecycle(silentLogger(), 10_000);
  running = await startRelais(ctx().config, 'all', silentLogger(), lifecycle, {
    port: 0,
    clock,
    schedules: false,
  });
  api = running.apiUrl as string;

  exportA = encode(renderXml(generateCustomers(4, 41)));
  const exportB = encode(renderXml(generateCustomers(4, 42)));
  expect((await push(A, SECRETS[A], exportA, 'a-20261201.xml')).status).toBe(202);
  expect((await push(B, SECRETS[B], exportB, 'b-20261201.xml')).status).toBe(202);
  await settled();
  customersA = await customersOf(A);
  customersB = await customersOf(B);
  [activeB, idleB] = customersB as [Customer, Customer];

  clock.set(new Date('2026-12-05T18:00:00Z'));
  await activate(activeB, 'b');
  await activate(customersA[0] as Customer, 'a');

  clock.set(new Date('2027-01-05T08:00:00Z'));
  await closeBillingPeriod(running.licensing.server, B, PERIOD);
}, 60_000);

afterAll(async () => {
  await lifecycle?.shutdown('tenant isolation test done');
});

// ---------------------------------------------------------------------------------------------

describe('the two ISPs', () => {
  it('hold the same refs as different customers, each provisioned under its own ISP', () => {
    expect(customersA.map((c) => c.ref)).toEqual(customersB.map((c) => c.ref));
    const idsB = new Set(customersB.map((c) => c.subscriberId));
    expect(customersA.some((c) => idsB.has(c.subscriberId))).toBe(false);
    expect(customersA).toHaveLength(4);
  });

  it("B's data, as the checks below compare it, holds every kind of row of B's", async () => {
    const data = await dataOf(B);
    for (const table of [
      'files',
      'connector.feeds',
      'connector.subscribers',
      'connector.deliveries',
      'connector.provisioning_batches',
      'licensing.subscriptions',
      'licensing.licences',
      'licensing.subscription_events',
      'licensing.devices',
      'licensing.billing_closes',
      'licensing.rated_lines',
    ]) {
      expect(data[table]?.length, table).toBeGreaterThan(0);
    }
  });
});

describe("ISP A's push secret against B's feeds", () => {
  it("refuses a push to B's address signed with A's secret: 401, no feed for B", async () => {
    const answer = await leavesBUnchanged(() => push(B, SECRETS[A], exportA, 'from-a.xml'));
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ code: 'FEED_PUSH_UNAUTHORIZED' });
    expect(String(answer.body.message)).toMatch(/signature does not match/);
  });

  it("refuses a push to B's address carrying A's bearer token instead of a signature", async () => {
    const answer = await leavesBUnchanged(() =>
      call(
        'POST',
        `/v1/isps/${B}/feeds`,
        { ...bearer(A), 'content-type': 'application/xml' },
        '<x/>',
      ),
    );
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ code: 'FEED_PUSH_UNAUTHORIZED' });
  });

  it('control: B signing with its own secret is accepted (the same content: a duplicate)', async () => {
    const exportB = encode(renderXml(generateCustomers(4, 42)));
    // Signed a minute ago: the same content signed at the same second would be a replay.
    const answer = await push(B, SECRETS[B], exportB, 'b-again.xml', 60);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ duplicate: true });
  });
});

describe("ISP A's token against B's subscribers", () => {
  /** A command for `subscriberId` at `version`, as A's connector would send it. */
  function command(kind: string, subscriberId: string, version: number) {
    const status = { subscribe: 'active', suspend: 'suspended', cancel: 'cancelled' }[kind];
    return {
      key: `${subscriberId}:v${version}`,
      kind,
      subscriberId,
      version,
      modules: ['antivirus'],
      status,
      effectiveAt: '2026-12-06T09:00:00.000Z',
    };
  }

  async function versionOf(subscriberId: string): Promise<number> {
    const row = await ctx()
      .licensingDb('subscriptions')
      .where({ subscriber_id: subscriberId })
      .first();
    return Number(row.version);
  }

  /** A's batch of one command for B's subscriber, and the same for an id nobody has. */
  async function provisionAsA(kind: string, version: (id: string) => Promise<number>) {
    const target = activeB.subscriberId;
    const answer = await leavesBUnchanged(async () =>
      call('POST', '/v1/provisioning/batches', bearer(A), {
        commands: [command(kind, target, await version(target))],
      }),
    );
    const nobody = newId('sub');
    const unknown = await call('POST', '/v1/provisioning/batches', bearer(A), {
      commands: [command(kind, nobody, await version(target))],
    });
    const [result] = answer.body.results as Record<string, unknown>[];
    const [unknownResult] = unknown.body.results as Record<string, unknown>[];
    // B's subscriber looks exactly like one that does not exist: A learns nothing.
    expect({ ...result, key: '', message: String(result?.message).replace(target, '') }).toEqual({
      ...unknownResult,
      key: '',
      message: String(unknownResult?.message).replace(nobody, ''),
    });
    return { status: answer.status, result: result as Record<string, unknown> };
  }

  it("refuses to subscribe B's subscriber id for A: SUBSCRIBER_NOT_FOUND", async () => {
    const target = activeB.subscriberId;
    const answer = await leavesBUnchanged(() =>
      call('POST', '/v1/provisioning/batches', bearer(A), {
        commands: [command('subscribe', target, 7)],
      }),
    );
    expect(answer.status).toBe(200);
    expect(answer.body.results).toEqual([
      expect.objectContaining({ outcome: 'rejected', code: 'SUBSCRIBER_NOT_FOUND' }),
    ]);
    // Nor does A now hold a subscription under that id.
    const held = await ctx().licensingDb('subscriptions').where({ subscriber_id: target });
    expect(held.map((s) => s.isp_id)).toEqual([B]);
  });

  it("refuses to suspend B's subscriber: deferred as for an unknown id, nothing stored", async () => {
    const { status, result } = await provisionAsA(
      'suspend',
      async (id) => (await versionOf(id)) + 1,
    );
    expect(status).toBe(200);
    expect(result).toMatchObject({ outcome: 'deferred', code: 'PROVISIONING_OUT_OF_ORDER' });
  });

  it("refuses to cancel B's subscriber: SUBSCRIBER_NOT_FOUND, as for an unknown id", async () => {
    const { status, result } = await provisionAsA('cancel', async () => 1);
    expect(status).toBe(200);
    expect(result).toMatchObject({ outcome: 'rejected', code: 'SUBSCRIBER_NOT_FOUND' });
  });

  it("refuses to record a delivery of B's licence: 404 SUBSCRIBER_NOT_FOUND", async () => {
    const answer = await leavesBUnchanged(() =>
      call('POST', '/v1/provisioning/deliveries', bearer(A), {
        deliveries: [
          {
            subscriberId: idleB.subscriberId,
            licenceId: idleB.licenceId,
            channel: 'return-file',
            deliveredAt: '2026-12-06T09:00:00.000Z',
          },
        ],
      }),
    );
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 'SUBSCRIBER_NOT_FOUND' });
  });

  it("refuses to erase B's subscriber: 404 SUBSCRIBER_NOT_FOUND, B's customer intact", async () => {
    const answer = await leavesBUnchanged(() =>
      call('DELETE', `/v1/subscribers/${activeB.subscriberId}`, bearer(A)),
    );
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 'SUBSCRIBER_NOT_FOUND' });
    // B's customer still checks in.
    const checkIn = await call(
      'POST',
      `/v1/licences/${activeB.licenceId}/check-in`,
      {},
      {
        fingerprint: fingerprint('b'),
      },
    );
    expect(checkIn.status).toBe(200);
  });
});

describe("ISP A's token against B's licences and download links", () => {
  it("refuses to re-key B's licence: 404 LICENCE_NOT_FOUND, B's key unchanged", async () => {
    const answer = await leavesBUnchanged(() =>
      call('POST', `/v1/licences/${idleB.licenceId}/key`, bearer(A)),
    );
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 'LICENCE_NOT_FOUND' });
    expect(answer.body).not.toHaveProperty('key');
  });

  it("refuses to replace B's download link: 404 LICENCE_NOT_FOUND, B's link still opens", async () => {
    const answer = await leavesBUnchanged(() =>
      call('POST', `/v1/licences/${idleB.licenceId}/download-link`, bearer(A)),
    );
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 'LICENCE_NOT_FOUND' });
    // Opened while it is valid: on the 20th of December, before B's month was closed.
    const now = clock.now();
    clock.set(new Date('2026-12-20T12:00:00Z'));
    try {
      const listing = await call('GET', new URL(idleB.link).pathname, {
        accept: 'application/json',
      });
      expect(listing.status, JSON.stringify(listing.body)).toBe(200);
    } finally {
      clock.set(now);
    }
  });

  it("opens nothing on the desktop routes: A's token does not check B's licence in", async () => {
    const answer = await leavesBUnchanged(() =>
      call('POST', `/v1/licences/${activeB.licenceId}/check-in`, bearer(A), {
        fingerprint: fingerprint('a'),
      }),
    );
    expect(answer.status).toBe(404);
    expect(answer.body).toMatchObject({ code: 'LICENCE_NOT_FOUND' });
  });

  it("opens nothing on the desktop routes: A's token does not free B's device", async () => {
    const device = await ctx()
      .licensingDb('devices')
      .where({ licence_id: activeB.licenceId })
      .first();
    const bare = await leavesBUnchanged(() =>
      call('DELETE', `/v1/licences/${activeB.licenceId}/devices/${device.id}`, bearer(A)),
    );
    expect(bare.status).toBe(400);
    expect(bare.body).toMatchObject({ code: 'HTTP_BAD_REQUEST' });
    const asFingerprint = await leavesBUnchanged(() =>
      call('DELETE', `/v1/licences/${activeB.licenceId}/devices/${device.id}`, {
        ...bearer(A),
        'x-relais-fingerprint': fingerprint('a'),
      }),
    );
    expect(asFingerprint.status).toBe(404);
    expect(asFingerprint.body).toMatchObject({ code: 'LICENCE_NOT_FOUND' });
  });

  it("control: B's own token re-keys B's licence never activated", async () => {
    const earlier = await dataOf(B);
    const answer = await call('POST', `/v1/licences/${idleB.licenceId}/key`, bearer(B));
    expect(answer.status).toBe(200);
    // And the comparison the refusals pass would have seen it.
    expect(await dataOf(B)).not.toEqual(earlier);
    expect(answer.body).toMatchObject({ licenceId: idleB.licenceId });
    // The return file's key stopped working with that: hand the new one to the customer.
    idleB = { ...idleB, key: String(answer.body.key) };
  });
});

describe("ISP A's token against B's rated lines and period summary", () => {
  it("refuses B's closed period summary: A's own is not closed, 409 BILLING_PERIOD_NOT_CLOSED", async () => {
    const answer = await leavesBUnchanged(() =>
      call('GET', `/v1/billing/periods/${PERIOD}`, bearer(A)),
    );
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({ code: 'BILLING_PERIOD_NOT_CLOSED' });
    const own = await call('GET', `/v1/billing/periods/${PERIOD}`, bearer(B));
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ ispId: B, period: PERIOD });
  });

  it("refuses B's rated lines: 409 BILLING_PERIOD_NOT_CLOSED, whatever the query names", async () => {
    for (const path of [
      `/v1/billing/periods/${PERIOD}/lines`,
      `/v1/billing/periods/${PERIOD}/lines?isp=${B}&ispId=${B}`,
    ]) {
      const answer = await leavesBUnchanged(() =>
        call('GET', path, { ...bearer(A), 'x-relais-isp': B }),
      );
      expect(answer.status, path).toBe(409);
      expect(answer.body).toMatchObject({ code: 'BILLING_PERIOD_NOT_CLOSED' });
    }
  });

  it('once A closes its own month, A reads its own lines and never one of B', async () => {
    await closeBillingPeriod(running.licensing.server, A, PERIOD);
    const response = await fetch(`${api}/v1/billing/periods/${PERIOD}/lines?isp=${B}`, {
      headers: bearer(A),
    });
    expect(response.status).toBe(200);
    const lines = (await response.text())
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { ispId: string; subscriberId: string });
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines.map((l) => l.ispId))).toEqual(new Set([A]));
    const idsB = new Set(customersB.map((c) => c.subscriberId));
    expect(lines.filter((l) => idsB.has(l.subscriberId))).toEqual([]);
    const summary = await call('GET', `/v1/billing/periods/${PERIOD}`, bearer(A));
    expect(summary.body).toMatchObject({ ispId: A });
  });
});

describe("ISP A's credentials against the operations overview and other doors", () => {
  it("does not open the operator's overview or queue dashboard: 401 ADMIN_UNAUTHORIZED", async () => {
    const basicWithToken = Buffer.from(`${A}:${tokenOf(A)}`).toString('base64');
    for (const [path, headers] of [
      ['/admin', bearer(A)],
      ['/admin/queues/api/queues', bearer(A)],
      ['/admin', { authorization: `Basic ${basicWithToken}` }],
    ] as [string, Record<string, string>][]) {
      const answer = await call('GET', path, { ...headers, accept: 'application/json' });
      expect(answer.status, path).toBe(401);
      expect(answer.body, path).toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
    }
    const operator = Buffer.from(`${OPERATOR.name}:${OPERATOR.password}`).toString('base64');
    const control = await fetch(`${api}/admin`, {
      headers: { authorization: `Basic ${operator}` },
    });
    expect(control.status).toBe(200);
  });

  it("takes A's push secret for no bearer token: 401 PROVISIONING_UNAUTHORIZED", async () => {
    const answer = await leavesBUnchanged(() =>
      call('DELETE', `/v1/subscribers/${activeB.subscriberId}`, {
        authorization: `Bearer ${SECRETS[A]}`,
      }),
    );
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ code: 'PROVISIONING_UNAUTHORIZED' });
  });

  it("control: B's token erases B's own customer, once", async () => {
    const answer = await call('DELETE', `/v1/subscribers/${idleB.subscriberId}`, bearer(B));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ repeated: false });
  });
});
