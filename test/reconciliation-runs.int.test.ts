/**
 * The record of reconciliations (`reconciliation_runs`) that the operations overview reads,
 * written by both ways a reconciliation runs: `relais reconcile` in a child process and the
 * daily scheduler in-process, each against the subscription server's billing routes over real
 * HTTP and real MariaDB. A rerun of a period replaces its row; another period adds one.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { billingRoutes } from '../api/billing.routes.js';
import { buildApi } from '../api/server.js';
import { type ExportProgress, exportInvoiceLines } from '../billing/export.js';
import { findReconciliationRun } from '../billing/reconciliation/runs.js';
import type { IspConfig } from '../config/load.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { closeBillingPeriod } from '../licensing/billing/close.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { appendEvents } from '../licensing/ledger.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { createBillingClient } from '../queue/billing-client.js';
import { reconcileIsp } from '../queue/reconciliation.scheduler.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';
import { freePort } from './harness/ports.js';
import { seedLicences } from './harness/seed-licences.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const port = await freePort();
const ctx = useTestContext({
  deployment: { server: { url: `http://127.0.0.1:${port}` } },
  isps: { recon: stringify(shipped) },
});
const NOW = new Date('2026-12-05T08:00:00Z');
const log = silentLogger();
let app: FastifyInstance;
let deps: LicensingDeps;

const isp = () => ctx().config.isps.get('recon') as IspConfig;
const inbox = () => join(ctx().config.deployment.paths.dataDir, 'isps', 'recon', 'inbox');

/** A customer provisioned on 3 October and activated on 10 October, on both sides. */
async function customer(ref: string, modules: string[]): Promise<void> {
  const [seeded] = await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 1, {
    ispId: 'recon',
    modules,
  });
  const { subscriberId, licenceId } = seeded as { subscriberId: string; licenceId: string };
  const provisioned = new Date('2026-10-03T10:00:00Z');
  const activated = new Date('2026-10-10T18:30:00Z');
  await appendEvents(ctx().licensingDb, [
    {
      ispId: 'recon',
      subscriberId,
      licenceId,
      type: 'provisioned',
      data: { modules },
      occurredAt: provisioned,
    },
    {
      ispId: 'recon',
      subscriberId,
      licenceId,
      type: 'activated',
      idempotencyKey: `activated:${licenceId}`,
      occurredAt: activated,
    },
  ]);
  await ctx().licensingDb('licences').where({ id: licenceId }).update({ activated_at: activated });
  await ctx()
    .connectorDb('subscribers')
    .insert({
      isp_id: 'recon',
      customer_ref: ref,
      subscriber_id: subscriberId,
      status: 'active',
      offer: null,
      modules: modules.join(','),
      version: 1,
      created_at: provisioned,
      updated_at: provisioned,
    });
}

const HEADER = 'N° client;Nom;Prénom;Article;Libellé;Montant TTC;Période';

/** Writes an export of October into the ISP's inbox; returns its path. */
function writeExport(name: string, rows: string[]): string {
  mkdirSync(inbox(), { recursive: true });
  const path = join(inbox(), name);
  writeFileSync(path, iconv.encode(`${[HEADER, ...rows].join('\r\n')}\r\n`, 'windows-1252'));
  return path;
}

beforeAll(async () => {
  deps = licensingDepsOf(ctx(), { now: () => NOW });
  await syncIsps(ctx().connectorDb, ctx().config.isps, log);
  app = await buildApi({
    log,
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 1024 * 1024,
    routes: [async (instance) => instance.register(billingRoutes, { deps })],
  });
  await app.listen({ host: '127.0.0.1', port });
  await customer('00000042', ['antivirus']);
  await customer('00000107', ['antivirus']);
  await closeBillingPeriod(deps, 'recon', '2026-10');
}, 60_000);

afterAll(async () => {
  await app?.close();
});

const rows = () => ctx().connectorDb('reconciliation_runs').where({ isp_id: 'recon' });

describe('recording reconciliations', () => {
  it('records what relais reconcile found, and replaces it when the period is run again', async () => {
    const config = join(ctx().dir, 'relais.yaml');
    const first = writeExport('facturation_202610.csv', [
      '00000042;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
      '99999999;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
    ]);
    const run = await runCli([
      'reconcile',
      '--isp',
      'recon',
      '--period',
      '2026-10',
      first,
      '--config',
      config,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const recorded = await findReconciliationRun(ctx().connectorDb, 'recon', '2026-10');
    expect(recorded).toMatchObject({
      fileName: 'facturation_202610.csv',
      exportLines: 2,
      rejectedLines: 0,
      vendorLines: 2,
      counts: { MATCHED: 1, ACTIVATED_NOT_BILLED: 1, UNKNOWN_REF: 1 },
      reportPath: join(
        isp().workDir,
        'reconciliation',
        '2026-10',
        'reconciliation-recon-2026-10.html',
      ),
    });
    expect(Date.now() - (recorded?.ranAt.getTime() ?? 0)).toBeLessThan(60_000);

    const corrected = writeExport('facturation_202610_v2.csv', [
      '00000042;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
      '00000107;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
    ]);
    const again = await runCli([
      'reconcile',
      '--isp',
      'recon',
      '--period',
      '2026-10',
      corrected,
      '--config',
      config,
    ]);
    expect(again.code).toBe(0);
    expect(await rows()).toHaveLength(1);
    const replaced = await findReconciliationRun(ctx().connectorDb, 'recon', '2026-10');
    expect(replaced).toMatchObject({
      fileName: 'facturation_202610_v2.csv',
      counts: { MATCHED: 2, ACTIVATED_NOT_BILLED: 0, UNKNOWN_REF: 0 },
    });
    expect(replaced?.ranAt.getTime()).toBeGreaterThan(recorded?.ranAt.getTime() ?? 0);
  });

  it('records what the daily scheduler found in the same row, and nothing when it skips', async () => {
    const before = await findReconciliationRun(ctx().connectorDb, 'recon', '2026-10');
    // The newest export in the inbox, by name: the scheduler takes it for the period.
    writeExport('facturation_202610_v3.csv', [
      '00000107;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
    ]);
    const client = createBillingClient({
      baseUrl: `http://127.0.0.1:${port}`,
      tokenOf: (ispId) => ispTokenOf(ctx().config, deps.keystore, ispId),
    });
    const schedulerDeps = { db: ctx().connectorDb, log, source: client };
    const check = await reconcileIsp(schedulerDeps, isp(), '2026-10');
    expect(check.outcome).toBe('reconciled');
    expect(await rows()).toHaveLength(1);
    const recorded = await findReconciliationRun(ctx().connectorDb, 'recon', '2026-10');
    expect(recorded).toMatchObject({
      fileName: 'facturation_202610_v3.csv',
      counts: { MATCHED: 1, ACTIVATED_NOT_BILLED: 1 },
    });
    expect(recorded?.ranAt.getTime()).toBeGreaterThan(before?.ranAt.getTime() ?? 0);

    const skipped = await reconcileIsp(schedulerDeps, isp(), '2026-10');
    expect(skipped.outcome).toBe('reconciled-before');
    expect(await findReconciliationRun(ctx().connectorDb, 'recon', '2026-10')).toEqual(recorded);
  });
});

describe('the billing export', () => {
  it('reports its progress against the line count of the closed period', async () => {
    const client = createBillingClient({
      baseUrl: `http://127.0.0.1:${port}`,
      tokenOf: (ispId) => ispTokenOf(ctx().config, deps.keystore, ispId),
    });
    const seen: ExportProgress[] = [];
    const result = await exportInvoiceLines(
      { db: ctx().connectorDb, log, source: client },
      isp(),
      '2026-10',
      { onProgress: (p) => seen.push(p) },
    );
    expect(result.lines).toBe(2);
    expect(seen).toEqual([{ lines: 2, total: 2 }]);
  });
});
