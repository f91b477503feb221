/**
 * The operations overview against real MariaDB and Redis: rows seeded in every table it reads
 * (test/harness/operations.ts), a real billing close for the licence count it freezes, and
 * jobs in each state on real BullMQ queues.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { ReconcileResult } from '../../billing/reconciliation/reconcile.js';
import {
  findReconciliationRun,
  recordReconciliationRun,
} from '../../billing/reconciliation/runs.js';
import { syncIsps } from '../../connectors/isp-registry.js';
import { closeBillingPeriod } from '../../licensing/billing/close.js';
import { appendEvents } from '../../licensing/ledger.js';
import { silentLogger } from '../../platform/logger.js';
import { packageRoot } from '../../platform/package-root.js';
import { openQueues, type Queues } from '../../queue/queues.js';
import { useTestContext } from '../../test/harness/context.js';
import { licensingDepsOf } from '../../test/harness/licensing.js';
import {
  failJobs,
  insertBatch,
  insertBillingDelivery,
  insertClosedPeriod,
  insertDeliveries,
  insertFeed,
  insertRejections,
} from '../../test/harness/operations.js';
import { seedLicences } from '../../test/harness/seed-licences.js';
import { ispNeedsAttention, loadOverview, type Overview, queueNeedsAttention } from './overview.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({
  isps: {
    ops: stringify(shipped),
    quiet: stringify({ ...shipped, name: 'Quiet ISP', enabled: false }),
    closing: stringify(shipped),
  },
});

/** 23:30 UTC on 30 November is already December in Paris. */
const NOW = new Date('2026-11-30T23:30:00Z');
const at = (iso: string) => new Date(iso);
let queues: Queues;

function reconciled(counts: Record<string, number>, fileName: string): ReconcileResult {
  return {
    ispId: 'ops',
    period: '2026-10',
    fileName,
    sha256: 'a'.repeat(64),
    exportLines: 10,
    rejectedLines: 1,
    vendorLines: 9,
    counts: counts as ReconcileResult['counts'],
    paths: {
      csv: '/work/ops/reconciliation-ops-2026-10.csv',
      html: '/work/ops/reconciliation-ops-2026-10.html',
      rejects: '/work/ops/reconciliation-ops-2026-10.rejects.csv',
    },
  };
}

async function overview(): Promise<Overview> {
  const { config, connectorDb, licensingDb } = ctx();
  return loadOverview({
    config,
    connectorDb,
    licensingDb,
    queues: [queues.feeds, queues.provisioning, queues.delivery],
    now: () => NOW,
  });
}

beforeAll(async () => {
  const { connectorDb: db, licensingDb } = ctx();
  await syncIsps(db, ctx().config.isps, silentLogger());
  queues = openQueues(ctx().redis, ctx().prefix);
  for (let day = 1; day <= 6; day++) {
    await insertFeed(db, 'ops', {
      name: `abonnes_${day}.csv`,
      status: 'applied',
      receivedAt: at(`2026-11-0${day}T03:00:00Z`),
      records: 100 + day,
      applied: 100 + day,
    });
  }
  await insertFeed(db, 'ops', {
    name: 'abonnes_7.csv',
    status: 'held',
    receivedAt: at('2026-11-07T03:00:00Z'),
    records: 30,
    errorMessage: 'would cancel 70 of 100 active subscribers (70 %, above 10 %)',
  });
  await insertFeed(db, 'ops', {
    name: 'abonnes_8.csv',
    status: 'failed',
    receivedAt: at('2026-11-08T03:00:00Z'),
    errorCode: 'FEED_UNREADABLE',
    errorMessage: 'line 2: no customer ref',
  });
  await insertBatch(db, 'ops', 'pending', at('2026-11-08T03:01:00Z'));
  await insertBatch(db, 'ops', 'pending', at('2026-11-08T03:02:00Z'));
  await insertBatch(db, 'ops', 'queued', at('2026-11-07T03:01:00Z'));
  await insertBatch(db, 'ops', 'failed', at('2026-11-01T03:01:00Z'));
  for (let i = 0; i < 3; i++) await insertBatch(db, 'ops', 'sent', at('2026-10-01T03:00:00Z'));
  await insertBatch(db, 'quiet', 'sent', at('2026-10-01T03:00:00Z'));
  await insertRejections(db, 'ops', 2);
  await insertDeliveries(db, 'ops', 'pending', 3);
  await insertDeliveries(db, 'ops', 'delivered', 2);
  await insertDeliveries(db, 'ops', 'failed', 1);
  await insertDeliveries(db, 'quiet', 'delivered', 4);
  for (const [period, day] of [
    ['2026-05', '06'],
    ['2026-06', '04'],
    ['2026-07', '05'],
    ['2026-08', '05'],
    ['2026-09', '06'],
    ['2026-10', '05'],
  ] as const) {
    const m = period.slice(5);
    const next = String(Number(m) + 1).padStart(2, '0');
    await insertBillingDelivery(
      db,
      'ops',
      period,
      `lignes_ops_${period}.csv`,
      period === '2026-10' ? 'uploading' : 'delivered',
      at(`2026-${next}-${day}T06:00:00Z`),
    );
  }
  // Thirteen closed periods, 2025-10 to 2026-10: one more than the overview shows. 2026-10
  // predates the licences column (NULL), so the overview counts its lines.
  for (let month = 0; month < 13; month++) {
    const date = new Date(Date.UTC(2025, 9 + month, 1));
    const period = date.toISOString().slice(0, 7);
    const lines = Array.from({ length: month + 1 }, (_, i) => ({
      licenceId: `lic${i}`,
      module: 'antivirus',
      amount: '1.20',
    }));
    await insertClosedPeriod(licensingDb, 'ops', period, lines, {
      closedAt: new Date(date.getTime() + 4 * 86_400_000 + 31 * 86_400_000),
      licences: period === '2026-10' ? null : month + 1,
    });
  }
  // Two firewall lines of lic0 and one adjustment of lic99 in 2026-10: not more licences.
  await ctx()
    .licensingDb('rated_lines')
    .insert([
      {
        isp_id: 'ops',
        period: '2026-10',
        line_id: '2026-10/extra/lic0/firewall',
        kind: 'charge',
        service_period: '2026-10',
        subscriber_id: 'sub_lic0',
        licence_id: 'lic0',
        module: 'firewall',
        days: 30,
        days_in_period: 30,
        quantity: '1',
        unit_price: '0.80',
        amount: '0.80',
        currency: 'EUR',
        activation_event_id: 1,
        activated_at: NOW,
      },
      {
        isp_id: 'ops',
        period: '2026-10',
        line_id: '2026-10/extra/lic99/antivirus',
        kind: 'adjustment',
        service_period: '2026-09',
        subscriber_id: 'sub_lic99',
        licence_id: 'lic99',
        module: 'antivirus',
        days: 30,
        days_in_period: 30,
        quantity: '1',
        unit_price: '1.20',
        amount: '-1.20',
        currency: 'EUR',
        activation_event_id: 1,
        activated_at: NOW,
      },
    ]);
  // The current period (December in Paris) began at 23:00 UTC: only the ops events after
  // that and up to NOW count.
  const event = (type: 'activated' | 'provisioned' | 'delivered', iso: string, isp = 'ops') => ({
    ispId: isp,
    subscriberId: `sub_${type}_${iso}`,
    type,
    idempotencyKey: `overview:${isp}:${type}:${iso}`,
    occurredAt: at(iso),
  });
  await appendEvents(licensingDb, [
    event('provisioned', '2026-11-30T23:01:00Z'),
    event('provisioned', '2026-11-30T23:02:00Z'),
    event('provisioned', '2026-11-30T23:03:00Z'),
    event('delivered', '2026-11-30T23:04:00Z'),
    event('activated', '2026-11-30T23:10:00Z'),
    event('activated', '2026-11-30T23:29:59Z'),
    event('activated', '2026-11-30T22:59:59Z'),
    event('activated', '2026-11-30T23:45:00Z'),
    event('activated', '2026-11-30T23:15:00Z', 'quiet'),
  ]);
  await recordReconciliationRun(
    db,
    reconciled({ MATCHED: 7, UNKNOWN_REF: 2 }, 'facturation_202610.csv'),
    at('2026-11-06T06:40:00Z'),
  );
}, 60_000);

afterAll(async () => {
  await queues?.close();
});

describe('loadOverview', () => {
  it("summarises an ISP's feeds, backlog, deliveries and month end", async () => {
    const found = await overview();
    expect(found.generatedAt).toEqual(NOW);
    expect(found.isps.map((i) => i.ispId)).toEqual(['closing', 'ops', 'quiet']);
    const ops = found.isps.find((i) => i.ispId === 'ops');
    expect(ops).toMatchObject({
      name: 'Demo FAI',
      enabled: true,
      currentPeriod: '2026-12',
      provisioning: {
        pendingBatches: 2,
        queuedBatches: 1,
        failedBatches: 1,
        rejectedCommands: 2,
        oldestWaitingAt: at('2026-11-07T03:01:00Z'),
      },
      keyDeliveries: { pending: 3, delivered: 2, failed: 1 },
      heldFeeds: [
        {
          name: 'abonnes_7.csv',
          receivedAt: at('2026-11-07T03:00:00Z'),
          reason: 'would cancel 70 of 100 active subscribers (70 %, above 10 %)',
        },
      ],
    });
    // November's last activation, a later one and another ISP's are not this period's so far.
    expect(ops?.currentActivity).toEqual({ activations: 2, provisioned: 3, partial: false });
    expect(ops?.lastFeeds.map((f) => f.name)).toEqual([
      'abonnes_8.csv',
      'abonnes_7.csv',
      'abonnes_6.csv',
      'abonnes_5.csv',
      'abonnes_4.csv',
    ]);
    expect(ops?.lastFeeds[0]).toMatchObject({ status: 'failed', errorCode: 'FEED_UNREADABLE' });
    expect(ops?.lastFeeds[2]).toMatchObject({ records: 106, applied: 106, rejected: 0 });
    expect(ops?.billingDeliveries.map((d) => [d.period, d.status])).toEqual([
      ['2026-10', 'uploading'],
      ['2026-09', 'delivered'],
      ['2026-08', 'delivered'],
      ['2026-07', 'delivered'],
      ['2026-06', 'delivered'],
    ]);
    expect(ops?.billingDeliveries[0]).toMatchObject({
      fileName: 'lignes_ops_2026-10.csv',
      at: at('2026-11-05T06:00:00Z'),
    });
    expect(ops && ispNeedsAttention(ops)).toBe(true);
  });

  it('shows the last closed period and a year of billable licences, oldest first', async () => {
    const ops = (await overview()).isps.find((i) => i.ispId === 'ops');
    // As its close recorded it: 13 antivirus lines at 1.20 (the extra lines came later).
    expect(ops?.lastClosed).toEqual({
      period: '2026-10',
      closedAt: new Date(Date.UTC(2026, 9, 1) + 35 * 86_400_000),
      lines: 13,
      total: '15.60',
      currency: 'EUR',
    });
    const licences = ops?.billableLicences ?? [];
    expect(licences).toHaveLength(12);
    expect(licences[0]).toEqual({ period: '2025-11', licences: 2 });
    expect(licences[10]).toEqual({ period: '2026-09', licences: 12 });
    // Counted from the lines: 13 licences with a charge; lic99's adjustment is not one.
    expect(licences[11]).toEqual({ period: '2026-10', licences: 13 });
  });

  it('shows the last reconciliation, and a rerun of its period replaces it', async () => {
    const before = (await overview()).isps.find((i) => i.ispId === 'ops');
    expect(before?.lastReconciliation).toEqual({
      period: '2026-10',
      at: at('2026-11-06T06:40:00Z'),
      counts: { MATCHED: 7, UNKNOWN_REF: 2 },
      reportPath: '/work/ops/reconciliation-ops-2026-10.html',
      fileName: 'facturation_202610.csv',
    });
    const { connectorDb: db } = ctx();
    await recordReconciliationRun(
      db,
      reconciled({ MATCHED: 9 }, 'facturation_202610_v2.csv'),
      at('2026-11-07T06:40:00Z'),
    );
    const rows = await db('reconciliation_runs').where({ isp_id: 'ops' });
    expect(rows).toHaveLength(1);
    expect(await findReconciliationRun(db, 'ops', '2026-10')).toMatchObject({
      ranAt: at('2026-11-07T06:40:00Z'),
      fileName: 'facturation_202610_v2.csv',
      counts: { MATCHED: 9 },
      exportLines: 10,
      rejectedLines: 1,
      vendorLines: 9,
    });
    const after = (await overview()).isps.find((i) => i.ispId === 'ops');
    expect(after?.lastReconciliation).toMatchObject({
      at: at('2026-11-07T06:40:00Z'),
      counts: { MATCHED: 9 },
    });
  });

  it('shows an ISP with nothing yet as zeros and nulls, and needing no one', async () => {
    const quiet = (await overview()).isps.find((i) => i.ispId === 'quiet');
    expect(quiet).toEqual({
      ispId: 'quiet',
      name: 'Quiet ISP',
      enabled: false,
      lastFeeds: [],
      heldFeeds: [],
      provisioning: {
        pendingBatches: 0,
        queuedBatches: 0,
        failedBatches: 0,
        rejectedCommands: 0,
        oldestWaitingAt: null,
      },
      keyDeliveries: { pending: 0, delivered: 4, failed: 0 },
      billingDeliveries: [],
      currentPeriod: '2026-12',
      currentActivity: { activations: 1, provisioned: 0, partial: false },
      lastClosed: null,
      lastReconciliation: null,
      billableLicences: [],
    });
    expect(quiet && ispNeedsAttention(quiet)).toBe(false);
  });

  it('reads the licences a real close counted when it froze its lines', async () => {
    const clock = new Date('2026-12-05T08:00:00Z');
    const deps = licensingDepsOf(ctx(), { now: () => clock });
    const db = ctx().licensingDb;
    const seeded = await seedLicences(db, deps.keystore.keyHashSecret, 3, {
      ispId: 'closing',
      modules: ['antivirus', 'firewall'],
    });
    for (const [i, s] of seeded.entries()) {
      const events = [
        {
          ispId: 'closing',
          subscriberId: s.subscriberId,
          licenceId: s.licenceId,
          type: 'provisioned' as const,
          data: { modules: ['antivirus', 'firewall'], status: 'active' },
          occurredAt: at('2026-09-01T08:00:00Z'),
        },
      ];
      await appendEvents(db, events, at('2026-09-01T08:00:00Z'));
      if (i === 2) continue; // never activated: not billed
      await appendEvents(
        db,
        [
          {
            ispId: 'closing',
            subscriberId: s.subscriberId,
            licenceId: s.licenceId,
            type: 'activated',
            data: {},
            idempotencyKey: `activated:${s.licenceId}`,
            occurredAt: at('2026-10-03T10:00:00Z'),
          },
        ],
        at('2026-10-03T10:00:00Z'),
      );
      await db('licences')
        .where({ id: s.licenceId })
        .update({ activated_at: at('2026-10-03T10:00:00Z') });
    }
    const closed = await closeBillingPeriod(deps, 'closing', '2026-11');
    expect(closed.summary.lineCount).toBe(4);
    const row = await db('billing_closes').where({ isp_id: 'closing', period: '2026-11' }).first();
    expect(row.licences).toBe(2);
    const closing = (await overview()).isps.find((i) => i.ispId === 'closing');
    expect(closing?.billableLicences).toEqual([{ period: '2026-11', licences: 2 }]);
    expect(closing?.lastClosed).toMatchObject({
      period: '2026-11',
      lines: 4,
      total: closed.summary.total,
    });
  });

  it('counts the jobs of each queue by state, paused ones apart', async () => {
    await queues.feeds.add('poll-isp', { ispId: 'ops' }, { jobId: 'poll-waiting' });
    await queues.feeds.add('poll-isp', { ispId: 'ops' }, { jobId: 'poll-delayed', delay: 60_000 });
    await failJobs(
      queues.provisioning,
      ctx().redis,
      [{ name: 'provision-batch', data: { ispId: 'ops', batchId: 4 } }],
      'server answered 503',
    );
    await queues.delivery.pause();
    await queues.delivery.add('deliver-batch', { ispId: 'ops', batchId: 1 });
    await queues.delivery.add('deliver-batch', { ispId: 'ops', batchId: 2 });
    try {
      const found = (await overview()).queues;
      expect(found).toEqual([
        {
          name: 'feeds',
          waiting: 1,
          active: 0,
          delayed: 1,
          failed: 0,
          completed: 0,
          paused: 0,
        },
        {
          name: 'provisioning',
          waiting: 0,
          active: 0,
          delayed: 0,
          failed: 1,
          completed: 0,
          paused: 0,
        },
        {
          name: 'delivery',
          waiting: 0,
          active: 0,
          delayed: 0,
          failed: 0,
          completed: 0,
          paused: 2,
        },
      ]);
      expect(found.map(queueNeedsAttention)).toEqual([false, true, false]);
    } finally {
      await queues.delivery.resume();
      await queues.feeds.obliterate({ force: true });
      await queues.provisioning.obliterate({ force: true });
      await queues.delivery.obliterate({ force: true });
    }
  });

  it('says a queue could not be read instead of failing the whole overview', async () => {
    const { Queue } = await import('bullmq');
    const { Redis } = await import('ioredis');
    const dead = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    dead.on('error', () => {});
    const queue = new Queue('feeds', { connection: dead, prefix: ctx().prefix });
    queue.on('error', () => {});
    try {
      const { config, connectorDb, licensingDb } = ctx();
      const found = await loadOverview({ config, connectorDb, licensingDb, queues: [queue] });
      expect(found.isps).toHaveLength(3);
      expect(found.queues).toHaveLength(1);
      expect(found.queues[0]).toMatchObject({ name: 'feeds', waiting: 0, failed: 0 });
      expect(found.queues[0]?.error).toBeTruthy();
      expect(found.queues[0] && queueNeedsAttention(found.queues[0])).toBe(true);
    } finally {
      await queue.close().catch(() => {});
      dead.disconnect();
    }
  });
});
