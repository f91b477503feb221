/**
 * The admin pages in a real headless Chromium (Debian's `chromium` package, driven by
 * playwright-core), on a real api over MariaDB and Redis with a little seeded data: the
 * operations page shows what was seeded, the chart has one bar per closed period, and Bull
 * Board renders the queues, read-only for a viewer. Screenshots of both pages go to
 * `test-output/` (their paths are printed) so a person can look at what operators see.
 *
 * No Chromium is a failure, not a skip: install it with `apt-get install chromium`.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { adminRoutes } from '../api/admin.routes.js';
import { buildApi } from '../api/server.js';
import type { ReconcileResult } from '../billing/reconciliation/reconcile.js';
import { recordReconciliationRun } from '../billing/reconciliation/runs.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { packageRoot } from '../platform/package-root.js';
import { openQueues, type Queues } from '../queue/queues.js';
import { useTestContext } from './harness/context.js';
import {
  failJobs,
  insertBatch,
  insertBillingDelivery,
  insertClosedPeriod,
  insertDeliveries,
  insertFeed,
} from './harness/operations.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const OUTPUT_DIR = join(packageRoot(), 'test-output');
const OPERATOR = { username: 'olga', password: 'olga-operator-pw' };
const VIEWER = { username: 'victor', password: 'victor-viewer-pw' };
const NOW = new Date('2026-11-16T08:00:00Z');
const HELD_REASON = 'would cancel 412 of 1,980 active subscribers (20.8 %, above 10 %)';

const shippedIsp = (file: string) =>
  stringify(parse(readFileSync(join(packageRoot(), 'config/isps', file), 'utf8')));

const ctx = useTestContext({
  isps: { alpha: shippedIsp('alpha-telecom.yaml'), demo: shippedIsp('demo-fai.yaml') },
  deployment: {
    admin: {
      users: [
        { name: OPERATOR.username, role: 'operator', password: OPERATOR.password },
        { name: VIEWER.username, role: 'viewer', password: VIEWER.password },
      ],
    },
  },
});

const at = (iso: string) => new Date(iso);

/** Closed periods seeded per ISP: the chart must have exactly these bars. */
const CLOSED: Record<string, { period: string; licences: number; amounts: string[] }[]> = {
  alpha: [
    { period: '2026-08', licences: 3, amounts: ['4.90', '4.90', '2.50'] },
    { period: '2026-09', licences: 4, amounts: ['4.90', '4.90', '2.50', '2.50'] },
    { period: '2026-10', licences: 5, amounts: ['4.90', '4.90', '4.90', '2.50', '2.50'] },
  ],
  demo: [{ period: '2026-10', licences: 2, amounts: ['3.00', '3.00'] }],
};

async function seed(queues: Queues): Promise<void> {
  const { connectorDb: db, licensingDb, config, redis } = ctx();
  await syncIsps(db, config.isps, silentLogger());
  for (let day = 12; day <= 15; day++) {
    await insertFeed(db, 'alpha', {
      name: `clients-202611${day}.xml`,
      status: 'applied',
      receivedAt: at(`2026-11-${day}T03:00:00Z`),
      records: 1_980 + day,
      applied: 1_978 + day,
      rejected: 2,
    });
  }
  await insertFeed(db, 'alpha', {
    name: 'clients-20261116.xml',
    status: 'held',
    receivedAt: at('2026-11-16T03:00:00Z'),
    records: 1_568,
    errorMessage: HELD_REASON,
  });
  await insertFeed(db, 'demo', {
    name: 'abonnes_20261115.csv',
    status: 'applied',
    receivedAt: at('2026-11-15T04:00:00Z'),
    records: 240,
    applied: 240,
  });
  await insertFeed(db, 'demo', {
    name: 'abonnes_20261116.csv',
    status: 'failed',
    receivedAt: at('2026-11-16T04:00:00Z'),
    errorCode: 'FEED_COLUMNS_MISSING',
    errorMessage: 'missing columns: offre',
  });
  await insertBatch(db, 'alpha', 'pending', at('2026-11-16T03:01:00Z'));
  await insertBatch(db, 'alpha', 'queued', at('2026-11-15T03:01:00Z'));
  await insertBatch(db, 'demo', 'failed', at('2026-11-14T04:01:00Z'));
  await insertDeliveries(db, 'alpha', 'delivered', 12);
  await insertDeliveries(db, 'alpha', 'pending', 2);
  await insertDeliveries(db, 'demo', 'failed', 1);
  await insertBillingDelivery(
    db,
    'alpha',
    '2026-10',
    'factures_alpha_2026-10.csv',
    'delivered',
    at('2026-11-05T06:00:00Z'),
  );
  for (const [ispId, periods] of Object.entries(CLOSED)) {
    for (const { period, licences, amounts } of periods) {
      const lines = amounts.map((amount, i) => ({
        licenceId: `lic${i}`,
        module: 'antivirus',
        amount,
      }));
      await insertClosedPeriod(licensingDb, ispId, period, lines, {
        closedAt: at(`${period}-28T00:00:00Z`),
        licences,
      });
    }
  }
  const result: ReconcileResult = {
    ispId: 'alpha',
    period: '2026-10',
    fileName: 'facturation_alpha_202610.csv',
    sha256: 'b'.repeat(64),
    exportLines: 5,
    rejectedLines: 0,
    vendorLines: 5,
    counts: { MATCHED: 4, BILLED_NOT_ACTIVATED: 1 } as ReconcileResult['counts'],
    paths: { csv: '/tmp/r.csv', html: '/tmp/r.html', rejects: '/tmp/r.rejects.csv' },
  };
  await recordReconciliationRun(db, result, at('2026-11-06T06:40:00Z'));
  await failJobs(
    queues.provisioning,
    redis,
    [{ name: 'provision-batch', data: { ispId: 'demo', batchId: 3 } }],
    'licensing server unavailable',
  );
}

async function startApi(queues: Queues): Promise<{ app: FastifyInstance; url: string }> {
  const metrics = createMetrics({ defaultMetrics: false });
  const admin: FastifyPluginAsync = async (app) => {
    await app.register(adminRoutes, {
      config: ctx().config,
      metrics,
      connectorDb: ctx().connectorDb,
      licensingDb: ctx().licensingDb,
      queues: [queues.feeds, queues.provisioning, queues.delivery],
      now: () => NOW,
    });
  };
  const app = await buildApi({
    log: silentLogger(),
    metrics,
    readiness: [],
    bodyLimitBytes: 65_536,
    routes: [admin],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, url: `http://127.0.0.1:${port}` };
}

function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM_PATH}: install it with apt-get install chromium (Debian package)`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

describe('admin pages in Chromium', () => {
  let queues: Queues;
  let api: { app: FastifyInstance; url: string };
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  const signedIn = async (credentials: { username: string; password: string }) => {
    const context = await browser.newContext({
      httpCredentials: credentials,
      viewport: { width: 1360, height: 900 },
    });
    contexts.push(context);
    // The dashboard asks Google for its fonts; the test has no business on the internet.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
    return context.newPage();
  };

  beforeAll(async () => {
    browser = await launchChromium();
    queues = openQueues(ctx().redis, ctx().prefix);
    await seed(queues);
    api = await startApi(queues);
    mkdirSync(OUTPUT_DIR, { recursive: true });
  }, 90_000);

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await api?.app.close();
    await queues?.close();
  });

  it('shows the operations page with what was seeded', async () => {
    const page = await signedIn(OPERATOR);
    const response = await page.goto(`${api.url}/admin`);
    expect(response?.status()).toBe(200);

    await expect.poll(() => page.title()).toBe('Relais operations');
    const alpha = page.locator('section#isp-alpha');
    const demo = page.locator('section#isp-demo');
    expect(await alpha.locator('h2').textContent()).toContain('Alpha Télécom');
    expect(await demo.locator('h2').textContent()).toContain('Demo FAI');
    expect(await alpha.locator('h2').textContent()).toContain('needs a look: 1 held snapshot');
    expect(await demo.locator('h2').textContent()).toContain(
      'last feed failed, 1 failed batch, 1 failed key delivery',
    );

    const held = alpha.locator('.held');
    expect(await held.textContent()).toContain('clients-20261116.xml');
    expect(await held.textContent()).toContain(HELD_REASON);
    expect(await held.textContent()).toMatch(/relais feeds approve feed_/);
    expect(await demo.locator('.held').count()).toBe(0);

    const feeds = await alpha.locator('table').first().textContent();
    expect(feeds).toContain('clients-20261115.xml');
    expect(feeds).toContain('1,995'); // records of the 15th
    expect(await demo.textContent()).toContain('FEED_COLUMNS_MISSING');

    const alphaText = await alpha.textContent();
    expect(alphaText).toContain('2026-11'); // current period
    expect(alphaText).toContain('19.70 EUR'); // total of 2026-10
    expect(alphaText).toContain('BILLED_NOT_ACTIVATED');
    expect(await demo.textContent()).toContain('6.00 EUR');

    for (const [ispId, periods] of Object.entries(CLOSED)) {
      const bars = page.locator(`section#isp-${ispId} svg.chart rect.bar`);
      expect(await bars.count(), ispId).toBe(periods.length);
      // Drawn, and taller for more licences: rendered heights follow the seeded counts.
      const heights: number[] = [];
      for (const bar of await bars.all()) heights.push((await bar.boundingBox())?.height ?? 0);
      expect(heights.every((h) => h > 0)).toBe(true);
      const ranked = (values: number[]) => values.map((v) => values.filter((o) => o < v).length);
      expect(ranked(heights)).toEqual(ranked(periods.map((p) => p.licences)));
      const licences = await bars.evaluateAll((rects) =>
        rects.map((r) => Number(r.getAttribute('data-licences'))),
      );
      expect(licences).toEqual(periods.map((p) => p.licences));
    }

    const provisioningRow = page.locator('table.queues tr', { hasText: 'provisioning' });
    // Queue, waiting, active, delayed, failed: the one job that failed for good.
    expect((await provisioningRow.locator('td').allTextContents()).slice(0, 5)).toEqual([
      'provisioning',
      '0',
      '0',
      '0',
      '1',
    ]);

    const file = join(OUTPUT_DIR, 'admin-operations.png');
    await page.screenshot({ path: file, fullPage: true });
    console.log(`screenshot of /admin: ${file}`);
  }, 60_000);

  it('shows the queues in Bull Board, with actions for an operator', async () => {
    const page = await signedIn(OPERATOR);
    await page.goto(`${api.url}/admin/queues`, { waitUntil: 'domcontentloaded' });
    for (const name of ['feeds', 'provisioning', 'delivery']) {
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 20_000 });
    }

    await page.goto(`${api.url}/admin/queues/queue/provisioning?status=failed`, {
      waitUntil: 'domcontentloaded',
    });
    await page.getByText('licensing server unavailable').first().waitFor({ timeout: 20_000 });
    expect(await page.getByRole('button', { name: /retry all/i }).count()).toBeGreaterThan(0);

    const file = join(OUTPUT_DIR, 'admin-queues.png');
    await page.screenshot({ path: file, fullPage: true });
    console.log(`screenshot of /admin/queues: ${file}`);
  }, 60_000);

  it('shows a viewer the same failed job without the buttons to act on it', async () => {
    const page = await signedIn(VIEWER);
    await page.goto(`${api.url}/admin/queues/queue/provisioning?status=failed`, {
      waitUntil: 'domcontentloaded',
    });
    await page.getByText('licensing server unavailable').first().waitFor({ timeout: 20_000 });
    expect(await page.getByRole('button', { name: /retry all/i }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /clean all/i }).count()).toBe(0);
  }, 60_000);
});
