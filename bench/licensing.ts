/**
 * Subscription server benchmark. Provisioning part: N new subscribers (default one million)
 * through the real queue and API, end to end: outbox rows of 1000 subscribe commands each (as
 * the intake writes them), flushOutbox to BullMQ, the provisioning worker sending each batch to
 * the api over HTTP, the server applying it, the worker sealing each key into a delivery row.
 * Timed from the flush until every batch is 'sent'. The api and the worker run as two processes
 * of the compiled code (bench/licensing-roles.ts), so each gets a core and its own peak RSS.
 * Target: >= 10,000 subscribers/s at N = 1M. The activation part (bench/activation.ts,
 * `runActivationBench`) runs after it on databases of its own.
 *
 * Uses its own databases (relais_bench_<pid>_connector and _licensing, created, migrated and
 * dropped here), its own Redis prefix and a temporary folder.
 *
 * Run: npm run bench:licensing -- [--subscribers N] [--concurrency C] [--only provisioning|activation]
 *      [--cpu-prof DIR (a V8 profile of the api and the worker)] [--no-build] [--tune-mariadb]
 *
 * `--tune-mariadb` (which `npm run bench:licensing` passes) gives MariaDB, for the provisioning
 * run only, the InnoDB buffer pool and redo log that docs/operations.md asks of a deployment
 * this size (2 GB each), and puts the server's own values back afterwards. With the 128 MB and
 * 96 MB defaults a million subscribers' indexes outgrow the pool and the run is disk-bound
 * (docs/provisioning-worker.md has both figures).
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { openVault } from '../connectors/vault.js';
import { openKeystore } from '../licensing/keystore.js';
import { commandKey, encodeCommands } from '../mappings/provisioning-command.js';
import { createDb, type Db, dropDatabases, ensureDatabases } from '../platform/db.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { migrateLatest } from '../platform/migrations.js';
import { packageRoot } from '../platform/package-root.js';
import { flushOutbox } from '../queue/outbox.js';
import { PROVISIONING_CONCURRENCY } from '../queue/provisioning.worker.js';
import { openQueues } from '../queue/queues.js';
import { deleteKeys } from '../test/harness/context.js';
import { runActivationBench } from './activation.js';
import { cpuSeconds, mariadbPid } from './process-stats.js';

const ISP_ID = 'demo-fai';
const BATCH_COMMANDS = 1000;
const TARGET_PER_S = 10_000;
const TARGET_SUBSCRIBERS = 1_000_000;
const ROLES_SCRIPT = join(packageRoot(), 'dist/bench/licensing-roles.js');

const { values: args } = parseArgs({
  options: {
    subscribers: { type: 'string', default: String(TARGET_SUBSCRIBERS) },
    concurrency: { type: 'string', default: String(PROVISIONING_CONCURRENCY) },
    'tune-mariadb': { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
  },
});
const subscribers = Number(args.subscribers);
const concurrency = Number(args.concurrency);
const parts = args.only ? [args.only] : ['provisioning', 'activation'];

function writeConfig(root: string): RelaisConfig {
  mkdirSync(join(root, 'isps'), { recursive: true });
  const deployment = {
    mysql: {
      connectorDatabase: `relais_bench_${process.pid}_connector`,
      licensingDatabase: `relais_bench_${process.pid}_licensing`,
      poolMax: 8,
    },
    redis: { prefix: `bench${process.pid}` },
    paths: { dataDir: 'var' },
    log: { level: 'silent' },
  };
  writeFileSync(join(root, 'relais.yaml'), stringify(deployment));
  copyFileSync(
    join(packageRoot(), 'config', 'isps', `${ISP_ID}.yaml`),
    join(root, 'isps', `${ISP_ID}.yaml`),
  );
  return loadConfigOrThrow({ file: join(root, 'relais.yaml'), env: {} });
}

async function freshDatabases(config: RelaisConfig): Promise<void> {
  const { mysql } = config.deployment;
  await dropDatabases(mysql);
  await ensureDatabases(mysql);
  for (const side of ['connector', 'licensing'] as const) {
    const db = createDb(mysql, side);
    await migrateLatest(db, side);
    await db.destroy();
  }
}

/** The outbox of a first load: `count` subscribes in batches of 1000, state pending. */
async function writeOutbox(db: Db, count: number): Promise<number> {
  const effectiveAt = new Date().toISOString();
  const offers = ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_INTEGRAL'];
  const modules = [['antivirus'], ['antivirus', 'firewall', 'parental-control']];
  let batches = 0;
  let rows: Record<string, unknown>[] = [];
  for (let done = 0; done < count; done += BATCH_COMMANDS) {
    const size = Math.min(BATCH_COMMANDS, count - done);
    const commands = Array.from({ length: size }, (_, i) => {
      const subscriberId = newId('sub');
      return {
        key: commandKey(subscriberId, 1),
        kind: 'subscribe' as const,
        subscriberId,
        version: 1,
        modules: modules[i % 2] as string[],
        status: 'active' as const,
        effectiveAt,
        offer: offers[i % 3],
      };
    });
    rows.push({
      isp_id: ISP_ID,
      feed_id: 'feed_bench',
      command_count: size,
      subscribes: size,
      commands: encodeCommands(commands),
      state: 'pending',
      created_at: new Date(),
    });
    batches++;
    if (rows.length === 20) {
      await db('provisioning_batches').insert(rows);
      rows = [];
    }
  }
  if (rows.length > 0) await db('provisioning_batches').insert(rows);
  return batches;
}

/** The kernel's high-water mark of a process's resident set (VmHWM). */
function peakRss(pid: number | string | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

async function startRole(argv: string[]): Promise<{ child: ChildProcess; message: unknown }> {
  const profileDir = args['cpu-prof'];
  const child = fork(ROLES_SCRIPT, argv, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  });
  const [message] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`bench ${argv[0]} exited with ${code} before it was ready`);
    }),
  ])) as [unknown];
  return { child, message };
}

async function stopRole(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await once(child, 'exit');
  clearTimeout(timer);
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

/**
 * What the whole server has done so far: its CPU time and InnoDB's I/O. The machine is shared
 * and its speed varies, so CPU seconds and bytes per subscriber compare runs better than the
 * wall time does (they are the whole server's, other work on it included).
 */
async function serverWork(db: Db): Promise<{ cpuS: number; readB: number; writtenB: number }> {
  const [rows] = (await db.raw(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_data_read', 'Innodb_data_written')",
  )) as [{ Variable_name: string; Value: string }[]];
  const value = (name: string) => Number(rows.find((r) => r.Variable_name === name)?.Value ?? 0);
  return {
    cpuS: cpuSeconds(mariadbPid()),
    readB: value('Innodb_data_read'),
    writtenB: value('Innodb_data_written'),
  };
}

/** The InnoDB sizes docs/operations.md asks of a deployment of a million subscribers. */
const TUNED_INNODB = {
  innodb_buffer_pool_size: 2 * 1024 ** 3,
  innodb_log_file_size: 2 * 1024 ** 3,
} as const;
type InnodbSizes = Record<keyof typeof TUNED_INNODB, number>;

async function innodbSizes(db: Db): Promise<InnodbSizes> {
  const [[row]] = (await db.raw(
    'SELECT @@innodb_buffer_pool_size AS innodb_buffer_pool_size, @@innodb_log_file_size AS innodb_log_file_size',
  )) as [[Record<keyof typeof TUNED_INNODB, number | string>]];
  return {
    innodb_buffer_pool_size: Number(row.innodb_buffer_pool_size),
    innodb_log_file_size: Number(row.innodb_log_file_size),
  };
}

/** Sets each size (both are dynamic in MariaDB 10.9 and later); resizing takes a moment. */
async function setInnodbSizes(db: Db, sizes: InnodbSizes): Promise<void> {
  for (const [name, bytes] of Object.entries(sizes)) {
    await db.raw(`SET GLOBAL ${name} = ${Number(bytes)}`);
  }
  const deadline = Date.now() + 120_000;
  for (;;) {
    const now = await innodbSizes(db);
    if (now.innodb_buffer_pool_size === sizes.innodb_buffer_pool_size) break;
    if (Date.now() > deadline) throw new Error('MariaDB did not resize its buffer pool in 2 min');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const describeSizes = (sizes: InnodbSizes) =>
  `innodb_buffer_pool_size ${mb(sizes.innodb_buffer_pool_size)}, innodb_log_file_size ${mb(sizes.innodb_log_file_size)}`;

async function runProvisioning(config: RelaisConfig, redis: Redis): Promise<boolean> {
  await freshDatabases(config);
  const db = createDb(config.deployment.mysql, 'connector');
  const children: ChildProcess[] = [];
  const serverSizes = await innodbSizes(db);
  let tuned = false;
  try {
    // The figures depend on them: a million subscribers' indexes outgrow MariaDB's defaults.
    if (args['tune-mariadb']) {
      // Restored in `finally` even if the resize itself fails half-way, and on Ctrl-C.
      tuned = true;
      process.once('SIGINT', () => {
        console.error('  interrupted: restoring MariaDB');
        void setInnodbSizes(db, serverSizes).finally(() => process.exit(130));
      });
      await setInnodbSizes(db, TUNED_INNODB);
      console.error(`  MariaDB set for the run to ${describeSizes(await innodbSizes(db))}`);
      console.error(`  (the server's own: ${describeSizes(serverSizes)}; restored afterwards)`);
    } else {
      console.error(`  MariaDB ${describeSizes(serverSizes)} (as the server runs)`);
    }
    const writeStarted = Date.now();
    const batches = await writeOutbox(db, subscribers);
    console.error(
      `  outbox: ${batches} batches of up to ${BATCH_COMMANDS} written in ${((Date.now() - writeStarted) / 1000).toFixed(1)} s`,
    );
    const configFile = config.deployment.configFile;
    const api = await startRole(['api', configFile]);
    children.push(api.child);
    const serverUrl = `http://127.0.0.1:${(api.message as { port: number }).port}`;
    const worker = await startRole(['worker', configFile, serverUrl, String(concurrency)]);
    children.push(worker.child);

    const queues = openQueues(redis, config.deployment.redis.prefix);
    const before = await serverWork(db);
    const roleCpuBefore = [cpuSeconds(api.child.pid), cpuSeconds(worker.child.pid)];
    const started = process.hrtime.bigint();
    await flushOutbox(db, queues, silentLogger());
    await queues.close();
    let lastReport = Date.now();
    for (;;) {
      const [nRow] = await db('provisioning_batches').count({ n: '*' }).whereNot({ state: 'sent' });
      const n = nRow?.n ?? 0;
      const left = Number(n);
      if (left === 0) break;
      const failed = await db('provisioning_batches').where({ state: 'failed' }).first();
      if (failed) throw new Error(`batch ${failed.id} failed: ${failed.last_error}`);
      if (worker.child.exitCode !== null || api.child.exitCode !== null) {
        throw new Error('a bench process died');
      }
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        const secs = Number(process.hrtime.bigint() - started) / 1e9;
        console.error(`  ${batches - left}/${batches} batches sent after ${secs.toFixed(0)} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const after = await serverWork(db);
    const apiCpu = cpuSeconds(api.child.pid) - (roleCpuBefore[0] ?? 0);
    const workerCpu = cpuSeconds(worker.child.pid) - (roleCpuBefore[1] ?? 0);
    const [dRow] = await db('deliveries').count({ d: '*' });
    const d = dRow?.d ?? 0;
    const rate = subscribers / seconds;
    const rss = { api: peakRss(api.child.pid), worker: peakRss(worker.child.pid) };
    const isTargetSize = subscribers === TARGET_SUBSCRIBERS;
    const met = rate >= TARGET_PER_S && Number(d) === subscribers;
    console.log(
      [
        `provisioning: ${subscribers} subscribers in ${batches} batches, worker concurrency ${concurrency}`,
        `  wall ${seconds.toFixed(1)} s, ${Math.round(rate).toLocaleString('en')} subscribers/s (target >= ${TARGET_PER_S / 1000}k/s${isTargetSize ? '' : ', stated for 1M'})`,
        `  delivery rows ${d}; peak RSS api ${mb(rss.api)}, worker ${mb(rss.worker)}, bench ${mb(peakRss('self'))}`,
        `  CPU s: api ${apiCpu.toFixed(1)}, worker ${workerCpu.toFixed(1)}, MariaDB ${(after.cpuS - before.cpuS).toFixed(1)} (whole server); InnoDB read ${mb(after.readB - before.readB)}, written ${mb(after.writtenB - before.writtenB)} (whole server)`,
        `  ${met ? 'ok' : isTargetSize ? 'MISSED' : 'below target (not checked below 1M)'}`,
      ].join('\n'),
    );
    return met || !isTargetSize;
  } finally {
    for (const child of children) await stopRole(child).catch(() => child.kill('SIGKILL'));
    if (tuned) {
      await setInnodbSizes(db, serverSizes);
      console.error(`  MariaDB restored to ${describeSizes(await innodbSizes(db))}`);
    }
    await db.destroy();
  }
}

/** The activation part: bench/activation.ts sets up its own databases and licences. */
async function runActivation(): Promise<boolean> {
  const results = await runActivationBench();
  return results.every((r) => r.meetsTarget);
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'relais-bench-licensing-'));
  const config = writeConfig(root);
  // Made here once, so the two processes never race to create the deployment's keys.
  openKeystore(config.deployment.signing.keysDir);
  openVault(config.deployment.signing.keysDir);
  if (!args['no-build']) {
    try {
      execFileSync('npm', ['run', 'build', '--silent'], { cwd: packageRoot(), stdio: 'inherit' });
    } catch (err) {
      // tsc still emits on type errors elsewhere in the tree; go on if our scripts are there.
      if (!existsSync(ROLES_SCRIPT)) throw err;
      console.error('build reported errors; running the compiled code that was emitted');
    }
  }
  const redis = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  let ok = true;
  try {
    console.log(
      `licensing bench: ${subscribers} subscribers; ${cpus().length} cpus (${cpus()[0]?.model}), node ${process.version}`,
    );
    if (parts.includes('provisioning')) ok = (await runProvisioning(config, redis)) && ok;
    if (parts.includes('activation')) ok = (await runActivation()) && ok;
    if (!ok) process.exitCode = 1;
  } finally {
    await dropDatabases(config.deployment.mysql).catch(() => {});
    await deleteKeys(redis, config.deployment.redis.prefix);
    redis.disconnect();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
