/**
 * Month-end benchmark, end to end: N activated subscribers with one to three modules each
 * (default 1,000,000, two modules on average) of the Demo FAI ISP; then, timed: close the
 * period on the subscription server (rate, freeze, vendor UBL invoice, HTML summary and detail
 * file), stream the rated lines to the connector over the real HTTP API, map them back to
 * customer refs, write the ISP's CSV and deliver it to its outbox. Target: at least 50,000
 * rated lines/s end to end with peak RSS under 300 MB (both sides in this one process).
 *
 *   npm run bench:billing [-- --subscribers 200000]
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { billingRoutes } from '../api/billing.routes.js';
import { buildApi } from '../api/server.js';
import { exportInvoiceLines } from '../billing/export.js';
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { closeAndInvoice } from '../licensing/billing/month-end.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { openKeystore } from '../licensing/keystore.js';
import { createDb, dropDatabases, ensureDatabases } from '../platform/db.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { migrateLatest } from '../platform/migrations.js';
import { packageRoot } from '../platform/package-root.js';
import { createBillingClient } from '../queue/billing-client.js';
import { seedBilling } from './billing-data.js';

const ISP_ID = 'demo-fai';
const TARGET_LINES_PER_S = 50_000;
const TARGET_RSS_MB = 300;

const { values: args } = parseArgs({
  options: { subscribers: { type: 'string', default: '1000000' } },
});
const subscribers = Number(args.subscribers);

function writeConfig(root: string): RelaisConfig {
  mkdirSync(join(root, 'isps'), { recursive: true });
  const shipped = parse(readFileSync(join(packageRoot(), 'config/relais.yaml'), 'utf8'));
  const deployment = {
    mysql: {
      connectorDatabase: `relais_bench_${process.pid}_connector`,
      licensingDatabase: `relais_bench_${process.pid}_licensing`,
    },
    paths: { dataDir: 'var' },
    log: { level: 'silent' },
    billing: { seller: shipped.billing.seller },
  };
  writeFileSync(join(root, 'relais.yaml'), stringify(deployment));
  copyFileSync(
    join(packageRoot(), 'config/isps', `${ISP_ID}.yaml`),
    join(root, 'isps', `${ISP_ID}.yaml`),
  );
  return loadConfigOrThrow({ file: join(root, 'relais.yaml'), env: {} });
}

const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'relais-bench-billing-'));
  const config = writeConfig(root);
  const { mysql } = config.deployment;
  const log = silentLogger();
  await dropDatabases(mysql);
  await ensureDatabases(mysql);
  const licensingDb = createDb(mysql, 'licensing');
  const connectorDb = createDb(mysql, 'connector');
  const keystore = openKeystore(config.deployment.signing.keysDir);
  const deps: LicensingDeps = {
    config,
    db: licensingDb,
    redis: undefined as never,
    keystore,
    log,
    metrics: createMetrics({ defaultMetrics: false }),
    now: () => new Date('2026-12-05T08:00:00Z'),
  };
  const app = await buildApi({
    log,
    metrics: createMetrics({ defaultMetrics: false }),
    readiness: [],
    bodyLimitBytes: 1024 * 1024,
    routes: [async (instance) => instance.register(billingRoutes, { deps })],
  });
  try {
    await migrateLatest(licensingDb, 'licensing');
    await migrateLatest(connectorDb, 'connector');
    await syncIsps(connectorDb, config.isps, log);
    console.log(
      `billing bench: ${subscribers} activated subscribers of ${ISP_ID}; ${cpus().length} cpus (${cpus()[0]?.model}), node ${process.version}`,
    );
    let t = process.hrtime.bigint();
    await seedBilling(licensingDb, connectorDb, {
      ispId: ISP_ID,
      count: subscribers,
      provisionedAt: '2026-10-03 10:00:00.000',
      activatedAt: '2026-10-10 18:30:00.000',
    });
    console.log(`  seeded in ${seconds(t).toFixed(1)} s (not timed)`);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const source = createBillingClient({
      baseUrl: base,
      tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
    });

    const start = process.hrtime.bigint();
    t = start;
    const closed = await closeAndInvoice(deps, ISP_ID, '2026-11', { force: true });
    const closeS = seconds(t);
    const lines = closed.summary.lineCount;
    console.log(
      `  close + vendor invoice: ${lines} lines in ${closeS.toFixed(1)} s, ${Math.round(lines / closeS)} lines/s (invoice ${closed.documents.invoice?.number}, ${closed.documents.invoice?.payable} EUR)`,
    );
    t = process.hrtime.bigint();
    const isp = config.isps.get(ISP_ID);
    if (!isp) throw new Error(`no ISP ${ISP_ID}`);
    const exported = await exportInvoiceLines({ db: connectorDb, log, source }, isp, '2026-11');
    const exportS = seconds(t);
    console.log(
      `  stream + map back + CSV + outbox: ${exported.lines} lines, ${((exported.file?.bytes ?? 0) / 1e6).toFixed(0)} MB in ${exportS.toFixed(1)} s, ${Math.round(exported.lines / exportS)} lines/s`,
    );
    const totalS = seconds(start);
    const perS = Math.round(lines / totalS);
    const rss = rssMb();
    const ok = perS >= TARGET_LINES_PER_S && rss < TARGET_RSS_MB;
    console.log(
      `  end to end: ${lines} rated lines in ${totalS.toFixed(1)} s = ${perS} lines/s (target ${TARGET_LINES_PER_S}); peak RSS ${rss} MB (target < ${TARGET_RSS_MB}) ${ok ? 'OK' : 'MISSED'}`,
    );
    if (!ok) process.exitCode = 1;
  } finally {
    await app.close();
    await Promise.all([licensingDb.destroy(), connectorDb.destroy()]);
    await dropDatabases(mysql).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
