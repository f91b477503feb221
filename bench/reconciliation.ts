/**
 * Reconciliation throughput and memory. Generates demo-fai's billing export for N customers
 * (default 1,020,500: 2 % are left out on purpose, so the export has a million lines, one per
 * customer billed; CSV, `;`, Windows-1252, decimal comma), N subscribers in the connector
 * database, and the vendor's rated lines of the period (one per module, 1 to 4 per customer,
 * in scattered ref order as the server streams them by subscriber id), with about 1 % of each
 * kind of discrepancy. Then reconciles in a fresh child process, so that its peak RSS (VmHWM)
 * is its own, and prints export lines per second of wall time and of CPU time (a busy machine
 * inflates wall time far more).
 *
 * Uses its own database (relais_bench_recon_<pid>_connector, created, migrated and dropped
 * here) and a temporary folder. Target (2-core machine, 1M lines): >= 50,000 export lines/s,
 * peak RSS flat in N (under 300 MB). `--quick` (20k customers) checks the bench runs.
 *
 * Run: npm run bench:reconcile -- [--customers N] [--quick] [--keep] [--cpu-prof DIR]
 *      (env BENCH_CHUNK: sort chunk size; BENCH_LOG=info: the run's log lines on stdout)
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import iconv from 'iconv-lite';
import { stringify } from 'yaml';
import type { IspInvoiceLine } from '../billing/invoice-line.js';
import { reconcilePeriod } from '../billing/reconciliation/reconcile.js';
import { loadConfigOrThrow } from '../config/load.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { createDb, dropDatabases, ensureDatabases } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { migrateLatest } from '../platform/migrations.js';
import { packageRoot } from '../platform/package-root.js';

const PERIOD = '2026-12';
const TARGET_LINES_PER_S = 50_000;
const RSS_LIMIT_BYTES = 300 * 1024 * 1024;
const OFFERS = ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_INTEGRAL'] as const;
const MODULES: Record<(typeof OFFERS)[number], string[]> = {
  SECU_ESSENTIEL: ['antivirus'],
  SECU_FAMILLE: ['antivirus', 'firewall', 'parental-control'],
  SECU_INTEGRAL: ['antivirus', 'backup', 'firewall', 'parental-control'],
};
const RETAIL: Record<(typeof OFFERS)[number], string> = {
  SECU_ESSENTIEL: '3,99',
  SECU_FAMILLE: '8,49',
  SECU_INTEGRAL: '11,49',
};
const VENDOR_PRICE: Record<string, string> = {
  antivirus: '1.20',
  firewall: '0.80',
  'parental-control': '0.90',
  backup: '1.50',
};

interface CaseRequest {
  dir: string;
  file: string;
  customers: number;
}

interface CaseResult {
  seconds: number;
  /** CPU time of the case (user + system), which a busy machine inflates less than wall time. */
  cpuSeconds: number;
  linesPerS: number;
  peakRssBytes: number;
  counts: Record<string, number>;
}

const refOf = (i: number) => String(10_000_000 + i);
const offerOf = (i: number) => OFFERS[i % 3] as (typeof OFFERS)[number];
/** What each customer is, so that every category shows up (about 1 % each). */
const kindOf = (i: number) =>
  i % 100 < 93
    ? 'match'
    : (['forgot', 'unknown', 'never', 'price', 'module', 'bad', 'missing'][
        (i % 100) - 93
      ] as string);

/** A permutation of 0..n-1 that scatters refs, as subscriber ids (random) order them. */
function scattered(n: number): (k: number) => number {
  const step = 7_919;
  return (k) => (k * step) % n;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

async function writeExport(file: string, customers: number): Promise<number> {
  const out = createWriteStream(file);
  let text = 'N° client;Nom;Prénom;Article;Libellé;Montant TTC;Période\r\n';
  let lines = 0;
  for (let i = 0; i < customers; i++) {
    const kind = kindOf(i);
    if (kind === 'forgot' || kind === 'missing') continue;
    const ref = kind === 'unknown' ? String(90_000_000 + i) : refOf(i);
    const offer = kind === 'module' ? 'SECU_INTEGRAL' : offerOf(i);
    const amount = kind === 'price' ? '9,99' : kind === 'bad' ? '3.99 EUR' : RETAIL[offer];
    text += `${ref};Lefèvre;Zoé;${offer};Sécurité;${amount};12/2026\r\n`;
    lines++;
    if (text.length > 1 << 16) {
      if (!out.write(iconv.encode(text, 'windows-1252'))) await once(out, 'drain');
      text = '';
    }
  }
  out.end(iconv.encode(text, 'windows-1252'));
  await once(out, 'finish');
  return lines;
}

async function insertSubscribers(db: ReturnType<typeof createDb>, customers: number) {
  const now = "'2026-12-01 00:00:00.000'";
  for (let start = 0; start < customers; start += 5_000) {
    const values: string[] = [];
    for (let i = start; i < Math.min(customers, start + 5_000); i++) {
      const offer = offerOf(i);
      const modules = MODULES[offer].join(',');
      values.push(
        `('demo-fai','${refOf(i)}','sub_${i.toString(36).padStart(26, '0')}','active','${offer}','${modules}',${now},1,NULL,${now},${now})`,
      );
    }
    await db.raw(
      `INSERT INTO subscribers (isp_id, customer_ref, subscriber_id, status, offer, modules, effective_at, version, last_feed_id, created_at, updated_at) VALUES ${values.join(',')}`,
    );
  }
}

/** The vendor's lines of the period, in subscriber-id order (scattered refs). */
async function* vendorLines(customers: number): AsyncGenerator<IspInvoiceLine> {
  const at = scattered(customers);
  for (let k = 0; k < customers; k++) {
    const i = at(k);
    const kind = kindOf(i);
    if (kind === 'never' || kind === 'missing') continue;
    const ref = refOf(i);
    for (const module of MODULES[offerOf(i)]) {
      yield {
        lineId: `rl_${i}_${module}`,
        kind: 'charge',
        period: PERIOD,
        servicePeriod: PERIOD,
        ispId: 'demo-fai',
        customerRef: ref,
        subscriberId: `sub_${i.toString(36).padStart(26, '0')}`,
        licenceId: `lic_${i}`,
        module,
        days: 31,
        daysInPeriod: 31,
        quantity: '1',
        unitPrice: VENDOR_PRICE[module] as string,
        amount: VENDOR_PRICE[module] as string,
        currency: 'EUR',
        activationEventId: `ev_${i}`,
        activatedAt: '2026-11-02T10:00:00.000Z',
      };
    }
  }
}

function configFiles(dir: string, database: string): string {
  const file = join(dir, 'relais.yaml');
  writeFileSync(
    file,
    stringify({
      mysql: { connectorDatabase: database, licensingDatabase: `${database}_unused`, poolMax: 3 },
      paths: { dataDir: 'var', ispConfigDir: 'isps' },
      log: { level: 'silent' },
    }),
  );
  const isps = join(dir, 'isps');
  mkdirSync(isps, { recursive: true });
  const shipped = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'));
  writeFileSync(join(isps, 'demo-fai.yaml'), shipped);
  return file;
}

function peakRssBytes(): number {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return process.resourceUsage().maxRSS * 1024;
  }
}

async function runCase(request: CaseRequest): Promise<CaseResult> {
  const config = loadConfigOrThrow({ file: join(request.dir, 'relais.yaml'), env: {} });
  const isp = config.isps.get('demo-fai');
  if (!isp) throw new Error('demo-fai config missing');
  const db = createDb(config.deployment.mysql, 'connector');
  const log = createLogger({ level: process.env.BENCH_LOG === 'info' ? 'info' : 'silent' });
  try {
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    const result = await reconcilePeriod(
      { db, log },
      {
        isp,
        period: PERIOD,
        file: request.file,
        vendorLines: vendorLines(request.customers),
        sortChunkSize: process.env.BENCH_CHUNK ? Number(process.env.BENCH_CHUNK) : undefined,
      },
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    return {
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      linesPerS: Math.round(result.exportLines / seconds),
      peakRssBytes: peakRssBytes(),
      counts: result.counts,
    };
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      customers: { type: 'string' },
      quick: { type: 'boolean' },
      keep: { type: 'boolean' },
      case: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
  });
  if (args.case) {
    const result = await runCase(JSON.parse(args.case) as CaseRequest);
    process.send?.(result);
    return;
  }
  // 2 % of customers are missing from the export on purpose: 1,020,500 give a 1M-line export.
  let customers = args.quick ? 20_000 : Number(args.customers ?? 1_020_500);
  // The scattering permutation needs a step coprime with N.
  while (gcd(customers, 7_919) !== 1) customers++;
  const dir = mkdtempSync(join(tmpdir(), 'relais-bench-recon-'));
  const database = `relais_bench_recon_${process.pid}_connector`;
  const relaisYaml = configFiles(dir, database);
  const config = loadConfigOrThrow({ file: relaisYaml, env: {} });
  const mysql = config.deployment.mysql;
  await ensureDatabases(mysql);
  const db = createDb(mysql, 'connector');
  try {
    await migrateLatest(db, 'connector');
    await syncIsps(db, config.isps, createLogger({ level: 'silent' }));
    const file = join(dir, 'facturation_202612.csv');
    let t = Date.now();
    const lines = await writeExport(file, customers);
    process.stdout.write(`export: ${lines} lines written in ${Date.now() - t} ms\n`);
    t = Date.now();
    await insertSubscribers(db, customers);
    process.stdout.write(`subscribers: ${customers} inserted in ${Date.now() - t} ms\n`);

    const child = fork(import.meta.filename, ['--case', JSON.stringify({ dir, file, customers })], {
      execArgv: args['cpu-prof']
        ? [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`]
        : process.execArgv,
    });
    const [result] = (await once(child, 'message')) as [CaseResult];
    await once(child, 'exit');
    const rssMb = (result.peakRssBytes / 1024 / 1024).toFixed(0);
    process.stdout.write(
      `reconcile: ${lines} export lines in ${result.seconds.toFixed(2)} s = ${result.linesPerS} lines/s (CPU ${result.cpuSeconds.toFixed(2)} s = ${Math.round(lines / result.cpuSeconds)} lines per CPU second), peak RSS ${rssMb} MB, load average ${loadavg()[0]?.toFixed(1)}\n`,
    );
    process.stdout.write(`categories: ${JSON.stringify(result.counts)}\n`);
    const fast = result.linesPerS >= TARGET_LINES_PER_S;
    const small = result.peakRssBytes < RSS_LIMIT_BYTES;
    process.stdout.write(
      `targets: >= ${TARGET_LINES_PER_S} lines/s ${fast ? 'met' : 'MISSED'}, RSS < 300 MB ${small ? 'met' : 'MISSED'}\n`,
    );
  } finally {
    await db.destroy();
    await dropDatabases(mysql);
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
