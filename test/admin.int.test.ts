/**
 * The admin pages over real HTTP, on a real api with MariaDB and Redis: sign-in, roles, Bull
 * Board reading and retrying real BullMQ jobs, and the answer when no admin user is configured.
 */
import { Writable } from 'node:stream';
import { type Job, Worker } from 'bullmq';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminRoutesOptions, adminRoutes } from '../api/admin.routes.js';
import { buildApi } from '../api/server.js';
import { openLicensing } from '../cli/licensing-runtime.js';
import { startApi as startApiRole } from '../cli/roles.js';
import type { Services } from '../cli/services.js';
import type { RelaisConfig } from '../config/load.js';
import { systemClock } from '../platform/clock.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { createLogger, type Logger, silentLogger } from '../platform/logger.js';
import { createMetrics, type Metrics } from '../platform/metrics.js';
import { openQueues, type ProvisionBatchJob, QUEUE_NAMES, type Queues } from '../queue/queues.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake } from './harness/intake.js';
import { waitFor } from './harness/wait.js';

const OPERATOR = { name: 'olga', password: 'olga-operator-pw' };
const VIEWER = { name: 'victor', password: 'victor-viewer-pw' };

const ctx = useTestContext({
  deployment: {
    admin: {
      users: [
        { name: OPERATOR.name, role: 'operator', password: OPERATOR.password },
        { name: VIEWER.name, role: 'viewer', password: VIEWER.password },
      ],
    },
  },
});

interface RunningApi {
  app: FastifyInstance;
  url: string;
  metrics: Metrics;
}

async function startAdminApi(
  config: RelaisConfig,
  queues: Queues,
  log: Logger = silentLogger(),
): Promise<RunningApi> {
  const metrics = createMetrics({ defaultMetrics: false });
  const options: AdminRoutesOptions = {
    config,
    metrics,
    connectorDb: ctx().connectorDb,
    licensingDb: ctx().licensingDb,
    queues: [queues.feeds, queues.provisioning, queues.delivery],
  };
  const admin: FastifyPluginAsync = async (app) => {
    await app.register(adminRoutes, options);
  };
  const app = await buildApi({
    log,
    metrics,
    readiness: [],
    bodyLimitBytes: 65_536,
    routes: [admin],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, url: `http://127.0.0.1:${port}`, metrics };
}

function basic(user: { name: string; password: string }): Record<string, string> {
  const token = Buffer.from(`${user.name}:${user.password}`).toString('base64');
  return { authorization: `Basic ${token}` };
}

/** A provisioning job that really failed: a real worker ran it and it threw. */
async function failedJob(queues: Queues, batchId: number): Promise<Job<ProvisionBatchJob>> {
  const { redis, prefix } = ctx();
  const job = await queues.provisioning.add(
    'provision-batch',
    { ispId: 'alpha', batchId },
    { jobId: `admin-test-${batchId}`, attempts: 1 },
  );
  const worker = new Worker<ProvisionBatchJob>(
    QUEUE_NAMES.provisioning,
    async () => {
      throw new Error('licensing server said no');
    },
    { connection: redis.duplicate(), prefix },
  );
  try {
    await waitFor('the job to fail', async () =>
      (await job.getState()) === 'failed' ? true : undefined,
    );
  } finally {
    await worker.close();
  }
  return job;
}

describe('admin pages', () => {
  let queues: Queues;
  let api: RunningApi;
  beforeAll(async () => {
    queues = openQueues(ctx().redis, ctx().prefix);
    api = await startAdminApi(ctx().config, queues);
  });
  afterAll(async () => {
    await api.app.close();
    await queues.close();
  });

  describe('sign-in', () => {
    it('answers 401 with a Basic challenge when no credentials are sent', async () => {
      for (const path of ['/admin', '/admin/queues', '/admin/queues/api/queues']) {
        const res = await fetch(`${api.url}${path}`);
        expect(res.status, path).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Basic realm="Relais admin"');
        expect(await res.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
      }
    });

    it('answers 401 to a wrong password and counts the failure on the api metrics', async () => {
      const res = await fetch(`${api.url}/admin`, {
        headers: basic({ name: OPERATOR.name, password: 'not-the-password' }),
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({
        code: 'ADMIN_UNAUTHORIZED',
        message: 'wrong user name or password',
      });
      const metrics = await (await fetch(`${api.url}/metrics`)).text();
      expect(metrics).toMatch(
        /^relais_admin_auth_failures_total\{reason="wrong_credentials"\} 1$/m,
      );
    });
  });

  describe('as a viewer', () => {
    it('reads the operations page, the dashboard and its queue list', async () => {
      const page = await fetch(`${api.url}/admin`, { headers: basic(VIEWER) });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('cache-control')).toBe('no-store');
      expect(await page.text()).toContain('<h1>Relais operations</h1>');

      const board = await fetch(`${api.url}/admin/queues`, { headers: basic(VIEWER) });
      expect(board.status).toBe(200);
      expect(await board.text()).toContain('__UI_CONFIG__');

      const list = await fetch(`${api.url}/admin/queues/api/queues`, { headers: basic(VIEWER) });
      expect(list.status).toBe(200);
      const body = (await list.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
      expect(body.queues.map((q) => q.name).sort()).toEqual(['delivery', 'feeds', 'provisioning']);
      // The UI hides its action buttons for a viewer.
      expect(body.queues.every((q) => q.readOnlyMode)).toBe(true);
    });

    it('gets 403 on a retry and on a clean, and the failed job stays failed', async () => {
      const job = await failedJob(queues, 1);
      const attempts = [
        `/admin/queues/api/queues/provisioning/${job.id}/retry`,
        '/admin/queues/api/queues/provisioning/retry/failed',
        '/admin/queues/api/queues/provisioning/clean/failed',
      ];
      for (const path of attempts) {
        const res = await fetch(`${api.url}${path}`, { method: 'PUT', headers: basic(VIEWER) });
        expect(res.status, path).toBe(403);
        expect(await res.json()).toMatchObject({ code: 'ADMIN_FORBIDDEN' });
      }
      expect(await job.getState()).toBe('failed');
    });
  });

  describe('as an operator', () => {
    it('sees the queues as writable', async () => {
      const list = await fetch(`${api.url}/admin/queues/api/queues`, { headers: basic(OPERATOR) });
      const body = (await list.json()) as { queues: { readOnlyMode: boolean }[] };
      expect(body.queues.some((q) => q.readOnlyMode)).toBe(false);
    });

    it('retries a failed job: it goes back to waiting for a worker', async () => {
      const job = await failedJob(queues, 2);
      const res = await fetch(`${api.url}/admin/queues/api/queues/provisioning/${job.id}/retry`, {
        method: 'PUT',
        headers: basic(OPERATOR),
      });
      expect(res.status).toBe(204);
      expect(await job.getState()).toBe('waiting');
      expect(await queues.provisioning.getFailedCount()).toBe(1); // job 1 of the viewer test
    });

    it('cleans (removes) a failed job', async () => {
      // Bull Board's clean-all keeps jobs younger than 5 s; the per-job clean has no grace.
      const res = await fetch(
        `${api.url}/admin/queues/api/queues/provisioning/admin-test-1/clean`,
        {
          method: 'PUT',
          headers: basic(OPERATOR),
        },
      );
      expect(res.status).toBe(204);
      expect(await queues.provisioning.getJob('admin-test-1')).toBeUndefined();
      expect(await queues.provisioning.getFailedCount()).toBe(0);
    });

    it('is refused what would wipe a queue', async () => {
      const res = await fetch(`${api.url}/admin/queues/api/queues/provisioning/obliterate`, {
        method: 'PUT',
        headers: basic(OPERATOR),
      });
      expect(res.status).toBe(403);
      expect(await queues.provisioning.getWaitingCount()).toBe(1);
    });
  });
});

describe('admin pages without any user configured', () => {
  it('answer 404 saying how to add one, while the rest of the api runs', async () => {
    const config: RelaisConfig = {
      ...ctx().config,
      deployment: { ...ctx().config.deployment, admin: { users: [] } },
    };
    const queues = openQueues(ctx().redis, ctx().prefix);
    const api = await startAdminApi(config, queues);
    try {
      for (const path of ['/admin', '/admin/queues', '/admin/queues/api/queues']) {
        const res = await fetch(`${api.url}${path}`, { headers: basic(OPERATOR) });
        expect(res.status, path).toBe(404);
        const body = (await res.json()) as { code: string; message: string };
        expect(body.code).toBe('ADMIN_NOT_CONFIGURED');
        expect(body.message).toContain('admin.users in relais.yaml');
      }
      expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    } finally {
      await api.app.close();
      await queues.close();
    }
  });
});

describe('demo passwords', () => {
  function withDemoUsers(host: string): RelaisConfig {
    const { deployment } = ctx().config;
    return {
      ...ctx().config,
      deployment: {
        ...deployment,
        http: { ...deployment.http, host },
        admin: { users: [{ name: 'operator', role: 'operator', password: 'demo-operator' }] },
      },
    };
  }

  async function startupWarnings(host: string): Promise<Record<string, unknown>[]> {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text));
        done();
      },
    });
    const queues = openQueues(ctx().redis, ctx().prefix);
    const api = await startAdminApi(
      withDemoUsers(host),
      queues,
      createLogger({ level: 'warn', destination }),
    );
    await api.app.close();
    await queues.close();
    return lines.filter((line) => line.level === 'warn');
  }

  it('are warned about at start when the api listens beyond loopback', async () => {
    const warnings = await startupWarnings('0.0.0.0');
    expect(warnings).toEqual([expect.objectContaining({ users: ['operator'], host: '0.0.0.0' })]);
    expect(String(warnings[0]?.msg)).toContain('RELAIS_ADMIN_OPERATOR_PASSWORD');
  });

  it('are fine on a loopback address', async () => {
    expect(await startupWarnings('127.0.0.1')).toEqual([]);
  });
});

describe('when mounted by the api role (cli/roles.ts)', () => {
  it('serves /admin and /admin/queues and counts failures on the metrics of the process', async () => {
    const intake = await openTestIntake(ctx());
    const lifecycle = new Lifecycle(silentLogger(), 5_000);
    const services: Services = {
      config: ctx().config,
      log: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      connectorDb: ctx().connectorDb,
      licensingDb: ctx().licensingDb,
      redis: ctx().redis,
      lifecycle,
      clock: systemClock,
    };
    try {
      const url = await startApiRole(services, intake, openLicensing(services), 0);
      expect((await fetch(`${url}/admin`, { headers: basic(VIEWER) })).status).toBe(200);
      const list = await fetch(`${url}/admin/queues/api/queues`, { headers: basic(OPERATOR) });
      const { queues } = (await list.json()) as { queues: { name: string }[] };
      expect(queues.map((q) => q.name).sort()).toEqual(['delivery', 'feeds', 'provisioning']);
      await fetch(`${url}/admin`, { headers: basic({ name: 'nobody', password: 'whatever1' }) });
      expect(await (await fetch(`${url}/metrics`)).text()).toMatch(
        /^relais_admin_auth_failures_total\{reason="wrong_credentials"\} 1$/m,
      );
    } finally {
      await lifecycle.shutdown('test');
      await intake.close();
    }
  });
});
