/**
 * An ISP's erasure request end to end: customers come in through the real intake, are
 * provisioned by the real worker against the api on 127.0.0.1 (BullMQ, MariaDB on both sides),
 * then erased by customer ref through `eraseCustomer` and through `relais subscribers erase`.
 * Checks both sides, the signed receipt, repeats, and a customer who comes back.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Command } from 'commander';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { provisioningRoutes } from '../api/provisioning.routes.js';
import { buildApi } from '../api/server.js';
import { subscriberRoutes } from '../api/subscriber.routes.js';
import { registerSubscribersCommand } from '../cli/commands/subscribers.js';
import { type CustomerErasureDeps, eraseCustomer } from '../connectors/erasure.js';
import { openVault } from '../connectors/vault.js';
import { ERASURE_RECEIPT_TYPE, type ErasureClaims } from '../licensing/erasure.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import type { Keystore } from '../licensing/keystore.js';
import { verifyDocument } from '../licensing/signed-document.js';
import { commandKey, encodeCommands } from '../mappings/provisioning-command.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { withNamedLock } from '../platform/named-lock.js';
import { packageRoot } from '../platform/package-root.js';
import { createLicensingClient, type LicensingClient } from '../queue/licensing-client.js';
import { flushOutbox } from '../queue/outbox.js';
import { type ProvisioningWorker, startProvisioningWorker } from '../queue/provisioning.worker.js';
import {
  DEFAULT_JOB_OPTIONS,
  openQueues,
  type ProvisionBatchJob,
  QUEUE_NAMES,
  type Queues,
} from '../queue/queues.js';
import { type Customer, encode, generateCustomers, renderCsv } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake, type TestIntake } from './harness/intake.js';
import { licensingDepsOf } from './harness/licensing.js';
import { freePort } from './harness/ports.js';
import { waitFor } from './harness/wait.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ISP = 'mail';
const port = await freePort();

const ctx = useTestContext({
  isps: {
    [ISP]: {
      ...demo,
      delivery: {
        mode: 'email',
        // No delivery worker runs here: keys wait, sealed, as they would during a relay outage.
        email: { from: 'Demo <cles@demo.example>', smtp: { host: '127.0.0.1', port: 2525 } },
      },
    },
  },
  deployment: { server: { url: `http://127.0.0.1:${port}` } },
});

let intake: TestIntake;
let keystore: Keystore;
let queues: Queues;
let fastQueue: Queue<ProvisionBatchJob>;
let workerConnection: Redis;
let worker: ProvisioningWorker;
let client: LicensingClient;
let app: FastifyInstance;

const customers: Customer[] = [...generateCustomers(4, 11)].map((c) => ({
  ...c,
  status: 'active' as const,
}));

beforeAll(async () => {
  const { config, connectorDb, redis, prefix } = ctx();
  const deps = licensingDepsOf(ctx());
  keystore = deps.keystore;
  const routes: FastifyPluginAsync = async (instance) => {
    await instance.register(provisioningRoutes, { deps });
    await instance.register(subscriberRoutes, { deps });
  };
  app = await buildApi({
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 16 * 1024 * 1024,
    routes: [routes],
  });
  await app.listen({ host: '127.0.0.1', port });
  client = createLicensingClient({
    baseUrl: `http://127.0.0.1:${port}`,
    tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
    timeoutMs: 5_000,
  });
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
  workerConnection = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  worker = startProvisioningWorker({
    config,
    db: connectorDb,
    client,
    vault: openVault(config.deployment.signing.keysDir),
    queues,
    log: silentLogger(),
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

async function ingest(name: string, list: Customer[]): Promise<void> {
  await intake.ingest(ISP, name, encode(renderCsv(list), 'windows-1252'));
  await waitFor('every batch sent', async () => {
    const rows = await ctx().connectorDb('provisioning_batches').where({ isp_id: ISP });
    return rows.length > 0 && rows.every((r) => r.state === 'sent') ? rows : undefined;
  });
}

async function subscriberOf(ref: string): Promise<string | undefined> {
  const row = await ctx()
    .connectorDb('subscribers')
    .where({ isp_id: ISP, customer_ref: ref })
    .first();
  return row?.subscriber_id;
}

function erasureDeps(): CustomerErasureDeps {
  const { config, connectorDb } = ctx();
  return { config, db: connectorDb, server: client, log: silentLogger(), lockWaitS: 2 };
}

function expectValidReceipt(receipt: unknown, subscriberId: string): ErasureClaims {
  const verified = verifyDocument<ErasureClaims>(
    keystore.publicKeys,
    receipt,
    ERASURE_RECEIPT_TYPE,
  );
  if (!verified.ok) throw new Error(`receipt does not verify: ${verified.reason}`);
  expect(verified.claims).toMatchObject({ ispId: ISP, subscriberId });
  return verified.claims;
}

/** Runs `relais subscribers erase` in this process; returns what it printed. */
async function runErase(args: string[]): Promise<string> {
  const printed: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    printed.push(String(chunk));
    return true;
  });
  try {
    const program = new Command('relais').exitOverride();
    registerSubscribersCommand(program);
    await program.parseAsync(
      ['subscribers', 'erase', '--config', join(ctx().dir, 'relais.yaml'), ...args],
      { from: 'user' },
    );
  } finally {
    spy.mockRestore();
  }
  return printed.join('');
}

describe('erasure of a customer by ref', () => {
  let erasedId: string;
  let receiptId: string;
  const [first, second, third, fourth] = customers as [Customer, Customer, Customer, Customer];

  it('erases both sides and returns a signed receipt', async () => {
    await ingest('abonnes_1.csv', [first, second, third]);
    const { connectorDb: db, licensingDb } = ctx();
    erasedId = (await subscriberOf(first.ref)) as string;
    expect(await db('contacts').where({ subscriber_id: erasedId })).toHaveLength(1);
    expect(
      await db('deliveries').where({ subscriber_id: erasedId, state: 'pending' }),
    ).toHaveLength(1);

    const erasure = await eraseCustomer(erasureDeps(), ISP, first.ref);
    expect(erasure).toMatchObject({
      subscriberId: erasedId,
      repeated: false,
      wasLive: true,
      connector: { contacts: 1, deliveriesVoided: 1, secretsErased: 1 },
    });
    const claims = expectValidReceipt(erasure.receipt, erasedId);
    receiptId = claims.receiptId;
    expect(erasure.server?.receiptId).toBe(receiptId);

    // Connector: no address, no key, the ref free, the pair kept for billing.
    expect(await db('contacts').where({ subscriber_id: erasedId })).toEqual([]);
    const deliveries = await db('deliveries').where({ subscriber_id: erasedId });
    expect(deliveries.map((d) => [d.state, d.last_error, d.secret])).toEqual([
      ['failed', 'erased', null],
    ]);
    expect(await subscriberOf(first.ref)).toBeUndefined();
    expect(await db('erased_subscribers').where({ subscriber_id: erasedId })).toMatchObject([
      { isp_id: ISP, customer_ref: first.ref, receipt_id: receiptId },
    ]);
    // Server: revoked and erased.
    const subscription = await licensingDb('subscriptions')
      .where({ subscriber_id: erasedId })
      .first();
    expect(subscription.erased_at).not.toBeNull();
    const licences = await licensingDb('licences').where({ subscriber_id: erasedId });
    expect(licences.map((l) => l.status)).toEqual(['revoked']);
    // The other customers are untouched.
    const other = (await subscriberOf(second.ref)) as string;
    expect(await db('contacts').where({ subscriber_id: other })).toHaveLength(1);
  });

  it('returns the same receipt when asked again, and changes nothing', async () => {
    const again = await eraseCustomer(erasureDeps(), ISP, first.ref);
    expect(again).toMatchObject({ subscriberId: erasedId, repeated: true, wasLive: false });
    expect(again.server?.receiptId).toBe(receiptId);
    expect(
      await ctx().connectorDb('erased_subscribers').where({ subscriber_id: erasedId }),
    ).toHaveLength(1);
  });

  it('gives a customer who comes back a new subscriber id that provisions normally', async () => {
    await ingest('abonnes_2.csv', [first, second, third, fourth]);
    const { connectorDb: db, licensingDb } = ctx();
    const returningId = (await subscriberOf(first.ref)) as string;
    expect(returningId).toBeDefined();
    expect(returningId).not.toBe(erasedId);
    expect(await db('provisioning_rejections').where({ isp_id: ISP })).toEqual([]);
    const subscription = await licensingDb('subscriptions')
      .where({ subscriber_id: returningId })
      .first();
    expect(subscription).toMatchObject({ status: 'active', erased_at: null });
    expect(
      await db('deliveries').where({ subscriber_id: returningId, state: 'pending' }),
    ).toHaveLength(1);
  });

  it('refuses a ref the ISP never had, without naming the ref', async () => {
    await expect(eraseCustomer(erasureDeps(), ISP, '99999999')).rejects.toMatchObject({
      code: 'SUBSCRIBER_NOT_FOUND',
      message: expect.not.stringContaining('99999999'),
    });
  });

  it('defers a customer whose subscribe still waits in the outbox, erasing nothing', async () => {
    const { connectorDb: db } = ctx();
    const subscriberId = newId('sub');
    const ref = '88888888';
    const now = new Date();
    await db('subscribers').insert({
      isp_id: ISP,
      customer_ref: ref,
      subscriber_id: subscriberId,
      status: 'active',
      modules: 'antivirus',
      version: 1,
      created_at: now,
      updated_at: now,
    });
    const [batchId] = await db('provisioning_batches').insert({
      isp_id: ISP,
      feed_id: 'feed_test',
      command_count: 1,
      subscribes: 1,
      commands: encodeCommands([
        {
          key: commandKey(subscriberId, 1),
          kind: 'subscribe',
          subscriberId,
          version: 1,
          modules: ['antivirus'],
          status: 'active',
          effectiveAt: now.toISOString(),
        },
      ]),
      state: 'pending',
      created_at: now,
    });
    await expect(eraseCustomer(erasureDeps(), ISP, ref)).rejects.toMatchObject({
      code: 'ERASURE_DEFERRED',
    });
    expect(await subscriberOf(ref)).toBe(subscriberId);

    // Once the batch is given up for good, the server will never know it: connector side only.
    await db('provisioning_batches').where({ id: batchId }).update({ state: 'failed' });
    const erasure = await eraseCustomer(erasureDeps(), ISP, ref);
    expect(erasure).toMatchObject({ subscriberId, receipt: null, server: null, repeated: false });
    expect(await subscriberOf(ref)).toBeUndefined();
  });

  it('runs as `relais subscribers erase` and prints the receipt id', async () => {
    const subscriberId = (await subscriberOf(second.ref)) as string;
    const printed = await runErase(['--isp', ISP, '--ref', second.ref]);
    const row = await ctx()
      .connectorDb('erased_subscribers')
      .where({ subscriber_id: subscriberId })
      .first();
    expect(row.receipt_id).toMatch(/^rcp_/);
    expect(printed).toContain(
      `erased subscriber ${subscriberId} of ${ISP}: receipt ${row.receipt_id}`,
    );
    expect(printed).toContain('1 address(es) deleted, 1 pending delivery(ies) voided');
    expect(printed).not.toContain(second.ref);

    const again = await runErase(['--isp', ISP, '--ref', second.ref, '--json']);
    const parsed = JSON.parse(again) as { repeated: boolean; server: { receiptId: string } };
    expect(parsed).toMatchObject({ repeated: true, server: { receiptId: row.receipt_id } });
  });

  it('waits for a feed being applied, then defers without erasing anything', async () => {
    const ref = (third as Customer).ref;
    const held = await withNamedLock(ctx().connectorDb, `isp:${ISP}`, async () => {
      await expect(
        eraseCustomer({ ...erasureDeps(), lockWaitS: 1 }, ISP, ref),
      ).rejects.toMatchObject({ code: 'ERASURE_DEFERRED', retryable: true });
      return 'held';
    });
    expect(held).toBe('held');
    expect(await subscriberOf(ref)).toBeDefined();
  });

  it('fails clearly from the command on an unknown ref', async () => {
    await expect(runErase(['--isp', ISP, '--ref', '77777777'])).rejects.toMatchObject({
      code: 'SUBSCRIBER_NOT_FOUND',
    });
  });
});
