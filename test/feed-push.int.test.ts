import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { Worker } from 'bullmq';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { feedPushRoutes, signPush } from '../api/feed-push.routes.js';
import { buildApi } from '../api/server.js';
import { openLicensing } from '../cli/licensing-runtime.js';
import { startApi } from '../cli/roles.js';
import { createIntakeMetrics } from '../connectors/intake/intake-metrics.js';
import { systemClock } from '../platform/clock.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { startFeedsWorker } from '../queue/feeds.worker.js';
import { ingestJobId } from '../queue/queues.js';
import { type Customer, encode, generateCustomers, renderXml } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake, type TestIntake } from './harness/intake.js';

const CAP_BYTES = 65_536;
const WINDOW_S = 300;
const SECRETS = {
  alpha: 'alpha-push-secret-0123456789abcdef',
  beta: 'beta-push-secret-fedcba9876543210',
  dormant: 'dormant-push-secret-0123456789abcd',
} as const;

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/alpha-telecom.yaml'), 'utf8'));

/** The shipped Alpha Télécom XML config, receiving by HTTP push instead of a shared folder. */
function pushIsp(secret: string, extra: Record<string, unknown> = {}): string {
  const transport = {
    type: 'http',
    secret,
    maxBodyBytes: CAP_BYTES,
    replayWindowS: WINDOW_S,
  };
  const { pickup: _pickup, schedule: _schedule, ...intake } = shipped.intake;
  return stringify({ ...shipped, ...extra, intake: { ...intake, transport } });
}

const ctx = useTestContext({
  isps: {
    alpha: pushIsp(SECRETS.alpha),
    beta: pushIsp(SECRETS.beta),
    dormant: pushIsp(SECRETS.dormant, { enabled: false }),
    folder: stringify(shipped),
  },
});

let intake: TestIntake;
let app: FastifyInstance;
let baseUrl: string;
/** The server side of the latest connection: how many bytes the api really read. */
let lastServerSocket: Socket | undefined;

const intakeMetrics = createMetrics({ defaultMetrics: false });

/** How many deliveries of `isp` the metrics count as refused with `code`. */
async function refusedCount(isp: string, code: string): Promise<number> {
  const metric = intakeMetrics.getSingleMetric('relais_deliveries_refused_total');
  const { values } = (await metric?.get()) ?? { values: [] };
  return values.find((v) => v.labels.isp === isp && v.labels.code === code)?.value ?? 0;
}

beforeAll(async () => {
  intake = await openTestIntake(ctx(), { metrics: createIntakeMetrics(intakeMetrics) });
  // Mounted the way cli/roles.ts mounts it, `prefix` (the Redis key prefix) included.
  const push: FastifyPluginAsync = async (instance) => {
    await instance.register(feedPushRoutes, {
      config: ctx().config,
      intake: intake.deps,
      queues: intake.queues,
      redis: ctx().redis,
      prefix: ctx().prefix,
    });
  };
  app = await buildApi({
    log: intake.deps.log,
    metrics: createMetrics(),
    readiness: [],
    bodyLimitBytes: 1_024, // far below the push cap: JSON limits must not apply to pushes
    routes: [push],
  });
  app.server.on('connection', (socket: Socket) => {
    lastServerSocket = socket;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

afterAll(async () => {
  await app?.close();
  await intake?.close();
});

const nowS = () => Math.floor(Date.now() / 1000);

function xmlExport(count: number, seed: number): { customers: Customer[]; body: Buffer } {
  const customers = [...generateCustomers(count, seed)];
  return { customers, body: encode(renderXml(customers)) };
}

function signed(secret: string, body: Buffer | string, timestampS = nowS()) {
  return {
    'content-type': 'application/xml',
    'x-relais-timestamp': String(timestampS),
    'x-relais-signature': signPush(secret, timestampS, body),
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown>;
}

/** POSTs on a fresh connection; a Buffer goes with its Content-Length unless headers say otherwise. */
function post(path: string, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const pushTo = (isp: string, headers: Record<string, string>, body: Buffer) =>
  post(`/v1/isps/${isp}/feeds`, headers, body);

interface StreamedAnswer {
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  json?: Record<string, unknown>;
  /** Bytes the client generator produced before the exchange ended. */
  pulledBytes: number;
  clientError?: string;
}

/**
 * Streams `total` bytes of filler from a generator (pulled only as the socket takes them) and
 * behaves like a sender that stops once it has the answer.
 */
function pushStream(
  isp: string,
  headers: Record<string, string>,
  totalBytes: number,
): Promise<StreamedAnswer> {
  return new Promise((resolve) => {
    const answer: StreamedAnswer = { pulledBytes: 0 };
    const chunk = Buffer.alloc(65_536, '<x/>');
    function* filler(): Generator<Buffer> {
      for (let sent = 0; sent < totalBytes; sent += chunk.length) {
        answer.pulledBytes += chunk.length;
        yield chunk;
      }
    }
    const url = `${baseUrl}/v1/isps/${isp}/feeds`;
    const req = request(url, { method: 'POST', headers, agent: false }, (res) => {
      answer.status = res.statusCode;
      answer.headers = res.headers;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        answer.json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        req.destroy();
        resolve(answer);
      });
    });
    req.on('error', (err) => {
      answer.clientError = err.message;
      if (answer.status === undefined) resolve(answer);
    });
    Readable.from(filler()).pipe(req);
  });
}

async function feedIds(ispId: string): Promise<string[]> {
  const rows: { id: string }[] = await ctx().connectorDb('feeds').where({ isp_id: ispId });
  return rows.map((r) => r.id).sort();
}

/** Staged parts and kept feed files of an ISP: what a refused push must not add to. */
function filesOf(ispId: string): { staged: string[]; kept: string[] } {
  const { config } = ctx();
  const workDir =
    config.isps.get(ispId)?.workDir ?? join(config.deployment.paths.dataDir, 'isps', ispId);
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);
  return {
    staged: list(join(workDir, 'staging')).filter((name) => name.endsWith('.part')),
    kept: list(join(workDir, 'feeds')),
  };
}

/** Runs `refused` and checks that it left no ledger row and no file behind. */
async function expectNothingLeft(ispId: string, refused: () => Promise<void>): Promise<void> {
  const feedsBefore = await feedIds(ispId);
  const filesBefore = filesOf(ispId);
  await refused();
  expect(await feedIds(ispId)).toEqual(feedsBefore);
  expect(filesOf(ispId)).toEqual({ staged: [], kept: filesBefore.kept });
}

function expectError(answer: { status?: number; json?: unknown }, status: number, code: string) {
  expect(answer.status).toBe(status);
  expect(answer.json).toEqual({
    code,
    message: expect.any(String),
    requestId: expect.stringMatching(/^req_[0-9a-z]{26}$/),
  });
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a correctly signed push', () => {
  const { customers, body } = xmlExport(40, 11);
  let feedId: string;

  it('answers 202 with the feed id and records it as received with size and sha256', async () => {
    const res = await pushTo(
      'alpha',
      { ...signed(SECRETS.alpha, body), 'x-relais-filename': 'clients 2026-12-03.xml' },
      body,
    );

    expect(res.status).toBe(202);
    expect(res.json).toEqual({
      feedId: expect.stringMatching(/^feed_/),
      status: 'received',
      duplicate: false,
    });
    feedId = res.json.feedId as string;
    const row = await ctx().connectorDb('feeds').where({ id: feedId }).first();
    expect(row).toMatchObject({
      isp_id: 'alpha',
      source: 'http',
      name: 'clients_2026-12-03.xml',
      status: 'received',
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    expect(Number(row.size_bytes)).toBe(body.length);
    expect(filesOf('alpha').staged).toEqual([]);
  });

  it('queues an ingest job that carries ids only', async () => {
    const job = await intake.queues.feeds.getJob(ingestJobId('alpha', feedId));
    expect(job?.data).toEqual({ ispId: 'alpha', feedId });

    // Everything under the test prefix in Redis, job hashes included, is free of the export's
    // personal data.
    const dump: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await ctx().redis.scan(cursor, 'MATCH', `${ctx().prefix}:*`);
      for (const key of keys) {
        const type = await ctx().redis.type(key);
        if (type === 'hash') dump.push(JSON.stringify(await ctx().redis.hgetall(key)));
        else if (type === 'string') dump.push((await ctx().redis.get(key)) ?? '');
        else if (type === 'list') dump.push(...(await ctx().redis.lrange(key, 0, -1)));
        else if (type === 'zset') dump.push(...(await ctx().redis.zrange(key, 0, -1)));
      }
      cursor = next;
    } while (cursor !== '0');
    const text = dump.join('\n');
    expect(text).toContain(feedId);
    for (const c of customers) {
      expect(text).not.toContain(c.ref);
      expect(text).not.toContain(c.email);
      expect(text).not.toContain(c.lastName);
    }
  });

  it('is applied by the feeds worker: the customers become subscribers', async () => {
    const connection = new Redis(ctx().config.deployment.redis.url, {
      maxRetriesPerRequest: null,
    });
    let worker: Worker | undefined;
    try {
      worker = startFeedsWorker({
        config: ctx().config,
        intake: intake.intake,
        intakeDeps: intake.deps,
        log: intake.deps.log,
        connection,
        prefix: ctx().prefix,
      });
      const status = await waitFor(async () => {
        const row = await ctx().connectorDb('feeds').where({ id: feedId }).first('status');
        return ['applied', 'failed', 'held'].includes(row.status) ? row.status : undefined;
      });
      expect(status).toBe('applied');
    } finally {
      await worker?.close();
      connection.disconnect();
    }

    const subscribers: { customer_ref: string; last_feed_id: string }[] = await ctx()
      .connectorDb('subscribers')
      .where({ isp_id: 'alpha' });
    expect(subscribers.map((s) => s.customer_ref).sort()).toEqual(
      customers.map((c) => c.ref).sort(),
    );
    expect(new Set(subscribers.map((s) => s.last_feed_id))).toEqual(new Set([feedId]));
  });

  it('answers the same content again (fresh signature) with 200 and the existing feed id', async () => {
    const before = await feedIds('alpha');
    const res = await pushTo('alpha', signed(SECRETS.alpha, body, nowS() + 1), body);

    expect(res.status).toBe(200);
    expect(res.json).toEqual({ feedId, status: 'applied', duplicate: true });
    const added = (await feedIds('alpha')).filter((id) => !before.includes(id));
    expect(added).toHaveLength(1);
    const row = await ctx().connectorDb('feeds').where({ id: added[0] }).first();
    expect(row).toMatchObject({ status: 'duplicate', duplicate_of: feedId, source: 'http' });
    expect(await intake.queues.feeds.getJob(ingestJobId('alpha', added[0] as string))).toBe(
      undefined,
    );
  });

  it('keeps ISPs apart: the same content pushed by another ISP is a new feed of that ISP', async () => {
    const res = await pushTo('beta', signed(SECRETS.beta, body), body);

    expect(res.status).toBe(202);
    expect(res.json.feedId).not.toBe(feedId);
    expect(res.json.duplicate).toBe(false);
    const row = await ctx().connectorDb('feeds').where({ id: res.json.feedId }).first();
    expect(row.isp_id).toBe('beta');
  });

  it('accepts a push whatever its content type, with no JSON body limit', async () => {
    for (const [i, contentType] of ['text/plain', 'application/json', 'text/xml'].entries()) {
      const other = xmlExport(10, 100 + i).body;
      expect(other.length).toBeGreaterThan(1_024);
      const headers = { ...signed(SECRETS.alpha, other), 'content-type': contentType };
      const res = await pushTo('alpha', headers, other);
      expect(res.status, contentType).toBe(202);
      const row = await ctx().connectorDb('feeds').where({ id: res.json.feedId }).first();
      expect(row.sha256, contentType).toBe(createHash('sha256').update(other).digest('hex'));
    }
  });

  it('accepts a body of exactly the cap', async () => {
    const head = xmlExport(1, 7).body;
    const exact = Buffer.concat([head, Buffer.alloc(CAP_BYTES - head.length, '\n')]);
    const res = await pushTo('alpha', signed(SECRETS.alpha, exact), exact);
    expect(res.status).toBe(202);
  });
});

describe('a push with a wrong or replayed HMAC signature', () => {
  const { body } = xmlExport(5, 21);
  const other = xmlExport(5, 22).body;

  it.each([
    ['signed with a wrong secret', () => signed('x'.repeat(40), body)],
    ["signed with another ISP's secret", () => signed(SECRETS.beta, body)],
    ['signed over another body', () => signed(SECRETS.alpha, other)],
    [
      'signed over another timestamp',
      () => ({
        ...signed(SECRETS.alpha, body, nowS() - 5),
        'x-relais-timestamp': String(nowS()),
      }),
    ],
  ])('refuses a push %s with 401 FEED_PUSH_UNAUTHORIZED', async (_case, headersOf) => {
    await expectNothingLeft('alpha', async () => {
      const res = await pushTo('alpha', headersOf(), body);
      expectError(res, 401, 'FEED_PUSH_UNAUTHORIZED');
      expect(res.json.message).toBe('push refused: signature does not match');
    });
  });

  it.each([
    ['without a timestamp', { 'x-relais-timestamp': undefined }],
    ['without a signature', { 'x-relais-signature': undefined }],
    ['with a timestamp in milliseconds', { 'x-relais-timestamp': String(Date.now()) }],
    ['with a date as timestamp', { 'x-relais-timestamp': new Date().toISOString() }],
    ['with a bare hex signature', { 'x-relais-signature': 'ab'.repeat(32) }],
    ['with a signature of another algorithm', { 'x-relais-signature': `sha1=${'ab'.repeat(20)}` }],
  ] as [string, Record<string, string | undefined>][])(
    'refuses a push %s with 401 FEED_PUSH_UNAUTHORIZED',
    async (_case, change) => {
      const headers: Record<string, string> = signed(SECRETS.alpha, body);
      for (const [name, value] of Object.entries(change)) {
        if (value === undefined) delete headers[name];
        else headers[name] = value;
      }
      await expectNothingLeft('alpha', async () => {
        const res = await pushTo('alpha', headers, body);
        expectError(res, 401, 'FEED_PUSH_UNAUTHORIZED');
        expect(res.json.message).toMatch(/^push refused: missing or malformed x-relais-/);
      });
    },
  );

  it.each([
    ['too old', -(WINDOW_S + 60)],
    ['too far ahead', WINDOW_S + 60],
  ])('refuses a timestamp %s for the replay window with 401', async (_case, offsetS) => {
    await expectNothingLeft('alpha', async () => {
      const res = await pushTo('alpha', signed(SECRETS.alpha, body, nowS() + offsetS), body);
      expectError(res, 401, 'FEED_PUSH_UNAUTHORIZED');
      expect(res.json.message).toMatch(/timestamp outside the 300 s window/);
    });
  });

  it('accepts a timestamp inside the window on either side', async () => {
    for (const offsetS of [-(WINDOW_S - 30), WINDOW_S - 30]) {
      const fresh = xmlExport(3, 300 + offsetS).body;
      const res = await pushTo('alpha', signed(SECRETS.alpha, fresh, nowS() + offsetS), fresh);
      expect(res.status, String(offsetS)).toBe(202);
    }
  });

  it('refuses the exact replay of an accepted request with 409 FEED_PUSH_REPLAYED', async () => {
    const headers = signed(SECRETS.alpha, body);
    const first = await pushTo('alpha', headers, body);
    expect(first.status).toBe(202);

    await expectNothingLeft('alpha', async () => {
      const replay = await pushTo('alpha', headers, body);
      expectError(replay, 409, 'FEED_PUSH_REPLAYED');
    });
  });

  it('refuses a request accepted by one ISP when replayed to another', async () => {
    const content = xmlExport(4, 31).body;
    const headers = signed(SECRETS.beta, content);
    expect((await pushTo('beta', headers, content)).status).toBe(202);

    await expectNothingLeft('alpha', async () => {
      expectError(await pushTo('alpha', headers, content), 401, 'FEED_PUSH_UNAUTHORIZED');
    });
  });
});

describe('a push over the size cap', () => {
  it('refuses a Content-Length above the cap with 413 before reading the body', async () => {
    const big = Buffer.alloc(CAP_BYTES + 1, 'x');
    await expectNothingLeft('alpha', async () => {
      const res = await pushTo('alpha', signed(SECRETS.alpha, big), big);
      expectError(res, 413, 'FEED_TOO_LARGE');
      expect(res.json.message).toBe(
        `push of ${CAP_BYTES + 1} bytes, larger than the ${CAP_BYTES} bytes this ISP may send`,
      );
    });
  });

  it('refuses a chunked body that grows past the cap with 413', async () => {
    const { body } = xmlExport(300, 41);
    expect(body.length).toBeGreaterThan(CAP_BYTES);
    await expectNothingLeft('alpha', async () => {
      const headers = { ...signed(SECRETS.alpha, body), 'transfer-encoding': 'chunked' };
      const res = await pushTo('alpha', headers, body);
      expectError(res, 413, 'FEED_TOO_LARGE');
      expect(res.json.message).toBe(`push larger than the ${CAP_BYTES} bytes this ISP may send`);
    });
  });

  const TWO_GB = 2 * 1024 ** 3;
  // What the client may have pushed into socket buffers before it read the answer.
  const CLIENT_SLACK_BYTES = 64 * 1024 ** 2;

  it('answers a 2 GB chunked push with 413 after reading about the cap, and the sender stops', async () => {
    await expectNothingLeft('alpha', async () => {
      const headers = { ...signed(SECRETS.alpha, 'unused'), 'transfer-encoding': 'chunked' };
      const res = await pushStream('alpha', headers, TWO_GB);

      expectError(res, 413, 'FEED_TOO_LARGE');
      expect(res.headers?.connection ?? 'close').toBe('close');
      expect(lastServerSocket?.bytesRead).toBeLessThan(CAP_BYTES + 512 * 1024);
      expect(res.pulledBytes).toBeLessThan(CLIENT_SLACK_BYTES);
    });
  });

  it('answers a push announcing 2 GB with 413 at once, and the sender stops', async () => {
    await expectNothingLeft('alpha', async () => {
      const headers = { ...signed(SECRETS.alpha, 'unused'), 'content-length': String(TWO_GB) };
      const res = await pushStream('alpha', headers, TWO_GB);

      expectError(res, 413, 'FEED_TOO_LARGE');
      expect(res.json?.message).toMatch(/^push of 2147483648 bytes/);
      expect(lastServerSocket?.bytesRead).toBeLessThan(CAP_BYTES + 512 * 1024);
      expect(res.pulledBytes).toBeLessThan(CLIENT_SLACK_BYTES);
    });
  });
});

describe('a push to an ISP that takes no pushes', () => {
  it.each([
    ['an unknown ISP', 'nobody', SECRETS.alpha],
    ['an ISP polled from a folder', 'folder', SECRETS.alpha],
    ['a disabled ISP', 'dormant', SECRETS.dormant],
  ])('answers %s with the same 404 ISP_UNKNOWN', async (_case, isp, secret) => {
    const { body } = xmlExport(2, 51);
    await expectNothingLeft(isp, async () => {
      const res = await pushTo(isp, signed(secret, body), body);
      expectError(res, 404, 'ISP_UNKNOWN');
      expect(res.json.message).toBe('no ISP accepts pushes at this address');
    });
  });
});

describe('a push cut short or empty', () => {
  it('answers an empty push with 422 FEED_ZERO_BYTES, recorded as a failed feed', async () => {
    const before = await feedIds('alpha');
    const res = await pushTo('alpha', signed(SECRETS.alpha, ''), Buffer.alloc(0));

    expectError(res, 422, 'FEED_ZERO_BYTES');
    const added = (await feedIds('alpha')).filter((id) => !before.includes(id));
    expect(added).toHaveLength(1);
    const row = await ctx().connectorDb('feeds').where({ id: added[0] }).first();
    expect(row).toMatchObject({ status: 'failed', error_code: 'FEED_ZERO_BYTES' });
    expect(res.json.message).toContain(added[0]);
    expect(await intake.queues.feeds.getJob(ingestJobId('alpha', added[0] as string))).toBe(
      undefined,
    );
  });

  it('drops a body the sender abandons midway, as a client error, leaving nothing', async () => {
    const { body } = xmlExport(20, 61);
    await expectNothingLeft('alpha', async () => {
      const logBefore = intake.logText().length;
      const req = request(`${baseUrl}/v1/isps/alpha/feeds`, {
        method: 'POST',
        headers: { ...signed(SECRETS.alpha, body), 'content-length': String(body.length) },
        agent: false,
      });
      req.on('error', () => {});
      req.write(body.subarray(0, 1_000));
      await new Promise((r) => setTimeout(r, 200));
      req.destroy();

      const refused = await waitFor(async () => {
        const lines = intake.logText().slice(logBefore).trim().split('\n').filter(Boolean);
        return lines.map((l) => JSON.parse(l)).find((l) => l.msg?.startsWith('request'));
      });
      expect(refused).toMatchObject({ msg: 'request refused', code: 'HTTP_BAD_REQUEST' });
    });
  });
});

describe('the log of a refused push', () => {
  const { customers, body } = xmlExport(8, 91);

  /** Sends a refused push and returns the log lines it wrote, parsed. */
  async function refusedLog(send: () => Promise<Answer>, status: number) {
    const logBefore = intake.logText().length;
    const res = await send();
    expect(res.status).toBe(status);
    const text = intake.logText().slice(logBefore);
    const lines = text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    return { text, lines, refused: lines.find((l) => l.msg === 'push refused') };
  }

  it.each([
    [
      'a wrong signature',
      401,
      'FEED_PUSH_UNAUTHORIZED',
      () => pushTo('alpha', signed('y'.repeat(40), body), body),
    ],
    [
      'a Content-Length over the cap',
      413,
      'FEED_TOO_LARGE',
      () => {
        const big = Buffer.concat([body, Buffer.alloc(CAP_BYTES, ' ')]);
        return pushTo('alpha', signed(SECRETS.alpha, big), big);
      },
    ],
    [
      'a chunked body growing over the cap',
      413,
      'FEED_TOO_LARGE',
      () => {
        const big = Buffer.concat([body, Buffer.alloc(CAP_BYTES, ' ')]);
        const headers = { ...signed(SECRETS.alpha, big), 'transfer-encoding': 'chunked' };
        return pushTo('alpha', headers, big);
      },
    ],
  ])(
    'logs %s as a warning with its code, without secret or body, and counts it',
    async (_case, status, code, send) => {
      const before = await refusedCount('alpha', code);
      const { text, refused } = await refusedLog(send, status);
      expect(await refusedCount('alpha', code)).toBe(before + 1);
      expect(refused).toMatchObject({
        level: 'warn',
        isp: 'alpha',
        code,
        reason: expect.any(String),
        reqId: expect.stringMatching(/^req_/),
      });
      expectNoSecretNorBody(text);
    },
  );

  it('logs a replay as a warning with its code, without secret or body', async () => {
    const headers = signed(SECRETS.alpha, body);
    expect((await pushTo('alpha', headers, body)).status).toBe(202);

    const { text, lines, refused } = await refusedLog(() => pushTo('alpha', headers, body), 409);

    expect(refused).toMatchObject({ level: 'warn', isp: 'alpha', code: 'FEED_PUSH_REPLAYED' });
    expect(lines.filter((l) => l.msg === 'push refused')).toHaveLength(1);
    expectNoSecretNorBody(text);
    expect(text).not.toContain(headers['x-relais-signature'].slice(7));
  });

  function expectNoSecretNorBody(text: string): void {
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
    expect(text).not.toContain('<at:Client');
    for (const c of customers) {
      expect(text).not.toContain(c.ref);
      expect(text).not.toContain(c.email);
      expect(text).not.toContain(c.lastName);
    }
  }
});

describe('the log of every push above', () => {
  it('holds no secret and no personal data from the exports', () => {
    const log = intake.logText();
    expect(log).toContain('feed received');
    for (const secret of Object.values(SECRETS)) expect(log).not.toContain(secret);
    for (const c of generateCustomers(40, 11)) {
      expect(log).not.toContain(c.ref);
      expect(log).not.toContain(c.email);
    }
  });
});

describe('when mounted by the api role (cli/roles.ts)', () => {
  it('answers at /v1/isps/:isp/feeds', async () => {
    const lifecycle = new Lifecycle(intake.deps.log, 5_000);
    const services = {
      config: ctx().config,
      log: intake.deps.log,
      metrics: createMetrics(),
      connectorDb: ctx().connectorDb,
      licensingDb: ctx().licensingDb,
      redis: ctx().redis,
      lifecycle,
      clock: systemClock,
    };
    try {
      const url = await startApi(services, intake, openLicensing(services), 0);
      const { body } = xmlExport(3, 71);
      const res = await fetch(`${url}/v1/isps/alpha/feeds`, {
        method: 'POST',
        headers: signed(SECRETS.alpha, body),
        body,
      });
      expect(res.status).toBe(202);
    } finally {
      await lifecycle.shutdown('test');
    }
  });
});

describe('docs/push-api.md', () => {
  const doc = readFileSync(join(packageRoot(), 'docs/push-api.md'), 'utf8');
  const block = (lang: string) => {
    const match = doc.match(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``));
    if (!match?.[1]) throw new Error(`no ${lang} block in docs/push-api.md`);
    return match[1];
  };
  const run = promisify(execFile);

  it.each([
    ['curl and openssl', 'sh', 'bash'],
    ['Node', 'js', process.execPath],
  ])('has a %s example that pushes a feed', async (_case, lang, interpreter) => {
    const { body } = xmlExport(6, lang === 'sh' ? 81 : 82);
    const file = join(ctx().dir, `example-${lang}.xml`);
    const script = join(ctx().dir, `example.${lang === 'sh' ? 'sh' : 'mjs'}`);
    writeFileSync(file, body);
    writeFileSync(script, block(lang));

    const { stdout } = await run(interpreter, [script], {
      env: {
        PATH: process.env.PATH,
        RELAIS_URL: baseUrl,
        RELAIS_ISP: 'alpha',
        RELAIS_PUSH_SECRET: SECRETS.alpha,
        FEED_FILE: file,
      },
    });
    const answer = JSON.parse(stdout.trim().split('\n').at(-1) as string);
    expect(answer).toEqual({
      feedId: expect.stringMatching(/^feed_/),
      status: 'received',
      duplicate: false,
    });
    const row = await ctx().connectorDb('feeds').where({ id: answer.feedId }).first();
    expect(row.sha256).toBe(createHash('sha256').update(body).digest('hex'));
  });
});
