/**
 * The provisioning worker's metrics, recorded against the real subscription server (its
 * provisioning routes listening on 127.0.0.1), MariaDB on both sides and BullMQ on Redis:
 * attempts refused while the server is down count as retried by code; the latency histogram
 * measures from the outbox row's creation to the recorded result; a command the server rejects
 * counts by its code; a batch refused as a whole counts as failed, with its latency.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { provisioningRoutes } from '../api/provisioning.routes.js';
import { buildApi } from '../api/server.js';
import { openVault } from '../connectors/vault.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { openKeystore } from '../licensing/keystore.js';
import {
  commandKey,
  encodeCommands,
  type ProvisioningCommand,
} from '../mappings/provisioning-command.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { createLicensingClient } from '../queue/licensing-client.js';
import { type ProvisioningWorker, startProvisioningWorker } from '../queue/provisioning.worker.js';
import {
  batchJobId,
  DEFAULT_JOB_OPTIONS,
  JOB_NAMES,
  openQueues,
  type ProvisionBatchJob,
  QUEUE_NAMES,
  type Queues,
} from '../queue/queues.js';
import { useTestContext } from './harness/context.js';
import { freePort } from './harness/ports.js';
import { waitFor } from './harness/wait.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({ isps: { late: { ...demo, delivery: { mode: 'none' } } } });
const ISP = 'late';

const metrics = createMetrics({ defaultMetrics: false });
let queues: Queues;
let queue: Queue<ProvisionBatchJob>;
let connection: Redis;
let worker: ProvisioningWorker;
let server: FastifyInstance | undefined;
let port: number;

async function startServer(): Promise<FastifyInstance> {
  const { config, licensingDb, redis } = ctx();
  const deps = {
    config,
    db: licensingDb,
    redis,
    keystore: openKeystore(config.deployment.signing.keysDir),
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    now: () => new Date(),
  };
  const routes: FastifyPluginAsync = async (app) => {
    await app.register(provisioningRoutes, { deps });
  };
  const app = await buildApi({
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 16 * 1024 * 1024,
    routes: [routes],
  });
  await app.listen({ host: '127.0.0.1', port });
  return app;
}

beforeAll(async () => {
  const { config, connectorDb, redis, prefix } = ctx();
  port = await freePort();
  queues = openQueues(redis, prefix);
  queue = new Queue<ProvisionBatchJob>(QUEUE_NAMES.provisioning, {
    connection: redis,
    prefix,
    defaultJobOptions: {
      ...DEFAULT_JOB_OPTIONS,
      attempts: 50,
      backoff: { type: 'fixed', delay: 200 },
    },
  });
  const keystore = openKeystore(config.deployment.signing.keysDir);
  connection = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  worker = startProvisioningWorker({
    config,
    db: connectorDb,
    client: createLicensingClient({
      baseUrl: `http://127.0.0.1:${port}`,
      tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
      timeoutMs: 5_000,
    }),
    vault: openVault(config.deployment.signing.keysDir),
    queues,
    log: silentLogger(),
    metrics,
    connection,
    prefix,
  });
});

afterAll(async () => {
  await worker?.close();
  await queue?.close();
  await queues?.close();
  await server?.close();
  connection?.disconnect();
});

function command(
  subscriberId: string,
  kind: ProvisioningCommand['kind'],
  modules = ['antivirus'],
): ProvisioningCommand {
  return {
    key: commandKey(subscriberId, 1),
    kind,
    subscriberId,
    version: 1,
    modules,
    status: 'active',
    effectiveAt: '2026-12-01T08:00:00.000Z',
  };
}

/** A batch in the outbox written `ageS` seconds ago, and its job. */
async function queueBatch(commands: ProvisioningCommand[], ageS: number): Promise<number> {
  const createdAt = new Date(Date.now() - ageS * 1000);
  const [id] = await ctx()
    .connectorDb('provisioning_batches')
    .insert({
      isp_id: ISP,
      feed_id: 'feed_test',
      command_count: commands.length,
      subscribes: commands.filter((c) => c.kind === 'subscribe').length,
      commands: encodeCommands(commands),
      state: 'queued',
      created_at: createdAt,
      queued_at: createdAt,
    });
  await queue.add(
    JOB_NAMES.provisionBatch,
    { ispId: ISP, batchId: Number(id) },
    {
      jobId: batchJobId(Number(id)),
    },
  );
  return Number(id);
}

async function stateOf(batchId: number): Promise<string> {
  const row = await ctx().connectorDb('provisioning_batches').where({ id: batchId }).first();
  return row.state;
}

async function value(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = await metrics.getSingleMetric(name)?.get();
  return metric?.values.find(
    (v) =>
      (v as { metricName?: string }).metricName === undefined &&
      Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  )?.value;
}

/** count and sum of one series of the latency histogram. */
async function latency(result: string): Promise<{ count?: number; sum?: number }> {
  const metric = await metrics.getSingleMetric('relais_provisioning_latency_seconds')?.get();
  const of = (suffix: string) =>
    metric?.values.find(
      (v) =>
        (v as { metricName?: string }).metricName ===
          `relais_provisioning_latency_seconds_${suffix}` &&
        v.labels.isp === ISP &&
        v.labels.result === result,
    )?.value;
  return { count: of('count'), sum: of('sum') };
}

describe('provisioning worker metrics', () => {
  it('counts attempts refused while the server is down, then the latency since the outbox', async () => {
    const subscriber = newId('sub');
    const stranger = newId('sub');
    const batchId = await queueBatch(
      [command(subscriber, 'subscribe'), command(stranger, 'change')],
      40,
    );
    await waitFor('two attempts refused', async () => {
      const n = await value('relais_provisioning_batch_failures_total', {
        isp: ISP,
        code: 'LICENSING_SERVER_UNAVAILABLE',
        result: 'retried',
      });
      return (n ?? 0) >= 2 ? n : undefined;
    });
    expect(await latency('sent')).toEqual({ count: undefined, sum: undefined });

    server = await startServer();
    await waitFor('the batch sent', async () =>
      (await stateOf(batchId)) === 'sent' ? true : undefined,
    );
    const sent = await latency('sent');
    expect(sent.count).toBe(1);
    // Written 40 s before the test queued it: the wait in the outbox counts.
    expect(sent.sum).toBeGreaterThanOrEqual(40);
    expect(sent.sum).toBeLessThan(40 + 60);
    expect(
      await value('relais_provisioning_rejections_total', {
        isp: ISP,
        code: 'SUBSCRIBER_NOT_FOUND',
      }),
    ).toBe(1);
    // Each refused attempt counts once, in both views.
    const retried = await value('relais_provisioning_batches_total', {
      isp: ISP,
      result: 'retried',
    });
    expect(retried).toBeGreaterThanOrEqual(2);
    expect(
      await value('relais_provisioning_batch_failures_total', {
        isp: ISP,
        code: 'LICENSING_SERVER_UNAVAILABLE',
        result: 'retried',
      }),
    ).toBe(retried);
  });

  it('counts a batch the server refuses as a whole as failed, by code, with its latency', async () => {
    // Upper case and a space: the strict wire schema refuses the module code.
    const batchId = await queueBatch([command(newId('sub'), 'subscribe', ['Anti Virus'])], 5);
    await waitFor('the batch failed', async () =>
      (await stateOf(batchId)) === 'failed' ? true : undefined,
    );
    await waitFor('the failure counted', async () =>
      (await value('relais_provisioning_batch_failures_total', {
        isp: ISP,
        code: 'PROVISIONING_INVALID',
        result: 'failed',
      })) === 1
        ? true
        : undefined,
    );
    const failed = await latency('failed');
    expect(failed.count).toBe(1);
    expect(failed.sum).toBeGreaterThanOrEqual(5);
  });
});
