/**
 * The push route when Redis goes away during a push, not before it: a real throw-away
 * `redis-server` stopped while the body is still arriving, and a queue whose Redis is gone
 * once the feed is recorded. The long outage under a whole Relais is
 * test/chaos/redis-outage.chaos.test.ts; these are the two narrow windows it can miss.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { feedPushRoutes, signPush } from '../api/feed-push.routes.js';
import { buildApi } from '../api/server.js';
import { createLogger, silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { connectRedis } from '../platform/redis.js';
import { openQueues, type Queues } from '../queue/queues.js';
import { encode, generateCustomers, renderXml } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake, type TestIntake } from './harness/intake.js';
import { type RedisServer, startRedisServer } from './harness/redis-server.js';

const SECRET = 'outage-push-secret-0123456789abcdef';
/** The shipped Alpha Télécom XML config, receiving by HTTP push instead of a shared folder. */
function pushIsp(): string {
  const shipped = parse(
    readFileSync(join(packageRoot(), 'config/isps/alpha-telecom.yaml'), 'utf8'),
  );
  const { pickup: _pickup, schedule: _schedule, ...rest } = shipped.intake;
  return stringify({
    ...shipped,
    intake: { ...rest, transport: { type: 'http', secret: SECRET } },
  });
}

const ctx = useTestContext({ isps: { alpha: pushIsp() } });

let intake: TestIntake;
let server: RedisServer;
const lines: Record<string, unknown>[] = [];

/** An api whose push route uses `redis` for replay keys and `queues` for drain jobs. */
async function pushApi(
  redis: Parameters<typeof feedPushRoutes>[1]['redis'],
  queues: Queues,
): Promise<{ app: FastifyInstance; url: string }> {
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    }),
  });
  const app = await buildApi({
    log,
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 1_024,
    routes: [
      async (instance) => {
        await instance.register(feedPushRoutes, {
          config: ctx().config,
          intake: intake.deps,
          queues,
          redis,
          prefix: ctx().prefix,
        });
      },
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof address === 'object' && address?.port}` };
}

interface Answer {
  status: number;
  json: { code?: string; feedId?: string; status?: string };
}

/** Pushes `body`, running `between` once half of it is sent. */
function push(url: string, body: Buffer, between = async () => {}): Promise<Answer> {
  const timestamp = Math.floor(Date.now() / 1000);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/isps/alpha/feeds`,
      {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/xml',
          'content-length': body.length,
          'x-relais-timestamp': String(timestamp),
          'x-relais-signature': signPush(SECRET, timestamp, body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString()),
          }),
        );
      },
    );
    req.on('error', reject);
    const half = Math.floor(body.length / 2);
    req.write(body.subarray(0, half));
    sleep(200)
      .then(between)
      .then(() => req.end(body.subarray(half)), reject);
  });
}

const body = (seed: number) => encode(renderXml(generateCustomers(30, seed)));

beforeAll(async () => {
  intake = await openTestIntake(ctx());
  server = await startRedisServer();
});

afterAll(async () => {
  await intake?.close();
  await server?.stop();
});

describe('a push when Redis goes down meanwhile', () => {
  it('answers 503 REDIS_UNAVAILABLE, not 500, when Redis stops while the body arrives', async () => {
    const redis = await connectRedis(
      { url: server.url, prefix: ctx().prefix },
      'producer',
      silentLogger(),
    );
    const queues = openQueues(redis, ctx().prefix);
    const { app, url } = await pushApi(redis, queues);
    try {
      const answer = await push(url, body(1), () => server.halt('SIGTERM'));

      expect(answer.status).toBe(503);
      expect(answer.json.code).toBe('REDIS_UNAVAILABLE');
      expect(await ctx().connectorDb('feeds'), 'nothing kept of a refused push').toEqual([]);
    } finally {
      await app.close();
      await queues.close();
      redis.disconnect();
      await server.restart();
    }
  });

  it('accepts a feed it recorded before its drain job could be queued, for the sweep to drain', async () => {
    // Replay keys on the shared Redis; drain jobs on a Redis that stops once connected.
    const jobs = await connectRedis(
      { url: server.url, prefix: ctx().prefix },
      'producer',
      silentLogger(),
    );
    const queues = openQueues(jobs, ctx().prefix);
    await queues.feeds.waitUntilReady();
    const { app, url } = await pushApi(ctx().redis, queues);
    await server.halt('SIGTERM');
    try {
      const answer = await push(url, body(2));

      expect(answer.status, JSON.stringify(answer.json)).toBe(202);
      const feed = await ctx().connectorDb('feeds').where({ id: answer.json.feedId }).first();
      // `received` is what the scheduler's sweep drains (queue/scheduler.ts).
      expect(feed).toMatchObject({ isp_id: 'alpha', status: 'received' });
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          feedId: answer.json.feedId,
          msg: 'feed recorded, its drain left to the scheduler sweep',
        }),
      );
    } finally {
      await app.close();
      jobs.disconnect();
      await server.restart();
    }
  });
});
