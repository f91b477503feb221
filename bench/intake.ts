/**
 * Intake throughput and memory, end to end. Generates a snapshot of N customers (default one
 * million) as demo-fai's CSV and alpha-telecom's XML, plus the next day's with 1 % changed, and
 * runs each through the real pipeline (receive, read, map, validate, sort, diff, subscriber
 * writes, outbox rows, jobs in BullMQ): first into an empty ISP, then the next day's. Beside
 * them it measures the ceilings: the same format reader alone on the same file, and plain
 * multi-row INSERTs of N subscriber rows. Each case runs in a fresh child process
 * (bench/intake-case.ts), so its peak RSS (VmHWM) is its own.
 *
 * Uses its own databases (relais_bench_<pid>_connector and _licensing: created, migrated and
 * dropped here, so two benches never share them), its own Redis prefix and a temporary folder.
 * Targets (2-core machine, N = 1M): CSV first load >= 40k records/s, CSV 1 % diff >= 70k, XML
 * first load >= 25k, XML diff >= 40k; peak RSS < 300 MB per case at any N. The machine's speed
 * varies by a quarter from run to run: compare medians (`--runs 3`). `--quick` (20k customers)
 * checks the bench itself runs.
 *
 * Run: npm run bench:intake -- [--customers N] [--quick] [--formats csv,xml] [--runs R]
 *      [--cpu-prof DIR] [--data-dir DIR (generated files are kept there and reused)] [--feeds-only]
 *      [--delivery email (the ISPs deliver keys by e-mail: subscribes seal and store addresses)]
 */

import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { parse, stringify } from 'yaml';
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { createDb, dropDatabases, ensureDatabases } from '../platform/db.js';
import { migrateLatest } from '../platform/migrations.js';
import { packageRoot } from '../platform/package-root.js';
import { deleteKeys } from '../test/harness/context.js';
import type { CaseRequest, CaseResult } from './intake-case.js';
import { type BenchFormat, benchFiles } from './intake-data.js';

const QUICK_CUSTOMERS = 20_000;
const CASE_SCRIPT = join(packageRoot(), 'dist/bench/intake-case.js');
const ISP_OF: Record<BenchFormat, string> = { csv: 'demo-fai', xml: 'alpha-telecom' };
const RSS_LIMIT_BYTES = 300 * 1024 * 1024;
/** The size the speed targets are stated for. */
const TARGET_CUSTOMERS = 1_000_000;
const TARGETS: Record<string, number> = {
  'csv first load': 40_000,
  'csv 1 % diff': 70_000,
  'xml first load': 25_000,
  'xml 1 % diff': 40_000,
};

interface Row extends CaseResult {
  label: string;
  /** The ceiling case this one is compared with, by label. */
  ceilings: string[];
}

const { values: args } = parseArgs({
  options: {
    customers: { type: 'string' },
    quick: { type: 'boolean', default: false },
    formats: { type: 'string', default: 'csv,xml' },
    runs: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
    'data-dir': { type: 'string' },
    'feeds-only': { type: 'boolean', default: false },
    delivery: { type: 'string', default: 'return-file' },
  },
});
const customers = args.quick ? QUICK_CUSTOMERS : Number(args.customers ?? 1_000_000);
const formats = (args.formats as string).split(',') as BenchFormat[];
const runs = Number(args.runs);

/** A relais.yaml of the bench's own, with the two shipped ISPs it feeds. */
function writeConfig(root: string): RelaisConfig {
  mkdirSync(join(root, 'isps'), { recursive: true });
  const deployment = {
    mysql: {
      connectorDatabase: `relais_bench_${process.pid}_connector`,
      licensingDatabase: `relais_bench_${process.pid}_licensing`,
    },
    redis: { prefix: `bench${process.pid}` },
    paths: { dataDir: 'var' },
    log: { level: 'silent' },
  };
  writeFileSync(join(root, 'relais.yaml'), stringify(deployment));
  for (const isp of Object.values(ISP_OF)) {
    // Every ISP delivers the same way, whatever its shipped config says (Alpha Télécom's mails
    // its customers): e-mail delivery makes every subscribe seal and write its address
    // (nothing is sent here), which is what --delivery email measures.
    const config = parse(readFileSync(join('config', 'isps', `${isp}.yaml`), 'utf8'));
    const mail = { smtp: { host: '127.0.0.1' }, from: 'Bench <bench@example.org>' };
    config.delivery =
      args.delivery === 'email' ? { mode: 'email', email: mail } : { mode: 'return-file' };
    writeFileSync(join(root, 'isps', `${isp}.yaml`), stringify(config));
  }
  return loadConfigOrThrow({ file: join(root, 'relais.yaml'), env: {} });
}

/** Fresh databases, an empty feed store and no queued job: the state of a new deployment. */
async function resetState(config: RelaisConfig, redis: Redis): Promise<void> {
  const { mysql } = config.deployment;
  await dropDatabases(mysql);
  await ensureDatabases(mysql);
  for (const side of ['connector', 'licensing'] as const) {
    const db = createDb(mysql, side);
    await migrateLatest(db, side);
    await db.destroy();
  }
  rmSync(join(config.deployment.paths.dataDir, 'isps'), { recursive: true, force: true });
  await deleteKeys(redis, config.deployment.redis.prefix);
}

/**
 * Runs one case in a fresh child process and returns what it reported. The case runs the
 * compiled code under plain node, as a deployment does (tsx alone adds some 40 MB of RSS).
 */
async function runCase(request: CaseRequest): Promise<CaseResult> {
  const execArgv: string[] = [];
  if (args['cpu-prof']) execArgv.push('--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`);
  const child = fork(CASE_SCRIPT, [JSON.stringify(request)], { execArgv });
  let result: CaseResult | undefined;
  child.on('message', (message) => {
    result = message as CaseResult;
  });
  const [code] = await once(child, 'exit');
  if (code !== 0 || !result) throw new Error(`bench case ${request.kind} failed (exit ${code})`);
  return result;
}

async function runOnce(config: RelaisConfig, redis: Redis, dataDir: string): Promise<Row[]> {
  const configFile = config.deployment.configFile;
  const rows: Row[] = [];
  const record = (label: string, ceilings: string[], result: CaseResult) => {
    rows.push({ label, ceilings, ...result });
    console.error(`  ${label}: ${rate(result).toFixed(0)} records/s`);
  };
  const files = new Map<BenchFormat, Awaited<ReturnType<typeof benchFiles>>>();
  for (const format of formats) files.set(format, await benchFiles(dataDir, format, customers));

  for (const format of args['feeds-only'] ? [] : formats) {
    const ispId = ISP_OF[format];
    const file = files.get(format)?.first;
    record(`${format} parse`, [], await runCase({ kind: 'parse', configFile, ispId, file }));
  }
  if (!args['feeds-only']) {
    await resetState(config, redis);
    const ispId = ISP_OF[formats[0] as BenchFormat];
    record('insert', [], await runCase({ kind: 'insert', configFile, ispId, customers }));
  }

  for (const format of formats) {
    await resetState(config, redis);
    const ispId = ISP_OF[format];
    const { first, next } = files.get(format) as { first: string; next: string };
    const ceilings = [`${format} parse`, 'insert'];
    const firstLoad = await runCase({ kind: 'feed', configFile, ispId, file: first });
    record(`${format} first load`, ceilings, firstLoad);
    const diff = await runCase({ kind: 'feed', configFile, ispId, file: next });
    record(`${format} 1 % diff`, [`${format} parse`], diff);
  }
  return rows;
}

function rate(r: CaseResult): number {
  return r.records / r.seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** One row per case: the median of each figure over the runs. */
function medians(all: Row[][]): Row[] {
  return (all[0] as Row[]).map((first, i) => {
    const same = all.map((rows) => rows[i] as Row);
    const pick = (f: (r: Row) => number) => median(same.map(f));
    return {
      ...first,
      seconds: first.records / pick(rate),
      peakRssBytes: pick((r) => r.peakRssBytes),
    };
  });
}

function printTable(rows: Row[]): boolean {
  const byLabel = new Map(rows.map((r) => [r.label, r]));
  const head = ['case', 'records', 'wall s', 'records/s', 'peak RSS', 'jobs', 'commands'];
  head.push('read/diff/apply s');
  const lines = [[...head, 'of ceiling', 'target', '']];
  let allMet = true;
  for (const r of rows) {
    const ratios = r.ceilings.map((label) => {
      const ceiling = byLabel.get(label);
      return ceiling ? `${((rate(r) / rate(ceiling)) * 100).toFixed(0)} % ${label}` : '';
    });
    // Speed targets are stated for a million customers; the memory bound holds at any size.
    const target = customers === TARGET_CUSTOMERS ? TARGETS[r.label] : undefined;
    const isFeed = r.jobs !== undefined;
    const met =
      (target === undefined || rate(r) >= target) && (!isFeed || r.peakRssBytes < RSS_LIMIT_BYTES);
    if (!met) allMet = false;
    lines.push([
      r.label,
      String(r.records),
      r.seconds.toFixed(1),
      Math.round(rate(r)).toLocaleString('en'),
      `${(r.peakRssBytes / 1024 / 1024).toFixed(0)} MB`,
      r.jobs === undefined ? '' : String(r.jobs),
      r.commands === undefined ? '' : String(r.commands),
      r.phasesS
        ? [r.phasesS.read, r.phasesS.diff, r.phasesS.apply].map((x) => x.toFixed(1)).join(' / ')
        : '',
      ratios.join(', '),
      target === undefined ? (isFeed ? 'RSS < 300 MB' : '') : `>= ${target / 1000}k/s`,
      isFeed ? (met ? 'ok' : 'MISSED') : '',
    ]);
  }
  const widths = (lines[0] as string[]).map((_, c) =>
    Math.max(...lines.map((l) => l[c]?.length ?? 0)),
  );
  for (const line of lines) {
    console.log(
      line
        .map((cell, c) =>
          c === 0 || c >= 8 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number),
        )
        .join('  ')
        .trimEnd(),
    );
  }
  return allMet;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'relais-bench-'));
  const dataDir = args['data-dir'] ?? join(root, 'data');
  mkdirSync(dataDir, { recursive: true });
  const config = writeConfig(root);
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: packageRoot(), stdio: 'inherit' });
  const redis = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  try {
    console.log(
      `intake bench: ${customers} customers, ${formats.join(' + ')}, ${runs} run(s); ` +
        `${cpus().length} cpus (${cpus()[0]?.model}), node ${process.version}`,
    );
    const all: Row[][] = [];
    for (let run = 1; run <= runs; run++) {
      console.error(`run ${run} of ${runs}`);
      all.push(await runOnce(config, redis, dataDir));
    }
    if (runs > 1) console.log(`medians of ${runs} runs:`);
    const met = printTable(medians(all));
    if (args.quick) console.log('quick mode: the targets apply to 1M customers, not checked');
    else if (customers !== TARGET_CUSTOMERS) console.log('speed targets apply to 1M customers');
    if (!args.quick && !met) process.exitCode = 1;
  } finally {
    await dropDatabases(config.deployment.mysql).catch(() => {});
    await deleteKeys(redis, config.deployment.redis.prefix);
    redis.disconnect();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
