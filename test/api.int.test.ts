import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../api/server.js';
import { createDb } from '../platform/db.js';
import { InternalError, RequestError } from '../platform/errors.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { databaseCheck, type ReadinessCheck, redisCheck } from '../platform/readiness.js';
import { useTestContext } from './harness/context.js';

const ctx = useTestContext();

const failingRoutes: FastifyPluginAsync = async (app) => {
  app.get('/boom/bug', async () => {
    throw new TypeError("cannot read properties of undefined (reading 'secretThing')");
  });
  app.get('/boom/internal', async () => {
    throw new InternalError('INTERNAL', 'invariant broken for sub_123');
  });
  app.get('/boom/refused', async () => {
    throw new RequestError('HTTP_BAD_REQUEST', 'period must look like 2026-11');
  });
  app.post('/echo', async (request) => request.body);
  // A real outage: a database nobody listens for (port 9 of loopback refuses connections).
  app.get('/boom/database', async () => {
    const gone = createDb(
      { ...ctx().config.deployment.mysql, port: 9, connectTimeoutMs: 500 },
      'connector',
    );
    try {
      return await gone.raw('SELECT 1');
    } finally {
      await gone.destroy();
    }
  });
};

async function api(readiness: ReadinessCheck[]): Promise<FastifyInstance> {
  const app = await buildApi({
    log: silentLogger(),
    metrics: createMetrics(),
    readiness,
    bodyLimitBytes: 1024,
    routes: [failingRoutes],
  });
  await app.ready();
  return app;
}

describe('health routes', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await api([
      databaseCheck(ctx().connectorDb, 'connector'),
      databaseCheck(ctx().licensingDb, 'licensing'),
      redisCheck(ctx().redis),
    ]);
  });
  afterAll(() => app.close());

  it('answers /healthz without touching any service', async () => {
    const res = await app.inject('/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz 200 when MySQL and Redis answer and migrations are current', async () => {
    const res = await app.inject('/readyz');
    expect(res.json()).toEqual({
      status: 'ready',
      checks: {
        'mysql.connector': { ok: true },
        'mysql.licensing': { ok: true },
        redis: { ok: true },
      },
    });
    expect(res.statusCode).toBe(200);
  });

  it('serves Prometheus metrics with the default Node metrics', async () => {
    const res = await app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^# TYPE process_cpu_user_seconds_total counter$/m);
    expect(res.body).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
  });
});

describe('readiness when something is wrong', () => {
  it('answers 503 with a reason while MariaDB is unreachable', async () => {
    const unreachable = createDb(
      { ...ctx().config.deployment.mysql, port: 1, connectTimeoutMs: 1_000 },
      'connector',
    );
    const app = await api([databaseCheck(unreachable, 'connector'), redisCheck(ctx().redis)]);
    try {
      const res = await app.inject('/readyz');
      expect(res.statusCode).toBe(503);
      const body = res.json();
      expect(body.status).toBe('not ready');
      expect(body.checks.redis).toEqual({ ok: true });
      expect(body.checks['mysql.connector'].ok).toBe(false);
      expect(body.checks['mysql.connector'].reason).toMatch(/ECONNREFUSED/);
    } finally {
      await app.close();
      await unreachable.destroy();
    }
  });

  it('answers 503 when the schema is behind the code', async () => {
    const { connectorDb } = ctx();
    await connectorDb('knex_migrations').where('name', 'like', '%create_subscribers').delete();
    const app = await api([databaseCheck(connectorDb, 'connector')]);
    try {
      const res = await app.inject('/readyz');
      expect(res.statusCode).toBe(503);
      expect(res.json().checks['mysql.connector'].reason).toBe(
        '1 migration(s) pending: run relais migrate',
      );
    } finally {
      await app.close();
      await connectorDb('knex_migrations').insert({
        name: '20261203120200_create_subscribers',
        batch: 1,
        migration_time: new Date(),
      });
    }
  });

  it('turns a check that hangs into a failure instead of hanging', async () => {
    const hang: ReadinessCheck = { name: 'slow', run: () => new Promise(() => {}) };
    const app = await api([hang]);
    try {
      const res = await app.inject('/readyz');
      expect(res.statusCode).toBe(503);
      expect(res.json().checks.slow.reason).toMatch(/no answer within/);
    } finally {
      await app.close();
    }
  });
});

describe('error answers', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await api([]);
  });
  afterAll(() => app.close());

  it.each([
    ['/boom/bug', 500, 'INTERNAL', 'internal error'],
    ['/boom/internal', 500, 'INTERNAL', 'internal error'],
    ['/boom/refused', 400, 'HTTP_BAD_REQUEST', 'period must look like 2026-11'],
    ['/boom/database', 503, 'DB_UNAVAILABLE', 'the database is unavailable; retry later'],
    ['/no/such/route', 404, 'HTTP_NOT_FOUND', 'no such route'],
  ])(
    'GET %s answers %i %s with a request id and no internals',
    async (url, status, code, message) => {
      const res = await app.inject(url);
      expect(res.statusCode).toBe(status);
      const body = res.json();
      expect(body).toEqual({
        code,
        message,
        requestId: expect.stringMatching(/^req_[0-9a-z]{26}$/),
      });
      expect(res.body).not.toMatch(/secretThing|sub_123|at .*\.ts/);
    },
  );

  it('answers malformed JSON with 400', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{"a":',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('HTTP_BAD_REQUEST');
  });

  it('answers a body over the limit with 413', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ a: 'x'.repeat(2000) }),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().code).toBe('HTTP_PAYLOAD_TOO_LARGE');
  });
});
