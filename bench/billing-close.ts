/**
 * Billing period close benchmark: seeds N activated subscribers of demo-fai with one to three
 * modules each (bench/billing-data.ts, straight into both databases), then times
 * `closeBillingPeriod` (forced, for the month after the activations) and reading the frozen
 * lines back (`readRatedLines` and the NDJSON the API streams). Prints lines/s, subscribers/s,
 * CPU seconds of this process and of MariaDB (the whole server: other work on the machine
 * counts too), and the peak RSS of this process (seeding included).
 *
 * Target: the whole month-end pipeline must average 50,000 lines/s for 1M subscribers (about
 * 2M lines), so the close alone needs about 100,000 lines/s.
 *
 * Uses its own databases (relais_bench_close_<pid>_connector and _licensing, created, migrated
 * and dropped here) and a temporary folder. `--keep NAME` names them
 * relais_bench_close_NAME_* and keeps them, so a second run with the same NAME skips the
 * seeding (the close tables are emptied first).
 *
 * Run: npm run bench:billing-close -- [--count N] [--proration none|daily] [--page N]
 *      [--keep NAME]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { parse, stringify } from 'yaml';
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { closeBillingPeriod } from '../licensing/billing/close.js';
import { ratedLinesNdjson, readRatedLines } from '../licensing/billing/lines.js';
import type { LicensingDeps } from '../licensing/context.js';
import { openKeystore } from '../licensing/keystore.js';
import { createDb, type Db, dropDatabases, ensureDatabases } from '../platform/db.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { migrateLatest } from '../platform/migrations.js';
import { packageRoot } from '../platform/package-root.js';
import { seedBilling } from './billing-data.js';
import { cpuSeconds, mariadbPid } from './process-stats.js';

const ISP_ID = 'demo-fai';
const PERIOD = '2026-11';
const TARGET_CLOSE_LINES_PER_S = 100_000;

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    proration: { type: 'string', default: 'none' },
    page: { type: 'string' },
    keep: { type: 'string' },
  },
});
const count = Number(args.count);

function writeConfig(root: string): RelaisConfig {
  mkdirSync(join(root, 'isps'), { recursive: true });
  const name = args.keep ?? String(process.pid);
  const deployment = {
    mysql: {
      connectorDatabase: `relais_bench_close_${name}_connector`,
      licensingDatabase: `relais_bench_close_${name}_licensing`,
      poolMax: 8,
    },
    redis: { prefix: `benchclose${process.pid}` },
    paths: { dataDir: 'var' },
    log: { level: 'silent' },
  };
  writeFileSync(join(root, 'relais.yaml'), stringify(deployment));
  const isp = parse(readFileSync(join(packageRoot(), 'config', 'isps', `${ISP_ID}.yaml`), 'utf8'));
  isp.billing.proration = args.proration;
  writeFileSync(join(root, 'isps', `${ISP_ID}.yaml`), stringify(isp));
  return loadConfigOrThrow({ file: join(root, 'relais.yaml'), env: {} });
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const perS = (n: number, s: number) => `${Math.round(n / s).toLocaleString('en')}/s`;

async function seeded(db: Db): Promise<number> {
  const [found] = await db('subscriptions').count({ n: '*' });
  return Number(found?.n ?? 0);
}

/** Times `run` and reports this process's and MariaDB's CPU seconds over it. */
async function timed<T>(run: () => Promise<T>) {
  const maria = mariadbPid();
  const mariaBefore = cpuSeconds(maria);
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const result = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    result,
    seconds,
    nodeCpu: (cpu.user + cpu.system) / 1e6,
    mariaCpu: cpuSeconds(maria) - mariaBefore,
  };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'relais-bench-close-'));
  const config = writeConfig(root);
  const { mysql } = config.deployment;
  const redis = new Redis(config.deployment.redis.url, { lazyConnect: true });
  let licensing: Db | undefined;
  let connector: Db | undefined;
  try {
    if (!args.keep) await dropDatabases(mysql);
    await ensureDatabases(mysql);
    licensing = createDb(mysql, 'licensing');
    connector = createDb(mysql, 'connector');
    await migrateLatest(licensing, 'licensing');
    await migrateLatest(connector, 'connector');
    await syncIsps(connector, config.isps, silentLogger());
    const have = await seeded(licensing);
    if (have !== count) {
      if (have !== 0) throw new Error(`database holds ${have} subscribers, not ${count}`);
      const seeding = await timed(() =>
        seedBilling(licensing as Db, connector as Db, {
          ispId: ISP_ID,
          count,
          provisionedAt: '2026-10-05 09:00:00.000',
          activatedAt: '2026-10-10 18:30:00.000',
        }),
      );
      console.error(`  seeded ${count} subscribers in ${seeding.seconds.toFixed(1)} s`);
    }
    await licensing('rated_lines').delete();
    await licensing('billing_closes').delete();

    const deps: LicensingDeps = {
      config,
      db: licensing,
      redis,
      keystore: openKeystore(config.deployment.signing.keysDir),
      log: silentLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      now: () => new Date('2026-12-01T12:00:00Z'),
    };
    const close = await timed(() =>
      closeBillingPeriod(deps, ISP_ID, PERIOD, {
        force: true,
        ...(args.page ? { pageSubscribers: Number(args.page) } : {}),
      }),
    );
    const lines = close.result.summary.lineCount;
    const read = await timed(async () => {
      let n = 0;
      for await (const _ of readRatedLines(licensing as Db, ISP_ID, PERIOD)) n++;
      return n;
    });
    const ndjson = await timed(async () => {
      let bytes = 0;
      for await (const chunk of ratedLinesNdjson(licensing as Db, ISP_ID, PERIOD)) {
        bytes += Buffer.byteLength(chunk);
      }
      return bytes;
    });
    const peak = process.resourceUsage().maxRSS * 1024;
    console.log(
      [
        `billing close: ${count} subscribers, ${lines} lines, proration ${args.proration}, total ${close.result.summary.total} ${close.result.summary.currency}`,
        `  close ${close.seconds.toFixed(1)} s: ${perS(lines, close.seconds)} lines, ${perS(count, close.seconds)} subscribers (target >= ${TARGET_CLOSE_LINES_PER_S / 1000}k lines/s)`,
        `    CPU s: node ${close.nodeCpu.toFixed(1)}, MariaDB ${close.mariaCpu.toFixed(1)} (whole server)`,
        `  read back ${read.seconds.toFixed(1)} s: ${perS(read.result, read.seconds)} lines (node ${read.nodeCpu.toFixed(1)} s, MariaDB ${read.mariaCpu.toFixed(1)} s)`,
        `  NDJSON ${ndjson.seconds.toFixed(1)} s: ${perS(lines, ndjson.seconds)} lines, ${mb(ndjson.result)} (node ${ndjson.nodeCpu.toFixed(1)} s, MariaDB ${ndjson.mariaCpu.toFixed(1)} s)`,
        `  peak RSS ${mb(peak)} (whole process, seeding included)`,
      ].join('\n'),
    );
    if (read.result !== lines) throw new Error(`read ${read.result} lines, closed ${lines}`);
  } finally {
    await licensing?.destroy();
    await connector?.destroy();
    if (!args.keep) await dropDatabases(mysql).catch(() => {});
    redis.disconnect();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
