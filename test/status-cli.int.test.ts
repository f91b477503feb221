/**
 * `relais status` as an operator runs it: the real command in a child process, on this file's
 * databases and Redis prefix, seeded with one ISP that needs attention (a failed last feed, a
 * held snapshot, a failed batch and key delivery, a failed job) and one that is quiet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { recordReconciliationRun } from '../billing/reconciliation/runs.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { openQueues, type Queues } from '../queue/queues.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import {
  failJobs,
  insertBatch,
  insertBillingDelivery,
  insertClosedPeriod,
  insertDeliveries,
  insertFeed,
  insertRejections,
} from './harness/operations.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({
  isps: {
    ops: stringify(shipped),
    quiet: stringify({ ...shipped, name: 'Quiet ISP', enabled: false }),
  },
});

const status = (...args: string[]) =>
  runCli(['status', ...args, '--config', join(ctx().dir, 'relais.yaml')]);

const at = (iso: string) => new Date(iso);
let queues: Queues;
let heldId = '';

beforeAll(async () => {
  const { connectorDb: db, licensingDb } = ctx();
  await syncIsps(db, ctx().config.isps, silentLogger());
  queues = openQueues(ctx().redis, ctx().prefix);
  await insertFeed(db, 'ops', {
    name: 'abonnes_1.csv',
    status: 'applied',
    receivedAt: at('2026-11-06T03:00:00Z'),
    records: 100,
    applied: 98,
    rejected: 2,
  });
  heldId = await insertFeed(db, 'ops', {
    name: 'abonnes_2.csv',
    status: 'held',
    receivedAt: at('2026-11-07T03:00:00Z'),
    records: 30,
    errorMessage: 'would cancel 70 of 100 active subscribers',
  });
  await insertFeed(db, 'ops', {
    name: 'abonnes_3.csv',
    status: 'failed',
    receivedAt: at('2026-11-08T03:00:00Z'),
    errorCode: 'FEED_UNREADABLE',
    errorMessage: 'line 2: no customer ref',
  });
  await insertFeed(db, 'quiet', {
    name: 'q.csv',
    status: 'applied',
    receivedAt: at('2026-11-08T04:00:00Z'),
    records: 5,
    applied: 5,
  });
  await insertBatch(db, 'ops', 'pending', at('2026-11-08T03:01:00Z'));
  await insertBatch(db, 'ops', 'queued', at('2026-11-07T03:01:00Z'));
  await insertBatch(db, 'ops', 'failed', at('2026-11-01T03:01:00Z'));
  await insertBatch(db, 'ops', 'sent', at('2026-10-01T03:00:00Z'));
  await insertRejections(db, 'ops', 2);
  await insertDeliveries(db, 'ops', 'pending', 3);
  await insertDeliveries(db, 'ops', 'delivered', 2);
  await insertDeliveries(db, 'ops', 'failed', 1);
  await insertBillingDelivery(
    db,
    'ops',
    '2026-10',
    'lignes_ops_2026-10.csv',
    'delivered',
    at('2026-11-05T06:00:00Z'),
  );
  await insertClosedPeriod(
    licensingDb,
    'ops',
    '2026-10',
    [
      { licenceId: 'lic1', module: 'antivirus', amount: '1.20' },
      { licenceId: 'lic1', module: 'firewall', amount: '0.80' },
      { licenceId: 'lic2', module: 'antivirus', amount: '1.20' },
    ],
    { closedAt: at('2026-11-04T06:00:00Z'), licences: 2 },
  );
  await recordReconciliationRun(
    db,
    {
      ispId: 'ops',
      period: '2026-10',
      fileName: 'facturation_202610.csv',
      sha256: 'b'.repeat(64),
      exportLines: 9,
      rejectedLines: 0,
      vendorLines: 9,
      counts: {
        MATCHED: 7,
        BILLED_NOT_ACTIVATED: 0,
        ACTIVATED_NOT_BILLED: 0,
        MODULES_DIFFER: 0,
        AMOUNT_DIFFERS: 0,
        UNKNOWN_REF: 2,
        MISSING_FROM_EXPORT: 0,
        EXPORT_ROW_REJECTED: 0,
      },
      paths: { csv: '/r.csv', html: '/r.html', rejects: '/r.rejects.csv' },
    },
    at('2026-11-06T06:40:00Z'),
  );
  await queues.feeds.add('poll-isp', { ispId: 'ops' }, { jobId: 'poll-waiting' });
  await failJobs(
    queues.provisioning,
    ctx().redis,
    [{ name: 'provision-batch', data: { ispId: 'ops', batchId: 3 }, jobId: 'batch-3' }],
    'PROVISIONING_REJECTED: the server refused the batch',
  );
}, 60_000);

afterAll(async () => {
  await queues?.close();
});

describe('relais status', () => {
  it('prints one screen: each ISP, marked where it needs a person, then the queues', async () => {
    const { code, stdout, stderr } = await status();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^Relais status at \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    const period = new Intl.DateTimeFormat('en-CA', {
      timeZone: 'Europe/Paris',
      year: 'numeric',
      month: '2-digit',
    })
      .format(new Date())
      .slice(0, 7);
    expect(lines.slice(1)).toEqual([
      '',
      `! ops (Demo FAI), enabled, period ${period}: 0 activated, 0 subscribed so far`,
      '!   feeds      abonnes_3.csv failed FEED_UNREADABLE 2026-11-08 03:00 (0 read, 0 applied, 0 rejected); 1 held',
      `!   held       ${heldId} abonnes_2.csv since 2026-11-07 03:00: would cancel 70 of 100 active subscribers`,
      '!              relais feeds approve <feed> applies one, relais feeds reject drops it',
      '!   provision  batches 1 pending, 1 queued (oldest 2026-11-07 03:01), 1 failed, 2 refused; keys 3 pending, 1 failed',
      '    month end  closed 2026-10 (3 lines, 3.20 EUR, 2 licences); file 2026-10 delivered',
      '    reconciled 2026-10 on 2026-11-06 06:40: 7 matched, 2 UNKNOWN_REF',
      '',
      `  quiet (Quiet ISP), disabled, period ${period}: 0 activated, 0 subscribed so far`,
      '    feeds      q.csv applied 2026-11-08 04:00 (5 read, 5 applied, 0 rejected)',
      '    provision  batches 0 pending, 0 queued, 0 failed, 0 refused; keys 0 pending, 0 failed',
      '    month end  no period closed',
      '',
      '  queue          waiting    active   delayed    failed completed    paused',
      '  feeds                1         0         0         0         0         0',
      '! provisioning         0         0         0         1         0         0',
      '  delivery             0         0         0         0         0         0',
    ]);
  });

  it('prints the overview as one JSON object with --json', async () => {
    const { code, stdout, stderr } = await status('--json');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.trimEnd().split('\n')).toHaveLength(1);
    const overview = JSON.parse(stdout);
    expect(Date.parse(overview.generatedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(overview.isps.map((i: { ispId: string }) => i.ispId)).toEqual(['ops', 'quiet']);
    const [ops] = overview.isps;
    expect(ops).toMatchObject({
      ispId: 'ops',
      enabled: true,
      heldFeeds: [{ id: heldId, name: 'abonnes_2.csv', receivedAt: '2026-11-07T03:00:00.000Z' }],
      provisioning: {
        pendingBatches: 1,
        queuedBatches: 1,
        failedBatches: 1,
        rejectedCommands: 2,
        oldestWaitingAt: '2026-11-07T03:01:00.000Z',
      },
      keyDeliveries: { pending: 3, delivered: 2, failed: 1 },
      billingDeliveries: [
        {
          period: '2026-10',
          fileName: 'lignes_ops_2026-10.csv',
          status: 'delivered',
          at: '2026-11-05T06:00:00.000Z',
        },
      ],
      lastClosed: { period: '2026-10', lines: 3, total: '3.20', currency: 'EUR' },
      lastReconciliation: { period: '2026-10', at: '2026-11-06T06:40:00.000Z' },
      billableLicences: [{ period: '2026-10', licences: 2 }],
    });
    expect(ops.lastFeeds.map((f: { name: string }) => f.name)).toEqual([
      'abonnes_3.csv',
      'abonnes_2.csv',
      'abonnes_1.csv',
    ]);
    expect(overview.queues).toContainEqual({
      name: 'provisioning',
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 1,
      completed: 0,
      paused: 0,
    });
  });

  it('is listed in the help', async () => {
    const { stdout } = await runCli(['--help']);
    expect(stdout).toMatch(/^ {2}status \[options\] +one screen/m);
  });
});
