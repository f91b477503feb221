import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { syncIsps } from '../connectors/isp-registry.js';
import { openVault, type Vault } from '../connectors/vault.js';
import { TransientError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { deliveryRow, hasContact, seedDelivery } from '../test/harness/deliveries.js';
import { freePort } from '../test/harness/ports.js';
import { createTestRelay, type TestRelay } from '../test/harness/smtp.js';
import { waitFor } from '../test/harness/wait.js';
import {
  type DeliveredKey,
  type DeliveryWorker,
  queueDelivery,
  startDeliveryWorker,
  sweepPendingDeliveries,
} from './delivery.worker.js';
import {
  CAPPED_BACKOFF,
  type DeliverBatchJob,
  deliveryJobId,
  JOB_NAMES,
  openQueues,
  QUEUE_NAMES,
  type Queues,
} from './queues.js';

const relayPort = await freePort();
/** The relay of the `outage` ISP, down for longer than its jobs' retries. */
const outagePort = await freePort();
const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));

function emailIsp(extra: Record<string, unknown> = {}, port = relayPort): string {
  return stringify({
    ...shipped,
    delivery: {
      mode: 'email',
      email: {
        from: 'Demo FAI <securite@demo-fai.example>',
        smtp: { host: '127.0.0.1', port, timeoutMs: 2000 },
        ...extra,
      },
    },
  });
}

const ctx = useTestContext({
  isps: {
    mail: emailIsp(),
    'bad-templates': emailIsp({ templatesDir: 'no-such-folder' }),
    outage: emailIsp({}, outagePort),
    files: stringify(shipped),
  },
});

let relay: TestRelay;
let outageRelay: TestRelay;
/** The delivery queue with few, short attempts: a job runs out of them within the test. */
let shortQueue: Queue<DeliverBatchJob>;
let vault: Vault;
let queues: Queues;
let worker: DeliveryWorker;
const metrics = createMetrics({ defaultMetrics: false });
const logLines: string[] = [];
const reports: { ispId: string; delivered: DeliveredKey[] }[] = [];
/** How many report calls still fail, as the subscription server being down would. */
let reportFailures = 0;

beforeAll(async () => {
  // The relay is down until a test starts it.
  relay = await createTestRelay({ port: relayPort, listen: false });
  outageRelay = await createTestRelay({ port: outagePort, listen: false });
  shortQueue = new Queue<DeliverBatchJob>(QUEUE_NAMES.delivery, {
    connection: ctx().redis,
    prefix: ctx().prefix,
    // The production backoff type, so the worker must know it; 100 ms instead of 5 s.
    defaultJobOptions: { attempts: 3, backoff: { type: CAPPED_BACKOFF, delay: 100 } },
  });
  vault = openVault(ctx().config.deployment.signing.keysDir);
  queues = openQueues(ctx().redis, ctx().prefix);
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  });
  await syncIsps(ctx().connectorDb, ctx().config.isps, log);
  worker = startDeliveryWorker({
    config: ctx().config,
    db: ctx().connectorDb,
    vault,
    log,
    metrics,
    connection: ctx().redis,
    prefix: ctx().prefix,
    async report(ispId, delivered) {
      reports.push({ ispId, delivered });
      if (reportFailures > 0) {
        reportFailures--;
        throw new TransientError('LICENSING_SERVER_UNAVAILABLE', 'licensing server answered 503');
      }
    },
  });
});

afterAll(async () => {
  await worker?.close();
  await shortQueue?.close();
  await queues?.close();
  await relay?.stop();
  await outageRelay?.stop();
});

async function enqueue(ispId: string, batchId: number) {
  return queues.delivery.add(
    JOB_NAMES.deliverBatch,
    { ispId, batchId },
    { jobId: deliveryJobId(batchId), attempts: 20, backoff: { type: 'fixed', delay: 150 } },
  );
}

async function settled(batchId: number) {
  return waitFor(`job of batch ${batchId}`, async () => {
    const state = await queues.delivery.getJobState(deliveryJobId(batchId));
    if (state !== 'completed' && state !== 'failed') return undefined;
    // Read after the state, so the job's fields are those of its last attempt.
    const job = await queues.delivery.getJob(deliveryJobId(batchId));
    return job && { job, state };
  });
}

async function counter(isp: string, result: string, channel = 'email'): Promise<number> {
  const metric = await metrics.getSingleMetric('relais_deliveries_total')?.get();
  const value = metric?.values.find(
    (v) => v.labels.isp === isp && v.labels.channel === channel && v.labels.result === result,
  );
  return value?.value ?? 0;
}

describe('delivery worker', () => {
  it('retries while the relay is down, loses nothing, and delivers once it is up', async () => {
    const db = ctx().connectorDb;
    const batchId = 101;
    const a = await seedDelivery(db, vault, { ispId: 'mail', batchId, email: 'ana@example.net' });
    const b = await seedDelivery(db, vault, { ispId: 'mail', batchId, email: 'bob@example.net' });

    await enqueue('mail', batchId);
    const failedOnce = await waitFor('a failed attempt', async () => {
      const job = await queues.delivery.getJob(deliveryJobId(batchId));
      return job && job.attemptsMade >= 1 ? job : undefined;
    });
    expect(failedOnce.failedReason).toMatch(/DELIVERY_FAILED|did not take the message/);
    for (const seeded of [a, b]) {
      const row = await deliveryRow(db, seeded.id);
      expect(row.state).toBe('pending');
      expect(row.attempts).toBeGreaterThanOrEqual(1);
      expect(row.last_error).toMatch(/ECONNREFUSED|ECONNECTION/);
      expect(row.secret).not.toBeNull();
      expect(await hasContact(db, seeded.subscriberId)).toBe(true);
    }
    expect(reports).toHaveLength(0);

    await relay.start();
    const { job, state } = await settled(batchId);

    expect(state).toBe('completed');
    expect(job.returnvalue).toMatchObject({ delivered: 2, failed: 0, deferred: 0, reported: 2 });
    for (const seeded of [a, b]) {
      const row = await deliveryRow(db, seeded.id);
      expect(row).toMatchObject({ state: 'delivered', secret: null });
      expect(row.reported_at).toBeInstanceOf(Date);
      expect(await hasContact(db, seeded.subscriberId)).toBe(false);
      expect(relay.received.filter((m) => m.to.includes(seeded.email ?? ''))).toHaveLength(1);
    }
    expect(reports).toEqual([
      {
        ispId: 'mail',
        delivered: [a, b].map((s) => ({
          subscriberId: s.subscriberId,
          licenceId: s.licenceId,
          channel: 'email',
          deliveredAt: expect.any(Date),
        })),
      },
    ]);
    expect(await counter('mail', 'delivered')).toBe(2);
    expect(await counter('mail', 'deferred')).toBeGreaterThanOrEqual(2);
  });

  it('keeps deliveries when the report fails, and reports them on the retry', async () => {
    const db = ctx().connectorDb;
    const batchId = 102;
    const c = await seedDelivery(db, vault, { ispId: 'mail', batchId, email: 'cleo@example.net' });
    reports.length = 0;
    reportFailures = 1;

    await enqueue('mail', batchId);
    const { job, state } = await settled(batchId);

    expect(state).toBe('completed');
    expect(job.attemptsMade).toBe(2);
    expect(reports.map((r) => r.delivered.map((d) => d.licenceId))).toEqual([
      [c.licenceId],
      [c.licenceId],
    ]);
    // Sent once: the retry found the row delivered and only reported it.
    expect(relay.received.filter((m) => m.to.includes('cleo@example.net'))).toHaveLength(1);
    const row = await deliveryRow(db, c.id);
    expect(row.state).toBe('delivered');
    expect(row.reported_at).toBeInstanceOf(Date);
  });

  it('fails the job for good on invalid templates and leaves the keys pending', async () => {
    const db = ctx().connectorDb;
    const batchId = 103;
    const d = await seedDelivery(db, vault, {
      ispId: 'bad-templates',
      batchId,
      email: 'dan@example.net',
    });

    await enqueue('bad-templates', batchId);
    const { job, state } = await settled(batchId);

    expect(state).toBe('failed');
    // Refused at once: no retry would fix a template.
    expect(job.attemptsStarted).toBe(1);
    expect(job.failedReason).toMatch(
      /^DELIVERY_TEMPLATE_INVALID: e-mail templates of ISP bad-templates/,
    );
    expect(await deliveryRow(db, d.id)).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await hasContact(db, d.subscriberId)).toBe(true);
  });

  it('writes the return file for an ISP that notifies its customers, and reports it', async () => {
    const db = ctx().connectorDb;
    const batchId = 104;
    const seeded = await seedDelivery(db, vault, {
      ispId: 'files',
      batchId,
      channel: 'return-file',
    });
    const now = new Date();
    await db('subscribers').insert({
      isp_id: 'files',
      customer_ref: '00001234',
      subscriber_id: seeded.subscriberId,
      status: 'active',
      modules: 'antivirus',
      version: 1,
      created_at: now,
      updated_at: now,
    });
    reports.length = 0;

    await enqueue('files', batchId);
    const { state } = await settled(batchId);

    expect(state).toBe('completed');
    const outbox = join(ctx().config.isps.get('files')?.workDir ?? '', 'outbox', 'keys');
    const file = readFileSync(join(outbox, `keys-${batchId}.csv`), 'utf8');
    expect(file).toContain(`00001234;${seeded.key};${seeded.downloadUrl};`);
    expect(reports).toEqual([
      {
        ispId: 'files',
        delivered: [
          {
            subscriberId: seeded.subscriberId,
            licenceId: seeded.licenceId,
            channel: 'return-file',
            deliveredAt: expect.any(Date),
          },
        ],
      },
    ]);
    expect(await counter('files', 'delivered', 'return-file')).toBe(1);
  });

  it('delivers keys a batch recorded after its delivery job completed', async () => {
    const db = ctx().connectorDb;
    const batchId = 105;
    const first = await seedDelivery(db, vault, {
      ispId: 'mail',
      batchId,
      email: 'eve@example.net',
    });
    // A deferred batch's first keys, queued by a sweep; the job delivers them and completes.
    expect(await sweepPendingDeliveries({ config: ctx().config, db, queues })).toBeGreaterThan(0);
    await waitFor('the first key delivered', async () =>
      (await deliveryRow(db, first.id)).state === 'delivered' ? true : undefined,
    );
    await waitFor('the first job finished', async () =>
      (await queues.delivery.getDeduplicationJobId(deliveryJobId(batchId))) ? undefined : true,
    );

    // The batch finishes later with another key: the add must not be swallowed by the old job.
    const second = await seedDelivery(db, vault, {
      ispId: 'mail',
      batchId,
      email: 'fay@example.net',
    });
    await queueDelivery(queues, 'mail', batchId);
    await waitFor('the second key delivered', async () =>
      (await deliveryRow(db, second.id)).state === 'delivered' ? true : undefined,
    );
    expect(relay.received.filter((m) => m.to.includes('eve@example.net'))).toHaveLength(1);
  });

  it('replaces a delivery job that ran out of retries once the relay is back', async () => {
    const db = ctx().connectorDb;
    const batchId = 106;
    const seeded = await seedDelivery(db, vault, {
      ispId: 'outage',
      batchId,
      email: 'gus@example.net',
    });
    await queueDelivery({ delivery: shortQueue }, 'outage', batchId);
    // Three attempts against a relay that does not listen, then the job fails for good.
    await waitFor('the job given up', async () => {
      const row = await deliveryRow(db, seeded.id);
      const live = await shortQueue.getDeduplicationJobId(deliveryJobId(batchId));
      return row.attempts >= 3 && !live ? row : undefined;
    });
    expect(await deliveryRow(db, seeded.id)).toMatchObject({ state: 'pending' });
    expect(await shortQueue.getFailedCount()).toBeGreaterThanOrEqual(1);

    await outageRelay.start();
    // The scheduler's sweep, with no person involved.
    await sweepPendingDeliveries({ config: ctx().config, db, queues: { delivery: shortQueue } });
    await waitFor('the key delivered', async () =>
      (await deliveryRow(db, seeded.id)).state === 'delivered' ? true : undefined,
    );
    expect(outageRelay.received.filter((m) => m.to.includes('gus@example.net'))).toHaveLength(1);
  });

  it('adds nothing while a job of the batch is still waiting or retrying', async () => {
    const db = ctx().connectorDb;
    const batchId = 107;
    await seedDelivery(db, vault, { ispId: 'bad-templates', batchId, email: 'hal@example.net' });
    await worker.close(); // nothing runs the jobs: each add finds the first one waiting
    try {
      for (let i = 0; i < 3; i++) await queueDelivery(queues, 'bad-templates', batchId);
      await sweepPendingDeliveries({ config: ctx().config, db, queues });
      const waiting = await queues.delivery.getWaiting();
      expect(waiting.filter((job) => job.data.batchId === batchId)).toHaveLength(1);
    } finally {
      const waiting = await queues.delivery.getWaiting();
      for (const job of waiting) await job.remove();
    }
  });

  it('writes no address and no key to the log', () => {
    const text = logLines.join('');
    expect(text).toContain('keys delivered');
    expect(text).not.toMatch(/@example\.net/);
    expect(text).not.toMatch(/[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/);
  });
});
