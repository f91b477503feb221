/**
 * The provisioning worker against the real subscription server: the api (A's provisioning
 * routes) listening on 127.0.0.1, MariaDB on both sides, BullMQ on Redis. Each case has its own
 * ISP, so counts never mix. Jobs are queued with a short fixed backoff instead of the
 * production 5 s exponential one, so retries happen within the test's time.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { provisioningRoutes } from '../api/provisioning.routes.js';
import { buildApi } from '../api/server.js';
import { deliverySecretContext } from '../connectors/provisioning/record-results.js';
import { openVault, type Vault } from '../connectors/vault.js';
import { hashKey, readKey } from '../licensing/activation-key.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { type Keystore, openKeystore } from '../licensing/keystore.js';
import {
  commandKey,
  decodeCommands,
  encodeCommands,
  type ProvisioningCommand,
} from '../mappings/provisioning-command.js';
import { newId } from '../platform/ids.js';
import { createLogger, silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { reportDeliveries } from '../queue/delivery.worker.js';
import { createLicensingClient, type LicensingClient } from '../queue/licensing-client.js';
import { flushOutbox } from '../queue/outbox.js';
import { type ProvisioningWorker, startProvisioningWorker } from '../queue/provisioning.worker.js';
import {
  batchJobId,
  DEFAULT_JOB_OPTIONS,
  deliveryJobId,
  JOB_NAMES,
  openQueues,
  type ProvisionBatchJob,
  QUEUE_NAMES,
  type Queues,
} from '../queue/queues.js';
import { encode, generateCustomers, renderCsv } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake, type TestIntake } from './harness/intake.js';
import { waitFor } from './harness/wait.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));

const ctx = useTestContext({
  isps: {
    e2e: demo,
    down: demo,
    refused: demo,
    ordered: demo,
    crashed: demo,
    raced: demo,
    chunked: demo,
    reports: demo,
    quiet: { ...demo, delivery: { mode: 'none' } },
  },
});

let intake: TestIntake;
let keystore: Keystore;
let vault: Vault;
let queues: Queues;
/** The provisioning queue with a short backoff, used for every job of this file. */
let fastQueue: Queue<ProvisionBatchJob>;
let workerConnection: Redis;
let worker: ProvisioningWorker;
let client: LicensingClient;
let app: FastifyInstance;
let port: number;
const workerLog: string[] = [];

async function startServer(atPort: number): Promise<FastifyInstance> {
  const { config, licensingDb, redis } = ctx();
  const deps: LicensingDeps = {
    config,
    db: licensingDb,
    redis,
    keystore,
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    now: () => new Date(),
  };
  const routes: FastifyPluginAsync = async (instance) => {
    await instance.register(provisioningRoutes, { deps });
  };
  const server = await buildApi({
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 16 * 1024 * 1024,
    routes: [routes],
  });
  await server.listen({ host: '127.0.0.1', port: atPort });
  return server;
}

beforeAll(async () => {
  const { config, connectorDb, redis, prefix } = ctx();
  keystore = openKeystore(config.deployment.signing.keysDir);
  vault = openVault(config.deployment.signing.keysDir);
  queues = openQueues(redis, prefix);
  fastQueue = new Queue<ProvisionBatchJob>(QUEUE_NAMES.provisioning, {
    connection: redis,
    prefix,
    defaultJobOptions: {
      ...DEFAULT_JOB_OPTIONS,
      attempts: 20,
      backoff: { type: 'fixed', delay: 250 },
    },
  });
  intake = await openTestIntake(ctx(), {
    afterDrain: async () => {
      await flushOutbox(connectorDb, { provisioning: fastQueue }, silentLogger());
    },
  });
  app = await startServer(0);
  port = (app.server.address() as AddressInfo).port;
  client = createLicensingClient({
    baseUrl: `http://127.0.0.1:${port}`,
    tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
    timeoutMs: 5_000,
  });
  workerConnection = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        workerLog.push(String(chunk));
        done();
      },
    }),
  });
  worker = startProvisioningWorker({
    config,
    db: connectorDb,
    client,
    vault,
    queues,
    log,
    metrics: createMetrics({ defaultMetrics: false }),
    connection: workerConnection,
    prefix,
    concurrency: 2,
  });
});

afterAll(async () => {
  await worker?.close();
  await fastQueue?.close();
  await queues?.close();
  await intake?.close();
  await app?.close();
  workerConnection?.disconnect();
});

interface BatchRow {
  id: number;
  state: string;
  attempts: number;
  applied: number;
  rejected: number;
  subscribes: number;
  last_error: string | null;
}

async function batchesOf(ispId: string): Promise<BatchRow[]> {
  const rows = await ctx()
    .connectorDb('provisioning_batches')
    .select('id', 'state', 'attempts', 'applied', 'rejected', 'subscribes', 'last_error')
    .where({ isp_id: ispId })
    .orderBy('id');
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

async function allSent(ispId: string): Promise<BatchRow[]> {
  return waitFor(`every batch of ${ispId} sent`, async () => {
    const rows = await batchesOf(ispId);
    return rows.length > 0 && rows.every((r) => r.state === 'sent') ? rows : undefined;
  });
}

async function deliveriesOf(ispId: string) {
  return ctx()
    .connectorDb('deliveries')
    .select('licence_id', 'subscriber_id', 'batch_id', 'channel', 'secret', 'state')
    .where({ isp_id: ispId })
    .orderBy('id');
}

async function licencesAtServer(ispId: string): Promise<number> {
  const [nRow] = await ctx().licensingDb('licences').count({ n: '*' }).where({ isp_id: ispId });
  const n = nRow?.n ?? 0;
  return Number(n);
}

function ingestCustomers(ispId: string, count: number, seed: number) {
  const csv = encode(renderCsv(generateCustomers(count, seed)), 'windows-1252');
  return intake.ingest(ispId, 'abonnes_1.csv', csv);
}

/** A batch written straight to the outbox, as the intake would have. */
async function insertBatch(ispId: string, commands: ProvisioningCommand[]): Promise<number> {
  const now = new Date();
  const [id] = await ctx()
    .connectorDb('provisioning_batches')
    .insert({
      isp_id: ispId,
      feed_id: 'feed_test',
      command_count: commands.length,
      subscribes: commands.filter((c) => c.kind === 'subscribe').length,
      commands: encodeCommands(commands),
      state: 'queued',
      created_at: now,
      queued_at: now,
    });
  return Number(id);
}

/** The live delivery job of a batch (deduplicated per batch), if any. */
async function deliveryJobOf(batchId: number) {
  const jobId = await queues.delivery.getDeduplicationJobId(deliveryJobId(batchId));
  return jobId ? queues.delivery.getJob(jobId) : undefined;
}

async function queueBatch(ispId: string, batchId: number): Promise<void> {
  await fastQueue.add(JOB_NAMES.provisionBatch, { ispId, batchId }, { jobId: batchJobId(batchId) });
}

function command(
  subscriberId: string,
  version: number,
  kind: ProvisioningCommand['kind'],
  modules: string[] = ['antivirus'],
): ProvisioningCommand {
  return {
    key: commandKey(subscriberId, version),
    kind,
    subscriberId,
    version,
    modules,
    status: 'active',
    effectiveAt: '2026-12-01T08:00:00.000Z',
  };
}

function wire(commands: ProvisioningCommand[]) {
  return commands.map(({ key, kind, subscriberId, version, modules, status, effectiveAt }) => ({
    key,
    kind,
    subscriberId,
    version,
    modules,
    status,
    effectiveAt,
  }));
}

async function commandsOf(batchId: number): Promise<ProvisioningCommand[]> {
  const row = await ctx().connectorDb('provisioning_batches').where({ id: batchId }).first();
  return decodeCommands(row.commands);
}

/** The key and link a delivery row holds, opened with the vault. */
function openSecret(row: { licence_id: string; secret: Buffer }) {
  return JSON.parse(vault.open(row.secret, deliverySecretContext(row.licence_id))) as {
    key: string;
    downloadUrl: string;
  };
}

describe('provisioning worker', () => {
  it('takes a snapshot from intake to sealed keys, one delivery row per new subscriber', async () => {
    await ingestCustomers('e2e', 40, 7);
    const batches = await allSent('e2e');
    const subscribes = batches.reduce((n, b) => n + b.subscribes, 0);
    expect(subscribes).toBe(40);
    expect(batches.reduce((n, b) => n + b.applied, 0)).toBeGreaterThanOrEqual(40);

    const rows = await deliveriesOf('e2e');
    expect(rows).toHaveLength(40);
    expect(new Set(rows.map((r) => r.subscriber_id)).size).toBe(40);
    for (const row of rows) {
      expect(row).toMatchObject({ channel: 'return-file', state: 'pending' });
      const { key, downloadUrl } = openSecret(row);
      expect(readKey(key).ok).toBe(true);
      expect(downloadUrl.startsWith(`${ctx().config.deployment.server.url}/v1/downloads/`)).toBe(
        true,
      );
    }
    expect(await licencesAtServer('e2e')).toBe(40);
    for (const batch of batches) {
      expect(await deliveryJobOf(batch.id)).toBeDefined();
    }

    // Nothing personal and no key in the worker's log.
    const text = workerLog.join('');
    expect(text).toContain('provisioning batch sent');
    for (const customer of generateCustomers(40, 7)) {
      expect(text).not.toContain(customer.ref);
      expect(text).not.toContain(customer.email);
    }
    for (const row of rows) expect(text).not.toContain(openSecret(row).key);
  });

  it('does nothing twice when a sent batch is run again, but queues its lost delivery job', async () => {
    const [batch] = await batchesOf('e2e');
    const before = await deliveriesOf('e2e');
    // As if the worker died after its commit and before adding the delivery job.
    await (await deliveryJobOf(batch?.id as number))?.remove();
    const job = await fastQueue.add(
      JOB_NAMES.provisionBatch,
      { ispId: 'e2e', batchId: batch?.id as number },
      { jobId: `again-${batch?.id}` },
    );
    const done = await waitFor('the repeated job', async () =>
      (await job.isCompleted()) ? true : undefined,
    );
    expect(done).toBe(true);
    expect((await fastQueue.getJob(job.id as string))?.returnvalue).toMatchObject({
      status: 'already-sent',
    });
    expect(await deliveriesOf('e2e')).toHaveLength(before.length);
    expect(await licencesAtServer('e2e')).toBe(40);
    expect(await deliveryJobOf(batch?.id as number)).toBeDefined();
  });

  it('retries while nothing listens and delivers once the server is back', async () => {
    await app.close();
    await ingestCustomers('down', 12, 11);
    const waited = await waitFor('two failed attempts', async () => {
      const rows = await batchesOf('down');
      return rows.length > 0 && rows.every((r) => r.attempts >= 2) ? rows : undefined;
    });
    expect(waited.every((r) => r.state === 'queued')).toBe(true);
    expect(waited[0]?.last_error).toMatch(/LICENSING_SERVER_UNAVAILABLE/);

    app = await startServer(port);
    await allSent('down');
    const rows = await deliveriesOf('down');
    expect(rows).toHaveLength(12);
    expect(new Set(rows.map((r) => r.licence_id)).size).toBe(12);
    expect(await licencesAtServer('down')).toBe(12);
  });

  it('fails a batch the server refuses as a whole, without retrying it', async () => {
    const subscriberId = newId('sub');
    // Upper case and a space: the strict wire schema refuses the module code.
    const batchId = await insertBatch('refused', [
      command(subscriberId, 1, 'subscribe', ['Anti Virus']),
    ]);
    await queueBatch('refused', batchId);
    const job = await waitFor('the job to fail', async () => {
      const found = await fastQueue.getJob(batchJobId(batchId));
      return (await found?.isFailed()) ? found : undefined;
    });
    expect(job.attemptsMade).toBe(1);
    const [batch] = await batchesOf('refused');
    expect(batch).toMatchObject({ state: 'failed', attempts: 1 });
    expect(batch?.last_error).toMatch(/^PROVISIONING_INVALID: .*commands\[0\]\.modules/);
    expect(await licencesAtServer('refused')).toBe(0);
  });

  it('holds a batch whose earlier version is missing and applies both in order', async () => {
    const subscriberId = newId('sub');
    const stranger = newId('sub');
    const first = await insertBatch('ordered', [command(subscriberId, 1, 'subscribe')]);
    // v2 of the subscriber, and a change of a subscriber the server never heard of.
    const second = await insertBatch('ordered', [
      command(subscriberId, 2, 'change', ['antivirus', 'backup']),
      command(stranger, 1, 'change'),
    ]);
    await queueBatch('ordered', second);
    await waitFor('the second batch deferred', async () => {
      const row = (await batchesOf('ordered')).find((b) => b.id === second);
      return row && row.attempts >= 2 ? row : undefined;
    });
    const held = (await batchesOf('ordered')).find((b) => b.id === second);
    expect(held).toMatchObject({ state: 'queued' });
    expect(held?.last_error).toMatch(/1 of 2 commands deferred \(PROVISIONING_OUT_OF_ORDER\)/);

    await queueBatch('ordered', first);
    const batches = await allSent('ordered');
    expect(batches.find((b) => b.id === second)).toMatchObject({ applied: 1, rejected: 1 });
    const subscription = await ctx()
      .licensingDb('subscriptions')
      .where({ subscriber_id: subscriberId })
      .first();
    expect(subscription).toMatchObject({ version: 2, modules: 'antivirus,backup' });
    // Seen on every attempt, recorded once.
    const rejections = await ctx()
      .connectorDb('provisioning_rejections')
      .where({ isp_id: 'ordered' });
    expect(rejections).toHaveLength(1);
    expect(rejections[0]).toMatchObject({
      command_key: commandKey(stranger, 1),
      code: 'SUBSCRIBER_NOT_FOUND',
      batch_id: String(second),
    });
    expect(await deliveriesOf('ordered')).toHaveLength(1);
  });

  it('re-issues the keys of a batch the server applied but the connector never recorded', async () => {
    const commands = [1, 2, 3].map(() => command(newId('sub'), 1, 'subscribe'));
    const batchId = await insertBatch('crashed', commands);
    // The server commits, then the connector dies before its own commit: the answer is lost.
    const lost = await client.sendBatch(
      'crashed',
      commands.map(({ key, kind, subscriberId, version, modules, status, effectiveAt }) => ({
        key,
        kind,
        subscriberId,
        version,
        modules,
        status,
        effectiveAt,
      })),
    );
    const lostKeys = lost.results.map((r) => r.licence?.key);
    expect(lostKeys.every((k) => typeof k === 'string')).toBe(true);

    await queueBatch('crashed', batchId);
    await allSent('crashed');
    const rows = await deliveriesOf('crashed');
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      const { key } = openSecret(row);
      const reading = readKey(key);
      if (!reading.ok) throw new Error('recorded key does not read');
      expect(lostKeys).not.toContain(key);
      const licence = await ctx().licensingDb('licences').where({ id: row.licence_id }).first();
      expect(
        Buffer.compare(licence.key_hash, hashKey(keystore.keyHashSecret, reading.canonical)),
      ).toBe(0);
    }
    expect(await licencesAtServer('crashed')).toBe(3);
  });

  it('keeps no secret for an ISP that hands keys over itself', async () => {
    await ingestCustomers('quiet', 5, 13);
    const batches = await allSent('quiet');
    const rows = await deliveriesOf('quiet');
    expect(rows).toHaveLength(5);
    for (const row of rows)
      expect(row).toMatchObject({ channel: 'none', state: 'skipped', secret: null });
    for (const batch of batches) {
      expect(await deliveryJobOf(batch.id)).toBeUndefined();
    }
  });

  it('re-issues a lost key once when two attempts of one batch run at once', async () => {
    const { config, connectorDb, redis, prefix } = ctx();
    const batchId = await insertBatch('raced', [command(newId('sub'), 1, 'subscribe')]);
    // The server committed, the connector never recorded: both attempts get a replay, no key.
    await client.sendBatch('raced', wire(await commandsOf(batchId)));

    // Two attempts at once (a stalled job run again, a manual retry), on a worker of their own.
    // Each re-issue waits for the other attempt's, up to 1.5 s: without the batch lock both
    // reach it, and the second voids the key the first records.
    let reissues = 0;
    let release = () => {};
    const bothArrived = new Promise<void>((resolve) => {
      release = resolve;
    });
    const racing: LicensingClient = {
      ...client,
      async reissueKey(ispId, licenceId) {
        reissues++;
        if (reissues === 2) release();
        await Promise.race([bothArrived, new Promise((resolve) => setTimeout(resolve, 1_500))]);
        return client.reissueKey(ispId, licenceId);
      },
    };
    const racePrefix = `${prefix}race`;
    const raceQueues = openQueues(redis, racePrefix);
    const raceQueue = new Queue<ProvisionBatchJob>(QUEUE_NAMES.provisioning, {
      connection: redis,
      prefix: racePrefix,
      defaultJobOptions: { attempts: 5, backoff: { type: 'fixed', delay: 250 } },
    });
    const raceConnection = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
    const raceWorker = startProvisioningWorker({
      config,
      db: connectorDb,
      client: racing,
      vault,
      queues: raceQueues,
      log: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      connection: raceConnection,
      prefix: racePrefix,
      concurrency: 2,
    });
    try {
      const jobs = await Promise.all(
        ['a', 'b'].map((attempt) =>
          raceQueue.add(
            JOB_NAMES.provisionBatch,
            { ispId: 'raced', batchId },
            { jobId: `race-${attempt}-${batchId}` },
          ),
        ),
      );
      await waitFor('both attempts', async () => {
        const done = await Promise.all(jobs.map((job) => job.isCompleted()));
        return done.every(Boolean) ? true : undefined;
      });
    } finally {
      await raceWorker.close();
      await raceQueue.close();
      await raceQueues.close();
      raceConnection.disconnect();
    }

    expect(reissues).toBe(1);
    const rows = await deliveriesOf('raced');
    expect(rows).toHaveLength(1);
    const reading = readKey(openSecret(rows[0]).key);
    if (!reading.ok) throw new Error('recorded key does not read');
    const licence = await ctx().licensingDb('licences').where({ id: rows[0].licence_id }).first();
    // The recorded key is the one the server holds: it activates.
    expect(
      Buffer.compare(licence.key_hash, hashKey(keystore.keyHashSecret, reading.canonical)),
    ).toBe(0);
  });

  it('queues the delivery of the keys of a long batch whose later chunk is refused', async () => {
    const good = Array.from({ length: 1000 }, () => command(newId('sub'), 1, 'subscribe'));
    // The 1001st command goes in a second request, which the strict schema refuses whole.
    const bad = command(newId('sub'), 1, 'subscribe', ['Anti Virus']);
    const batchId = await insertBatch('chunked', [...good, bad]);
    await queueBatch('chunked', batchId);
    const [batch] = await waitFor(
      'the batch failed',
      async () => {
        const rows = await batchesOf('chunked');
        return rows[0]?.state === 'failed' ? rows : undefined;
      },
      60_000,
    );
    expect(batch?.last_error).toMatch(/^PROVISIONING_INVALID/);
    const rows = await deliveriesOf('chunked');
    expect(rows).toHaveLength(1000);
    expect(rows.every((r) => r.state === 'pending')).toBe(true);
    // The first chunk's keys go out now, not at the next restart.
    expect(await deliveryJobOf(batchId)).toBeDefined();
  }, 90_000);

  it('reports the other keys when the server refuses one of them for good', async () => {
    const db = ctx().connectorDb;
    const subscribes = [1, 2].map(() => command(newId('sub'), 1, 'subscribe'));
    const answer = await client.sendBatch('reports', wire(subscribes));
    const real = answer.results.map((r, i) => ({
      subscriberId: subscribes[i]?.subscriberId as string,
      licenceId: r.licence?.licenceId as string,
    }));
    // A licence the server never issued, first in line.
    const unknown = { subscriberId: newId('sub'), licenceId: newId('lic') };
    const now = new Date();
    const ids: number[] = [];
    for (const row of [unknown, ...real]) {
      const [id] = await db('deliveries').insert({
        isp_id: 'reports',
        subscriber_id: row.subscriberId,
        licence_id: row.licenceId,
        batch_id: null,
        channel: 'return-file',
        secret: null,
        state: 'delivered',
        attempts: 1,
        created_at: now,
        delivered_at: now,
      });
      ids.push(Number(id));
    }
    const log: string[] = [];
    const reported = await reportDeliveries(
      {
        db,
        log: createLogger({
          level: 'debug',
          destination: new Writable({
            write(chunk, _encoding, done) {
              log.push(String(chunk));
              done();
            },
          }),
        }),
        report: (ispId, delivered) =>
          client.reportDeliveries(ispId, {
            deliveries: delivered.map((d) => ({ ...d, deliveredAt: d.deliveredAt.toISOString() })),
          }),
      },
      'reports',
    );
    expect(reported).toBe(2);
    const rows = await db('deliveries').whereIn('id', ids).orderBy('id');
    expect(rows.every((r) => r.reported_at instanceof Date)).toBe(true);
    expect(rows[0].last_error).toMatch(/^report refused: SUBSCRIBER_NOT_FOUND/);
    expect(rows[1].last_error).toBeNull();
    const events = await ctx()
      .licensingDb('subscription_events')
      .where({ isp_id: 'reports', type: 'delivered' });
    expect(events.map((e) => e.licence_id).sort()).toEqual(real.map((r) => r.licenceId).sort());
    expect(log.join('')).toContain('delivery report refused for this key');
    // Nothing is left to report: the refused row is not sent again.
    expect(
      await reportDeliveries(
        {
          db,
          log: silentLogger(),
          report: async () => {
            throw new Error('nothing should be reported');
          },
        },
        'reports',
      ),
    ).toBe(0);
  });
});
