/**
 * Month end across both sides, over real HTTP and real MariaDB: the subscription server closes
 * a period and writes the vendor's invoice; the connector streams the frozen lines, maps them
 * back to customer refs, writes each shipped ISP's file in its own format and delivers it to
 * the outbox. A rerun changes nothing; a stream that ends early writes nothing; the vendor's
 * files hold no customer ref.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { billingRoutes } from '../api/billing.routes.js';
import { buildApi } from '../api/server.js';
import { exportInvoiceLines } from '../billing/export.js';
import type { IspConfig } from '../config/load.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { closeAndInvoice, vendorDocumentsHook } from '../licensing/billing/month-end.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { appendEvents } from '../licensing/ledger.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { type BillingClient, createBillingClient } from '../queue/billing-client.js';
import { closeDueBillingPeriods } from '../queue/billing-close.scheduler.js';
import { exportDuePeriod } from '../queue/billing-export.scheduler.js';
import { reconcileDuePeriod } from '../queue/reconciliation.scheduler.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';
import { seedLicences } from './harness/seed-licences.js';

const shipped = (id: string) =>
  parse(readFileSync(join(packageRoot(), `config/isps/${id}.yaml`), 'utf8'));
const ISPS = ['demo-fai', 'alpha-telecom', 'bretagne-net'] as const;
const deployment = parse(readFileSync(join(packageRoot(), 'config/relais.yaml'), 'utf8'));
const ctx = useTestContext({
  deployment: { billing: { seller: deployment.billing.seller } },
  isps: Object.fromEntries(ISPS.map((id) => [id, shipped(id)])),
});
const NOW = new Date('2026-12-05T08:00:00Z');
const log = silentLogger();

let app: FastifyInstance;
let deps: LicensingDeps;
let client: BillingClient;
const refs = new Map<string, string[]>();

/** A customer provisioned on 3 October and activated on 10 October, on both sides. */
async function customer(ispId: string, ref: string, modules: string[]): Promise<void> {
  const [seeded] = await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 1, {
    ispId,
    modules,
  });
  const { subscriberId, licenceId } = seeded as { subscriberId: string; licenceId: string };
  const provisioned = new Date('2026-10-03T10:00:00Z');
  const activated = new Date('2026-10-10T18:30:00Z');
  await appendEvents(ctx().licensingDb, [
    {
      ispId,
      subscriberId,
      licenceId,
      type: 'provisioned',
      data: { modules },
      occurredAt: provisioned,
    },
    {
      ispId,
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
      isp_id: ispId,
      customer_ref: ref,
      subscriber_id: subscriberId,
      status: 'active',
      offer: null,
      modules: modules.join(','),
      version: 1,
      created_at: provisioned,
      updated_at: provisioned,
    });
  refs.set(ispId, [...(refs.get(ispId) ?? []), ref]);
}

const isp = (id: string) => ctx().config.isps.get(id) as IspConfig;
const outbox = (id: string) => join(isp(id).workDir, 'outbox');

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
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  client = createBillingClient({
    baseUrl: base,
    tokenOf: (ispId) => ispTokenOf(ctx().config, deps.keystore, ispId),
  });
  for (const id of ISPS) {
    await customer(id, '00000042', ['antivirus', 'firewall']);
    await customer(id, '00000107', ['antivirus']);
    await customer(id, '00012345', ['antivirus', 'firewall', 'parental-control']);
  }
});

afterAll(async () => {
  await app?.close();
});

describe('month end of 2026-10 for the three shipped ISPs', () => {
  it.each(ISPS)(
    '%s: closes, invoices, and delivers its invoice lines with customer refs',
    async (id) => {
      const closed = await closeAndInvoice(deps, id, '2026-10');
      expect(closed.outcome).toBe('closed');
      expect(closed.summary.lineCount).toBe(6);
      expect(closed.documents.invoice?.lines).toBeGreaterThan(0);

      const result = await exportInvoiceLines(
        { db: ctx().connectorDb, log, source: client },
        isp(id),
        '2026-10',
      );
      expect(result).toMatchObject({ lines: 6, totalAmount: closed.summary.total });
      const delivered = result.file?.delivered[0];
      expect(delivered?.outcome).toBe('delivered');
      const bytes = readFileSync(join(outbox(id), delivered?.name as string));
      expect(bytes.equals(readFileSync(result.file?.path as string))).toBe(true);
      const text = iconv.decode(bytes, 'latin1');
      for (const ref of refs.get(id) ?? []) expect(text).toContain(ref);
    },
  );

  it('writes the vendor documents with subscriber ids only, never a customer ref', async () => {
    for (const id of ISPS) {
      const dir = join(ctx().config.deployment.paths.dataDir, 'vendor-invoices', id, '2026-10');
      const files = readdirSync(dir);
      expect(files).toEqual(expect.arrayContaining(['detail.csv', 'invoice.xml', 'invoice.html']));
      for (const file of files) {
        const text = readFileSync(join(dir, file), 'utf8');
        for (const ref of refs.get(id) ?? []) expect(text).not.toContain(ref);
      }
    }
  });

  it('changes nothing when run again: same lines, same bytes, nothing uploaded', async () => {
    const again = await closeAndInvoice(deps, 'demo-fai', '2026-10');
    expect(again.outcome).toBe('already-closed');
    const before = readFileSync(join(outbox('demo-fai'), 'lignes_demo-fai_2026-10.csv'));
    const result = await exportInvoiceLines(
      { db: ctx().connectorDb, log, source: client },
      isp('demo-fai'),
      '2026-10',
    );
    expect(result.file?.delivered.map((d) => d.outcome)).toEqual(['already-delivered']);
    expect(readFileSync(result.file?.path as string).equals(before)).toBe(true);
  });

  it('refuses to export a period the server has not closed, writing nothing', async () => {
    await expect(
      exportInvoiceLines(
        { db: ctx().connectorDb, log, source: client },
        isp('demo-fai'),
        '2026-11',
      ),
    ).rejects.toMatchObject({ code: 'BILLING_PERIOD_NOT_CLOSED' });
    expect(existsSync(join(isp('demo-fai').workDir, 'billing', '2026-11'))).toBe(false);
  });
});

describe('a stream that ends early', () => {
  let server: Server;
  let short: BillingClient;

  beforeAll(async () => {
    // The real server cannot be made to stop at a line boundary on demand; this one does.
    const lines: string[] = [];
    for await (const line of client.lines('demo-fai', '2026-10', 6))
      lines.push(JSON.stringify(line));
    server = createServer((request, response) => {
      if (request.url?.endsWith('/lines')) {
        response.writeHead(200, { 'content-type': 'application/x-ndjson' });
        response.end(`${lines.slice(0, 4).join('\n')}\n`);
      } else {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ lineCount: 6, total: '0', currency: 'EUR' }));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    short = createBillingClient({
      baseUrl: `http://127.0.0.1:${port}`,
      tokenOf: () => 't'.repeat(40),
    });
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('is retried later, and no file reaches the outbox', async () => {
    const before = readdirSync(outbox('bretagne-net'));
    await ctx().connectorDb('billing_deliveries').where({ isp_id: 'bretagne-net' }).delete();
    await expect(
      exportInvoiceLines(
        { db: ctx().connectorDb, log, source: short },
        isp('bretagne-net'),
        '2026-10',
      ),
    ).rejects.toMatchObject({
      code: 'LICENSING_SERVER_UNAVAILABLE',
      message: expect.stringContaining('ended after 4 of 6 lines'),
    });
    expect(readdirSync(outbox('bretagne-net'))).toEqual(before);
    expect(
      readdirSync(join(isp('bretagne-net').workDir, 'billing', '2026-10')).filter((f) =>
        f.endsWith('.part'),
      ),
    ).toEqual([]);
  });
});

describe('the hourly export', () => {
  const deps = () => ({ db: ctx().connectorDb, log, source: client });

  it('exports the last ended period once closed, then only checks the ledger', async () => {
    const november = new Date('2026-11-20T12:00:00Z');
    // bretagne-net's ledger was emptied above: its export is due again.
    await expect(exportDuePeriod(deps(), isp('bretagne-net'), november)).resolves.toEqual({
      isp: 'bretagne-net',
      period: '2026-10',
      outcome: 'exported',
      lines: 6,
    });
    await expect(exportDuePeriod(deps(), isp('bretagne-net'), november)).resolves.toMatchObject({
      outcome: 'delivered-before',
    });
  });

  it('waits for a period the server has not closed', async () => {
    await expect(
      exportDuePeriod(deps(), isp('demo-fai'), new Date('2026-12-20T12:00:00Z')),
    ).resolves.toEqual({ isp: 'demo-fai', period: '2026-11', outcome: 'not-closed' });
  });
});

describe('the daily reconciliation', () => {
  const deps = () => ({ db: ctx().connectorDb, log, source: client });

  it("reconciles the ISP's newest export once the period is closed, and only once", async () => {
    const inbox = join(ctx().config.deployment.paths.dataDir, 'isps', 'demo-fai', 'inbox');
    mkdirSync(inbox, { recursive: true });
    const rows = [
      'N° client;Nom;Prénom;Article;Libellé;Montant TTC;Période',
      '00000042;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
      '00000042;;;PARE;Option pare-feu;2,00;10/2026',
      '00000107;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
      '99999999;;;SECU_ESSENTIEL;Sécurité Essentiel;3,99;10/2026',
    ];
    writeFileSync(
      join(inbox, 'facturation_202610.csv'),
      iconv.encode(`${rows.join('\r\n')}\r\n`, 'windows-1252'),
    );
    const november = new Date('2026-11-20T12:00:00Z');
    const first = await reconcileDuePeriod(deps(), isp('demo-fai'), november);
    expect(first.outcome).toBe('reconciled');
    if (first.outcome !== 'reconciled') return;
    expect(first.result.counts).toMatchObject({
      MATCHED: 2,
      ACTIVATED_NOT_BILLED: 1,
      UNKNOWN_REF: 1,
    });
    const report = readFileSync(first.result.paths.csv, 'utf8');
    expect(report).toMatch(/00012345.*ACTIVATED_NOT_BILLED/);
    await expect(reconcileDuePeriod(deps(), isp('demo-fai'), november)).resolves.toMatchObject({
      outcome: 'reconciled-before',
    });
  });

  it('waits while the period is open', async () => {
    await expect(
      reconcileDuePeriod(deps(), isp('demo-fai'), new Date('2026-12-20T12:00:00Z')),
    ).resolves.toMatchObject({ period: '2026-11', outcome: 'not-closed' });
  });
});

describe('the daily close', () => {
  it('closes the due period and writes vendor documents a crash left unwritten', async () => {
    const dir = join(
      ctx().config.deployment.paths.dataDir,
      'vendor-invoices',
      'bretagne-net',
      '2026-10',
    );
    // As after a crash between the freeze and the invoice: the close is there, no documents.
    await ctx().licensingDb('billing_documents').where({ isp_id: 'bretagne-net' }).delete();
    rmSync(dir, { recursive: true, force: true });
    const check = await closeDueBillingPeriods(deps, isp('bretagne-net'), {
      afterFreeze: vendorDocumentsHook(deps),
    });
    expect(check).toEqual({
      isp: 'bretagne-net',
      outcome: 'closed',
      periods: ['2026-11'],
      lines: 6,
    });
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['invoice.xml', 'detail.csv']));
    const periods = await ctx()
      .licensingDb('billing_documents')
      .where({ isp_id: 'bretagne-net', type: 'invoice' })
      .orderBy('period')
      .pluck('period');
    expect(periods).toEqual(['2026-10', '2026-11']);
  });
});
