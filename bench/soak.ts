/**
 * Soak benchmark: Relais under a sustained mixed load for five minutes, to show it holds its
 * memory and answers without error while everything happens at once. Relais runs as three real
 * processes of the compiled code (`relais start --role api`, `--role worker`, `--role
 * scheduler`) on databases of their own; this process is the outside world, on 127.0.0.1:
 *
 * - the ISPs (bench/soak-feeds.ts): Demo FAI pushes its CSV list every 10 s and Bretagne Net
 *   its fixed-width changes every 5 s over the push API; Alpha Télécom drops its XML list in its
 *   inbox every 30 s (the scheduler polls it each minute) and has its keys mailed to a real SMTP
 *   relay here; every export changes offers and statuses and adds customers, so it provisions;
 * - the customers (bench/soak-load.ts): activations at a steady rate of the keys the connector
 *   delivered (read from the return files and the mails), a tenth typed wrong once first,
 *   reactivations, check-ins, download link opens and installer downloads, and a guesser;
 * - Prometheus: /metrics of the three processes every 10 s;
 * - the vendor's month end, half-way through: a forced billing close of the current month for
 *   each ISP (`relais period close --force`, a fourth process), Bretagne Net's with
 *   `--close-subscribers` activated subscribers seeded beforehand (200,000 by default).
 *
 * Recorded: requests by kind, every unexpected answer (there must be none), p50/p95/p99 per
 * kind over the run and during the close, warnings and errors the processes log, the RSS of
 * each process every 2 s, and once the load stops, that every feed was applied and every key
 * delivered. Checked bounds: no error; per process, RSS growth from the first to the last
 * minute of load < 50 MB and peak RSS < 300 MB. Exit code 1 when a bound is missed.
 *
 * Uses its own databases (relais_bench_soak_<pid>_connector and _licensing, created and
 * dropped here), its own Redis prefix and a temporary folder.
 *
 * Run: npm run bench:soak -- [--seconds S (default SOAK_SECONDS or 300)] [--seed N (default
 *      SOAK_SEED or 1)] [--close-subscribers N] [--no-build]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { parse, stringify } from 'yaml';
import { signPush } from '../api/feed-push.routes.js';
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { closableAt } from '../licensing/billing/close.js';
import { periodBounds, periodOf, previousPeriod } from '../licensing/periods.js';
import { createDb, type Db, dropDatabases } from '../platform/db.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { openQueues } from '../queue/queues.js';
import { seededRandom } from '../test/generators/isp-exports.js';
import { deleteKeys } from '../test/harness/context.js';
import { freePort } from '../test/harness/ports.js';
import { createTestRelay, type TestRelay } from '../test/harness/smtp.js';
import { seedBilling } from './billing-data.js';
import { DeltaFeeds, SnapshotFeeds } from './soak-feeds.js';
import { KeyHarvest, LoadGenerator, type Rates } from './soak-load.js';
import { type MemoryFigures, MemorySeries, Recorder, RssSampler } from './soak-stats.js';

const MAIN = join(packageRoot(), 'dist/cli/main.js');
const MB = 1024 * 1024;
const BOUND_GROWTH_B = 50 * MB;
const BOUND_PEAK_B = 300 * MB;
const RATES: Rates = {
  activate: 8,
  reactivate: 0.5,
  checkIn: 15,
  guess: 0.5,
  openLink: 3,
  installer: 1,
};
const PUSH_EVERY_MS = { 'demo-fai': 10_000, 'bretagne-net': 5_000 } as const;
const DROP_EVERY_MS = 30_000;
const SCRAPE_EVERY_MS = 10_000;
/** Initial customers per ISP: the first exports provision these before the timed load. */
const INITIAL = { 'demo-fai': 3000, 'alpha-telecom': 1000, 'bretagne-net': 1500 } as const;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: process.env.SOAK_SECONDS ?? '300' },
    seed: { type: 'string', default: process.env.SOAK_SEED ?? '1' },
    'close-subscribers': { type: 'string', default: '200000' },
    'no-build': { type: 'boolean', default: false },
  },
});
const durationMs = Number(args.seconds) * 1000;
const seed = Number(args.seed);
const closeSubscribers = Number(args['close-subscribers']);

const say = (line: string) => process.stderr.write(`${line}\n`);
const mb = (bytes: number) => (bytes / MB).toFixed(0);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Setup {
  root: string;
  configFile: string;
  config: RelaisConfig;
  secrets: Record<'demo-fai' | 'bretagne-net', string>;
  env: NodeJS.ProcessEnv;
  apiUrl: string;
  opsPorts: { worker: number; scheduler: number };
}

/** relais.yaml and the three ISP files: pushes for two, the inbox and mail for the third. */
async function writeConfig(relay: TestRelay): Promise<Setup> {
  const root = mkdtempSync(join(tmpdir(), 'relais-bench-soak-'));
  mkdirSync(join(root, 'isps'));
  const shipped = <T>(file: string) =>
    parse(readFileSync(join(packageRoot(), 'config', file), 'utf8')) as T;
  const port = await freePort();
  const opsPorts = { worker: await freePort(), scheduler: await freePort() };
  const deployment = {
    mysql: {
      connectorDatabase: `relais_bench_soak_${process.pid}_connector`,
      licensingDatabase: `relais_bench_soak_${process.pid}_licensing`,
    },
    redis: { prefix: `benchsoak${process.pid}` },
    // The load comes from one address; each simulated device names its own in X-Forwarded-For.
    http: { host: '127.0.0.1', port, trustProxy: true },
    paths: { dataDir: 'var' },
    log: { level: 'warn', pretty: false },
    shutdownTimeoutMs: 15_000,
    billing: shipped<{ billing: unknown }>('relais.yaml').billing,
  };
  writeFileSync(join(root, 'relais.yaml'), stringify(deployment));
  const secrets = {
    'demo-fai': randomBytes(24).toString('hex'),
    'bretagne-net': randomBytes(24).toString('hex'),
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RELAIS_CONFIG: '',
    SOAK_SECRET_DEMO_FAI: secrets['demo-fai'],
    SOAK_SECRET_BRETAGNE_NET: secrets['bretagne-net'],
  };
  for (const [id, variable] of [
    ['demo-fai', 'SOAK_SECRET_DEMO_FAI'],
    ['bretagne-net', 'SOAK_SECRET_BRETAGNE_NET'],
  ] as const) {
    const isp = shipped<{ intake: Record<string, unknown> }>(`isps/${id}.yaml`);
    isp.intake.transport = { type: 'http', secret: `\${${variable}}` };
    writeFileSync(join(root, 'isps', `${id}.yaml`), stringify(isp));
  }
  const alpha = shipped<{
    intake: Record<string, unknown>;
    delivery: { email: Record<string, unknown> };
  }>('isps/alpha-telecom.yaml');
  alpha.intake.schedule = { cron: '* * * * *' };
  alpha.delivery.email.smtp = { host: '127.0.0.1', port: relay.port };
  writeFileSync(join(root, 'isps', 'alpha-telecom.yaml'), stringify(alpha));
  const configFile = join(root, 'relais.yaml');
  const config = loadConfigOrThrow({ file: configFile, env: env as Record<string, string> });
  return { root, configFile, config, secrets, env, apiUrl: `http://127.0.0.1:${port}`, opsPorts };
}

function build(): void {
  try {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: packageRoot(), stdio: 'inherit' });
  } catch (err) {
    // tsc still emits on type errors elsewhere in the tree; go on if the CLI is there.
    if (!existsSync(MAIN)) throw err;
    say('build reported errors; running the compiled code that was emitted');
  }
}

/** Warnings and errors the Relais processes log (JSON lines at level warn and above). */
class LogWatch {
  readonly errors: string[] = [];
  readonly warnings = new Map<string, number>();

  follow(role: string, child: ChildProcess): void {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => this.read(role, line));
    }
  }

  private read(role: string, line: string): void {
    if (line.trim() === '') return;
    let entry: { level?: number; msg?: string; err?: { message?: string }; code?: string };
    try {
      entry = JSON.parse(line);
    } catch {
      this.warn(`${role}: ${line.slice(0, 160)}`);
      return;
    }
    const text = `${role}: ${entry.msg ?? ''}${entry.code ? ` (${entry.code})` : ''}`;
    if ((entry.level ?? 0) >= 50) this.errors.push(`${text} ${entry.err?.message ?? ''}`.trim());
    else if ((entry.level ?? 0) >= 40) this.warn(text);
  }

  private warn(text: string): void {
    this.warnings.set(text, (this.warnings.get(text) ?? 0) + 1);
  }
}

interface Role {
  name: 'api' | 'worker' | 'scheduler';
  child: ChildProcess;
  url: string;
  exited?: number | null;
}

async function waitReady(role: Role, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (role.child.exitCode !== null) throw new Error(`${role.name} exited before it was ready`);
    try {
      if ((await fetch(`${role.url}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${role.name} not ready after ${timeoutMs} ms`);
    await sleep(200);
  }
}

async function startRole(setup: Setup, logs: LogWatch, name: Role['name']): Promise<Role> {
  const argv = [MAIN, 'start', '--role', name, '--config', setup.configFile];
  const url = name === 'api' ? setup.apiUrl : `http://127.0.0.1:${setup.opsPorts[name]}`;
  if (name !== 'api') argv.push('--ops-port', String(setup.opsPorts[name]));
  const child = spawn(process.execPath, argv, {
    cwd: setup.root,
    env: setup.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const role: Role = { name, child, url };
  child.once('exit', (code) => {
    role.exited = code;
  });
  logs.follow(name, child);
  await waitReady(role, 60_000);
  return role;
}

async function stopRole(role: Role): Promise<number | null> {
  if (role.child.exitCode !== null) return role.child.exitCode;
  const exited = new Promise<number | null>((resolve) => role.child.once('exit', resolve));
  role.child.kill('SIGTERM');
  const timer = setTimeout(() => role.child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** A one-off relais command (migrate, period close); its output is kept. */
function runRelais(
  setup: Setup,
  argv: string[],
): Promise<{ code: number | null; out: string; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [MAIN, ...argv, '--config', setup.configFile], {
    cwd: setup.root,
    env: setup.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) => {
    child.once('close', (code) => resolve({ code, out, ms: performance.now() - started }));
  });
}

/** UTC `YYYY-MM-DD HH:MM:SS.000`, as the seeding SQL takes dates. */
const sqlTime = (date: Date) => date.toISOString().replace('T', ' ').replace('Z', '');

/**
 * Bretagne Net's subscribers for the close: provisioned and activated at the start of the
 * current month (two hours in, so the UTC date is in the month too), so last month's close
 * (the scheduler's, at start) rates none of them and this month's forced close rates all.
 */
async function seedCloseData(setup: Setup, connector: Db, licensing: Db): Promise<string> {
  const tz = setup.config.isps.get('bretagne-net')?.timeZone ?? 'Europe/Paris';
  const period = periodOf(new Date(), tz);
  const start = periodBounds(period, tz).start.getTime() + 2 * 3_600_000;
  await syncIsps(connector, setup.config.isps, silentLogger());
  if (closeSubscribers > 0) {
    await seedBilling(licensing, connector, {
      ispId: 'bretagne-net',
      count: closeSubscribers,
      provisionedAt: sqlTime(new Date(start)),
      activatedAt: sqlTime(new Date(start + 60_000)),
    });
  }
  return period;
}

/**
 * The scheduler closes each ISP's last period at start when its cutoff has passed; waits for
 * those closes, so they do not fall in the timed load.
 */
async function awaitStartupCloses(setup: Setup, licensing: Db): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (const isp of setup.config.isps.values()) {
    const last = previousPeriod(periodOf(new Date(), isp.timeZone));
    if (!isp.billing || closableAt(last, isp.timeZone, isp.billing.cutoffDays) > new Date())
      continue;
    while (Date.now() < deadline) {
      const row = await licensing('billing_closes').where({ isp_id: isp.id, period: last }).first();
      if (row?.status === 'closed') break;
      await sleep(500);
    }
  }
}

/** The ISPs' exports, sent through whichever generator and recorder are current. */
class Exports {
  readonly demo = new SnapshotFeeds('demo-fai', 'csv', INITIAL['demo-fai'], seed * 7 + 1);
  readonly alpha = new SnapshotFeeds(
    'alpha-telecom',
    'xml',
    INITIAL['alpha-telecom'],
    seed * 7 + 2,
  );
  readonly bretagne = new DeltaFeeds(INITIAL['bretagne-net'], seed * 7 + 3);
  pushes = 0;
  accepted = 0;
  drops = 0;

  private load: LoadGenerator | undefined;
  private recorder: Recorder | undefined;

  constructor(private readonly setup: Setup) {}

  /** Send and record through these from now on (the initial exports, then the timed load). */
  use(load: LoadGenerator, recorder: Recorder): void {
    this.load = load;
    this.recorder = recorder;
  }

  private through(): { load: LoadGenerator; recorder: Recorder } {
    if (!this.load || !this.recorder) throw new Error('exports used before use()');
    return { load: this.load, recorder: this.recorder };
  }

  /** Pushes the next export of a pushing ISP, signed as the ISP signs. */
  async push(ispId: 'demo-fai' | 'bretagne-net'): Promise<void> {
    const feeds = ispId === 'demo-fai' ? this.demo : this.bretagne;
    const { body } = feeds.next();
    const timestampS = Math.floor(Date.now() / 1000);
    this.pushes++;
    const answer = await this.through().load.request(
      `feed push (${ispId})`,
      `${this.setup.apiUrl}/v1/isps/${ispId}/feeds`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          'x-relais-timestamp': String(timestampS),
          'x-relais-signature': signPush(this.setup.secrets[ispId], timestampS, body),
          'x-relais-filename': `${ispId}-${this.pushes}.txt`,
        },
        body,
      },
      (status, text) => (status === 202 ? undefined : `status ${status}: ${text.slice(0, 300)}`),
    );
    if (answer?.status === 202) this.accepted++;
  }

  /** Drops Alpha Télécom's next list in its inbox, then the .done marker, as the ISP does. */
  drop(): void {
    const transport = this.setup.config.isps.get('alpha-telecom')?.intake.transport;
    const inbox = transport?.type === 'local' ? transport.inbox : undefined;
    if (!inbox) throw new Error('alpha-telecom has no inbox');
    const { recorder } = this.through();
    const sentAt = recorder.elapsedMs();
    const started = performance.now();
    mkdirSync(inbox, { recursive: true });
    const name = `clients-${String(++this.drops).padStart(5, '0')}.xml`;
    const part = join(inbox, `.${name}.part`);
    writeFileSync(part, this.alpha.next().body);
    renameSync(part, join(inbox, name));
    writeFileSync(join(inbox, `${name}.done`), '');
    recorder.record('inbox drop (alpha-telecom)', sentAt, performance.now() - started, 'file');
  }
}

interface EndState {
  feeds: Record<string, number>;
  batches: Record<string, number>;
  deliveries: Record<string, number>;
  failedJobs: number;
  activeDevices: number;
  settledInS: number;
}

const countBy = async (db: Db, table: string, column: string): Promise<Record<string, number>> => {
  const rows = (await db(table).select(column).count({ n: '*' }).groupBy(column)) as Record<
    string,
    string | number
  >[];
  return Object.fromEntries(rows.map((r) => [String(r[column]), Number(r.n)]));
};

/** Waits for the pipeline to finish what the load gave it, then reads where everything ended. */
async function settle(
  setup: Setup,
  connector: Db,
  licensing: Db,
  feedsSent: number,
): Promise<EndState> {
  const started = Date.now();
  const busy = async () => {
    const feeds = await countBy(connector, 'feeds', 'status');
    const recorded = Object.values(feeds).reduce((a, b) => a + b, 0);
    const batches = await countBy(connector, 'provisioning_batches', 'state');
    const deliveries = await countBy(connector, 'deliveries', 'state');
    return (
      Math.max(0, feedsSent - recorded) +
      (feeds.received ?? 0) +
      (feeds.parsing ?? 0) +
      (batches.pending ?? 0) +
      (batches.queued ?? 0) +
      (deliveries.pending ?? 0)
    );
  };
  while ((await busy()) > 0 && Date.now() - started < 150_000) await sleep(1000);
  const redis = new Redis(setup.config.deployment.redis.url, { maxRetriesPerRequest: null });
  const queues = openQueues(redis, setup.config.deployment.redis.prefix);
  let failedJobs = 0;
  for (const queue of [queues.feeds, queues.provisioning, queues.delivery]) {
    failedJobs += (await queue.getJobCounts('failed')).failed ?? 0;
  }
  await queues.close();
  redis.disconnect();
  const [devices] = await licensing('devices').where({ state: 'active' }).count({ n: '*' });
  return {
    feeds: await countBy(connector, 'feeds', 'status'),
    batches: await countBy(connector, 'provisioning_batches', 'state'),
    deliveries: await countBy(connector, 'deliveries', 'state'),
    failedJobs,
    activeDevices: Number(devices?.n ?? 0),
    settledInS: (Date.now() - started) / 1000,
  };
}

/** The end state's problems: anything not applied, sent or delivered, or a lost push. */
function endProblems(end: EndState, exports: Exports, load: LoadGenerator): string[] {
  const problems: string[] = [];
  const feedsTotal = Object.values(end.feeds).reduce((a, b) => a + b, 0);
  const unfinished = Object.entries(end.feeds).filter(([s]) => s !== 'applied');
  if (unfinished.length > 0) problems.push(`feeds not applied: ${JSON.stringify(end.feeds)}`);
  if (feedsTotal !== exports.accepted + exports.drops) {
    problems.push(
      `${feedsTotal} feeds in the ledger for ${exports.accepted} accepted pushes and ${exports.drops} drops`,
    );
  }
  if (Object.keys(end.batches).some((s) => s !== 'sent'))
    problems.push(`provisioning batches not sent: ${JSON.stringify(end.batches)}`);
  if (Object.keys(end.deliveries).some((s) => s !== 'delivered'))
    problems.push(`deliveries not delivered: ${JSON.stringify(end.deliveries)}`);
  if (end.failedJobs > 0) problems.push(`${end.failedJobs} failed jobs in the queues`);
  if (end.activeDevices !== load.activatedDevices) {
    problems.push(`${end.activeDevices} active devices for ${load.activatedDevices} activations`);
  }
  return problems;
}

/** Runs the forced billing close of `period` for each ISP, one after the other. */
async function closePeriod(
  setup: Setup,
  recorder: Recorder,
  period: string,
): Promise<{ fromMs: number; toMs: number; lines: string[] }> {
  const fromMs = recorder.elapsedMs();
  const lines: string[] = [];
  for (const isp of ['bretagne-net', 'demo-fai', 'alpha-telecom']) {
    const sentAt = recorder.elapsedMs();
    const result = await runRelais(setup, [
      'period',
      'close',
      '--isp',
      isp,
      '--period',
      period,
      '--force',
    ]);
    const summary = /billing closed: .*/.exec(result.out)?.[0] ?? result.out.trim().slice(-300);
    lines.push(`${isp} ${period} ${summary} (${(result.ms / 1000).toFixed(1)} s)`);
    recorder.record(
      'period close (cli)',
      sentAt,
      result.ms,
      String(result.code),
      result.code === 0
        ? undefined
        : `relais period close --isp ${isp} exited ${result.code}: ${result.out.slice(-500)}`,
    );
  }
  return { fromMs, toMs: recorder.elapsedMs(), lines };
}

function printFigures(title: string, figures: ReturnType<Recorder['figures']>): void {
  say(`\n${title}`);
  say(
    'kind                          requests    req/s   p50 ms   p95 ms   p99 ms   max ms  errors',
  );
  for (const f of figures) {
    say(
      `${f.kind.padEnd(28)} ${String(f.requests).padStart(9)} ${f.perS.toFixed(1).padStart(8)} ${f.p50Ms.toFixed(1).padStart(8)} ${f.p95Ms.toFixed(1).padStart(8)} ${f.p99Ms.toFixed(1).padStart(8)} ${f.maxMs.toFixed(0).padStart(8)} ${String(f.errors).padStart(7)}`,
    );
  }
}

/** Minute by minute: does anything drift? p99 of the customer requests, errors, RSS. */
function printMinutes(
  recorder: Recorder,
  rss: MemorySeries,
  seconds: number,
  roles: string[],
): void {
  say('\nminute by minute:');
  say(`minute  requests  activate p99  check-in p99  errors  RSS MB (${roles.join(', ')})`);
  for (let fromMs = 0; fromMs + 30_000 <= seconds * 1000; fromMs += 60_000) {
    const toMs = Math.min(seconds * 1000, fromMs + 60_000);
    const figures = recorder.figures(seconds, { fromMs, toMs });
    const p99 = (kind: string) => figures.find((f) => f.kind === kind)?.p99Ms.toFixed(1) ?? '-';
    const requests = figures.reduce((n, f) => n + f.requests, 0);
    const errors = figures.reduce((n, f) => n + f.errors, 0);
    const memory = roles.map((role) => mb(rss.at(role, toMs))).join(', ');
    say(
      `${String(fromMs / 60_000 + 1).padStart(6)} ${String(requests).padStart(9)} ${p99('activate').padStart(13)} ${p99('check-in').padStart(13)} ${String(errors).padStart(7)}  ${memory}`,
    );
  }
}

function rssVerdicts(rss: MemoryFigures[]): { lines: string[]; ok: boolean } {
  let ok = rss.length === 3;
  const lines = [
    'process     start MB   max MB   end MB  first-window max  last-window max  growth MB  bound',
  ];
  for (const r of rss) {
    const met = r.growthB < BOUND_GROWTH_B && r.maxB < BOUND_PEAK_B;
    ok &&= met;
    lines.push(
      `${r.role.padEnd(10)} ${mb(r.startB).padStart(9)} ${mb(r.maxB).padStart(8)} ${mb(r.endB).padStart(8)} ${mb(r.firstWindowMaxB).padStart(17)} ${mb(r.lastWindowMaxB).padStart(16)} ${mb(r.growthB).padStart(10)}  ${met ? 'PASS' : 'FAIL'}`,
    );
  }
  return { lines, ok };
}

/** What the phases of a run share. */
interface Run {
  setup: Setup;
  relay: TestRelay;
  logs: LogWatch;
  roles: Role[];
  connector: Db;
  licensing: Db;
  keys: KeyHarvest;
  exports: Exports;
  random: () => number;
  /** The month the forced close closes: the current one. */
  period: string;
}

/** Build, migrate, seed the close, start the three processes. */
async function prepare(setup: Setup, relay: TestRelay, run: Partial<Run>): Promise<Run> {
  if (!args['no-build']) build();
  const migrated = await runRelais(setup, ['migrate']);
  if (migrated.code !== 0) throw new Error(`relais migrate failed: ${migrated.out}`);
  const { mysql } = setup.config.deployment;
  const connector = createDb(mysql, 'connector');
  const licensing = createDb(mysql, 'licensing');
  Object.assign(run, { connector, licensing });
  const seeding = performance.now();
  const period = await seedCloseData(setup, connector, licensing);
  say(
    `  seeded ${closeSubscribers} activated bretagne-net subscribers for the close in ${((performance.now() - seeding) / 1000).toFixed(1)} s`,
  );
  const logs = new LogWatch();
  const roles: Role[] = [];
  run.roles = roles;
  for (const name of ['api', 'worker', 'scheduler'] as const)
    roles.push(await startRole(setup, logs, name));
  say(
    `  relais api ${setup.apiUrl}, worker and scheduler ops on ${setup.opsPorts.worker}, ${setup.opsPorts.scheduler}`,
  );
  const keys = new KeyHarvest(
    (['demo-fai', 'bretagne-net'] as const).map((ispId) => ({
      ispId,
      dir: join(setup.config.isps.get(ispId)?.workDir ?? '', 'outbox', 'keys'),
    })),
    { ispId: 'alpha-telecom', relay },
  );
  const random = seededRandom(seed);
  const exports = new Exports(setup);
  return { setup, relay, logs, roles, connector, licensing, keys, exports, random, period };
}

/**
 * The first export of each ISP provisions its initial customers; the timed load starts once
 * their keys are out and the scheduler's start-up closes are done.
 */
async function provisionInitial(run: Run): Promise<void> {
  const warmup = new Recorder();
  run.exports.use(new LoadGenerator(run.setup.apiUrl, warmup, run.keys, run.random), warmup);
  await run.exports.push('demo-fai');
  await run.exports.push('bretagne-net');
  run.exports.drop();
  const expected = Object.values(INITIAL).reduce((a, b) => a + b, 0);
  const started = performance.now();
  while (run.keys.harvested < expected && performance.now() - started < 300_000) {
    run.keys.collect();
    await sleep(1000);
  }
  say(
    `  initial exports: ${run.keys.harvested} of ${expected} keys delivered in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  await awaitStartupCloses(run.setup, run.licensing);
  if (warmup.errorCount > 0) {
    throw new Error(`initial exports failed: ${warmup.errorSamples.join('; ')}`);
  }
}

interface Timed {
  recorder: Recorder;
  generator: LoadGenerator;
  rss: RssSampler;
  /** V8 heap in use per process, from each /metrics scrape (nodejs_heap_size_used_bytes). */
  heap: MemorySeries;
  close?: Awaited<ReturnType<typeof closePeriod>>;
  seconds: number;
  loadAverage: { start: number; end: number };
}

/** The timed load: customers, ISPs and Prometheus at their rates, the close half-way. */
async function timedLoad(run: Run): Promise<Timed> {
  const { roles, keys, exports } = run;
  const recorder = new Recorder();
  const generator = new LoadGenerator(run.setup.apiUrl, recorder, keys, run.random);
  exports.use(generator, recorder);
  const pids = Object.fromEntries(roles.map((r) => [r.name, r.child.pid]));
  const rss = new RssSampler(pids, () => recorder.elapsedMs());
  const heap = new MemorySeries();
  const timed: Timed = {
    recorder,
    generator,
    rss,
    heap,
    seconds: 0,
    loadAverage: { start: 0, end: 0 },
  };
  timed.loadAverage.start = loadavg()[0] as number;
  rss.start();
  const scrape = () => {
    for (const role of roles) {
      const atMs = recorder.elapsedMs();
      void generator
        .request('metrics scrape', `${role.url}/metrics`, {}, (status) =>
          status === 200 ? undefined : `status ${status} from ${role.name}`,
        )
        .then((answer) => {
          const used = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(answer?.body ?? '')?.[1];
          if (used) heap.add(role.name, atMs, Number(used));
        });
    }
  };
  const progress = () => {
    const memory = rss.series.figures(60_000).map((f) => `${f.role} ${mb(f.endB)}`);
    say(
      `  ${(recorder.elapsedMs() / 1000).toFixed(0)} s: ${recorder.errorCount} errors, ${generator.activatedDevices} devices, ${keys.available} keys unused, RSS ${memory.join(', ')} MB`,
    );
  };
  const timers = [
    setInterval(() => void exports.push('demo-fai'), PUSH_EVERY_MS['demo-fai']),
    setInterval(() => void exports.push('bretagne-net'), PUSH_EVERY_MS['bretagne-net']),
    setInterval(() => exports.drop(), DROP_EVERY_MS),
    setInterval(scrape, SCRAPE_EVERY_MS),
    setInterval(() => keys.collect(), 2000),
    setInterval(progress, 30_000),
  ];
  const closing = sleep(durationMs / 2).then(async () => {
    timed.close = await closePeriod(run.setup, recorder, run.period);
  });
  const gone = new Set<string>();
  await generator.run(RATES, durationMs, () => {
    for (const role of roles) {
      if (role.exited === undefined || gone.has(role.name)) continue;
      gone.add(role.name);
      recorder.problem('process', `${role.name} exited with ${role.exited} during the load`);
    }
  });
  for (const timer of timers) clearInterval(timer);
  await closing;
  while (generator.pending > 0) await sleep(100);
  timed.seconds = recorder.elapsedMs() / 1000;
  rss.stop();
  timed.loadAverage.end = loadavg()[0] as number;
  return timed;
}

/** Lets the pipeline finish, checks where everything ended, stops the processes. */
async function finish(run: Run, timed: Timed): Promise<EndState> {
  const { exports, keys } = run;
  const { recorder } = timed;
  const end = await settle(
    run.setup,
    run.connector,
    run.licensing,
    exports.accepted + exports.drops,
  );
  keys.collect();
  const problems = endProblems(end, exports, timed.generator);
  if (keys.harvested !== end.deliveries.delivered) {
    problems.push(`${end.deliveries.delivered} keys delivered, ${keys.harvested} received`);
  }
  for (const problem of problems) recorder.problem('end state', problem);
  for (const role of run.roles.splice(0)) {
    const code = await stopRole(role);
    if (code !== 0) recorder.problem('process', `${role.name} stopped with exit code ${code}`);
  }
  return end;
}

/** Prints the figures; true when every bound holds. */
function report(run: Run, timed: Timed, end: EndState): boolean {
  const { recorder, generator, rss, close, seconds } = timed;
  const whole = recorder.figures(seconds);
  printFigures(`whole run (${seconds.toFixed(0)} s):`, whole);
  for (const f of whole.filter((k) =>
    Object.keys(k.statuses).some((c) => /^[3-5]\d\d$|^network$/.test(c)),
  )) {
    say(`  ${f.kind} answered: ${JSON.stringify(f.statuses)}`);
  }
  if (close) {
    const span = `${(close.fromMs / 1000).toFixed(1)}-${(close.toMs / 1000).toFixed(1)} s`;
    printFigures(`during the period close (${span}):`, recorder.figures(seconds, close));
    for (const line of close.lines) say(`  ${line}`);
  }
  printMinutes(recorder, rss.series, durationMs / 1000, ['api', 'worker', 'scheduler']);
  const skipped = [...generator.skipped].map(([k, n]) => `${k} ${n}`).join(', ');
  if (skipped) say(`\nticks with nothing to send (no key, device or link due yet): ${skipped}`);
  say(
    `\nkeys delivered ${run.keys.harvested} (churners' ${run.keys.skippedChurners} not used), devices activated ${generator.activatedDevices}`,
  );
  say(
    `end state after ${end.settledInS.toFixed(0)} s: feeds ${JSON.stringify(end.feeds)}, batches ${JSON.stringify(end.batches)}, deliveries ${JSON.stringify(end.deliveries)}, failed jobs ${end.failedJobs}, active devices ${end.activeDevices}`,
  );
  if (run.logs.warnings.size > 0) {
    say('\nwarnings logged:');
    for (const [text, n] of run.logs.warnings) say(`  ${n} × ${text}`);
  }
  const errors = recorder.errorCount + run.logs.errors.length;
  if (errors > 0) {
    say(`\nerrors (${errors}):`);
    for (const e of [...recorder.errorSamples, ...run.logs.errors].slice(0, 60)) say(`  ${e}`);
  }
  const windowMs = Math.min(60_000, durationMs / 4);
  const verdict = rssVerdicts(rss.series.figures(windowMs));
  say(`\nRSS every 2 s; windows of ${windowMs / 1000} s at each end:`);
  for (const line of verdict.lines) say(`  ${line}`);
  say('V8 heap in use, from the /metrics scrapes (not a bound, for reading RSS):');
  for (const h of timed.heap.figures(windowMs)) {
    say(
      `  ${h.role.padEnd(10)} start ${mb(h.startB)} MB, max ${mb(h.maxB)} MB, end ${mb(h.endB)} MB, first-window max ${mb(h.firstWindowMaxB)} MB, last-window max ${mb(h.lastWindowMaxB)} MB, growth ${mb(h.growthB)} MB`,
    );
  }
  const { loadAverage } = timed;
  say(
    `\nload average (1 min): ${loadAverage.start.toFixed(2)} at start, ${loadAverage.end.toFixed(2)} at end`,
  );
  say(
    `bounds: 0 errors: ${errors === 0 ? 'PASS' : 'FAIL'}; RSS growth < ${mb(BOUND_GROWTH_B)} MB and peak < ${mb(BOUND_PEAK_B)} MB per process: ${verdict.ok ? 'PASS' : 'FAIL'}`,
  );
  return errors === 0 && verdict.ok;
}

async function main(): Promise<void> {
  const relay = await createTestRelay();
  const setup = await writeConfig(relay);
  const partial: Partial<Run> = {};
  let ok = false;
  try {
    const average = loadavg().map((l) => l.toFixed(2));
    say(
      `soak bench: ${durationMs / 1000} s, seed ${seed}; ${cpus().length} cpus (${cpus()[0]?.model}), node ${process.version}; load average ${average.join(' ')}`,
    );
    const run = await prepare(setup, relay, partial);
    await provisionInitial(run);
    const timed = await timedLoad(run);
    const end = await finish(run, timed);
    ok = report(run, timed, end);
  } finally {
    for (const role of partial.roles ?? []) await stopRole(role);
    await partial.connector?.destroy();
    await partial.licensing?.destroy();
    await relay.stop();
    const redis = new Redis(setup.config.deployment.redis.url, { maxRetriesPerRequest: null });
    await deleteKeys(redis, setup.config.deployment.redis.prefix);
    redis.disconnect();
    await dropDatabases(setup.config.deployment.mysql).catch(() => {});
    rmSync(setup.root, { recursive: true, force: true });
    if (!ok) say(`seed ${seed} (SOAK_SEED=${seed} repeats this run)`);
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
