/**
 * Activation endpoint under load. Seeds licences straight into its own licensing database,
 * starts the api in this process (activation routes only, the real guard, MariaDB and Redis)
 * and loads it over 127.0.0.1 from a SECOND process running autocannon, mix by mix:
 *
 * - `first activations`: every request a different key on a new device (a locked transaction,
 *   a device row, two ledger events);
 * - `repeated activations`: keys already bound to the device asking (the fast path);
 * - `invalid keys`: half unknown well-formed keys, half mistyped (each a recorded failure);
 * - `mixed`: 70 % repeated, 10 % first, 20 % invalid.
 *
 * The guard's limits are raised in the bench config (one load address sends everything, and
 * the invalid mix would otherwise be locked out in five requests): each request still pays
 * the guard's Redis round trips, it just never trips. Targets: >= 1,000 activations/s with
 * p99 < 50 ms per mix. The CPU is shared with whatever else runs on the machine.
 *
 * Run: tsx bench/activation.ts [--licences N] [--duration S] [--connections C] [--quick]
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { activationRoutes } from '../api/activation.routes.js';
import { buildApi } from '../api/server.js';
import { loadConfigOrThrow } from '../config/load.js';
import { checkCharacter, generateKey } from '../licensing/activation-key.js';
import { openKeystore } from '../licensing/keystore.js';
import { createDb, dropDatabases, ensureDatabases } from '../platform/db.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { migrateLatest } from '../platform/migrations.js';
import { packageRoot } from '../platform/package-root.js';
import { deleteKeys } from '../test/harness/context.js';
import { seedLicences } from '../test/harness/seed-licences.js';

export interface ActivationBenchOptions {
  /** Licences activated by the first-activation mix (default 20,000). */
  licences?: number;
  /** Seconds each timed mix runs (default 10). */
  durationS?: number;
  /** Concurrent connections of the load process (default 16). */
  connections?: number;
  /** Print progress and the table to stderr (default true). */
  print?: boolean;
}

export interface MixResult {
  mix: string;
  requests: number;
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** Requests answered with another status than the mix expects, or not answered. */
  unexpected: number;
  statuses: Record<string, number>;
  meetsTarget: boolean;
}

export const TARGET_PER_S = 1000;
export const TARGET_P99_MS = 50;

interface Pair {
  key: string;
  fingerprint: string;
}

interface MixSpec {
  mix: string;
  /** Bodies: `first` are used once each, in order; `repeated` cycle; `invalid` are generated. */
  first: Pair[];
  repeated: Pair[];
  shares: { first: number; repeated: number; invalid: number };
  /** Requests to send (first activations), or seconds to run. */
  amount?: number;
  durationS?: number;
  expected: number[];
}

interface LoadSpec {
  url: string;
  connections: number;
  mixes: MixSpec[];
}

const fingerprintOf = (i: number) => `bench-device-${String(i).padStart(8, '0')}`;

function invalidKey(i: number): string {
  const body = generateKey().replace(/-/g, '').slice(0, 24);
  // Even: unknown but well-formed; odd: a wrong check character (a typo).
  const check = checkCharacter(body);
  return i % 2 === 0 ? body + check : body + (check === '0' ? '1' : '0');
}

/** The load process: runs each mix with autocannon and reports to the parent. */
async function runLoad(spec: LoadSpec): Promise<void> {
  const { default: autocannon } = await import('autocannon');
  const results: Omit<MixResult, 'meetsTarget'>[] = [];
  for (const mix of spec.mixes) {
    let firstAt = 0;
    let repeatedAt = 0;
    let invalidAt = 0;
    let draw = 0;
    const next = (): Pair => {
      draw += 1;
      const roll = (draw * 7919) % 100;
      const { shares } = mix;
      if (roll < shares.first * 100 && firstAt < mix.first.length) {
        return mix.first[firstAt++] as Pair;
      }
      if (roll < (shares.first + shares.repeated) * 100 && mix.repeated.length > 0) {
        return mix.repeated[repeatedAt++ % mix.repeated.length] as Pair;
      }
      if (shares.invalid > 0) {
        invalidAt += 1;
        return { key: invalidKey(invalidAt), fingerprint: fingerprintOf(invalidAt) };
      }
      return mix.repeated[repeatedAt++ % mix.repeated.length] as Pair;
    };
    const result = await autocannon({
      url: spec.url,
      connections: spec.connections,
      ...(mix.amount ? { amount: mix.amount } : { duration: mix.durationS ?? 10 }),
      requests: [
        {
          method: 'POST',
          path: '/v1/activations',
          headers: { 'content-type': 'application/json' },
          setupRequest: (request) => ({ ...request, body: JSON.stringify(next()) }),
        },
      ],
    });
    const statuses: Record<string, number> = {};
    for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) {
      statuses[status] = stat.count ?? 0;
    }
    const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
    const expected = mix.expected.reduce((sum, s) => sum + (statuses[String(s)] ?? 0), 0);
    results.push({
      mix: mix.mix,
      requests: answered,
      requestsPerS: answered / result.duration,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      unexpected: answered - expected + result.errors + result.timeouts,
      statuses,
    });
  }
  process.send?.(results);
}

async function load(spec: LoadSpec, specDir: string): Promise<MixResult[]> {
  const specFile = join(specDir, 'load.json');
  writeFileSync(specFile, JSON.stringify(spec));
  const tsx = pathToFileURL(join(packageRoot(), 'node_modules/tsx/dist/loader.mjs')).href;
  const child = fork(fileURLToPath(import.meta.url), ['--load', specFile], {
    execArgv: ['--import', tsx],
  });
  let results: MixResult[] | undefined;
  child.on('message', (m) => {
    results = (m as Omit<MixResult, 'meetsTarget'>[]).map((r) => ({
      ...r,
      meetsTarget: r.requestsPerS >= TARGET_PER_S && r.p99Ms < TARGET_P99_MS && r.unexpected === 0,
    }));
  });
  const [code] = await once(child, 'exit');
  if (code !== 0 || !results) throw new Error(`the load process failed (exit ${code})`);
  return results;
}

export async function runActivationBench(
  options: ActivationBenchOptions = {},
): Promise<MixResult[]> {
  const licences = options.licences ?? 20_000;
  const durationS = options.durationS ?? 10;
  const connections = options.connections ?? 16;
  const say = (line: string) => {
    if (options.print ?? true) process.stderr.write(`${line}\n`);
  };
  const root = mkdtempSync(join(tmpdir(), 'relais-bench-activation-'));
  mkdirSync(join(root, 'isps'));
  const huge = 100_000_000;
  writeFileSync(
    join(root, 'relais.yaml'),
    stringify({
      mysql: {
        connectorDatabase: `relais_bench_act_${process.pid}_connector`,
        licensingDatabase: `relais_bench_act_${process.pid}_licensing`,
      },
      redis: { prefix: `benchact${process.pid}` },
      paths: { dataDir: 'var' },
      log: { level: 'silent' },
      server: {
        activation: {
          perAddressPerMinute: huge,
          perKeyPrefixPerMinute: huge,
          lockoutAfterFailures: huge,
        },
      },
    }),
  );
  copyFileSync(
    join(packageRoot(), 'config/isps/demo-fai.yaml'),
    join(root, 'isps', 'demo-fai.yaml'),
  );
  const config = loadConfigOrThrow({ file: join(root, 'relais.yaml'), env: {} });
  const { mysql } = config.deployment;
  await ensureDatabases(mysql);
  const db = createDb(mysql, 'licensing');
  const redis = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  const metrics = createMetrics();
  const app = await buildApi({
    log: silentLogger(),
    metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [
      async (a) =>
        a.register(activationRoutes, {
          deps: {
            config,
            db,
            redis,
            keystore: openKeystore(config.deployment.signing.keysDir),
            log: silentLogger(),
            metrics,
            now: () => new Date(),
          },
        }),
    ],
  });
  try {
    await migrateLatest(db, 'licensing');
    const keystore = openKeystore(config.deployment.signing.keysDir);
    const reserve = Math.ceil(licences / 4);
    say(`seeding ${licences + reserve} licences...`);
    const seeded = await seedLicences(db, keystore.keyHashSecret, licences + reserve);
    const pairs = seeded.map((l, i) => ({ key: l.key, fingerprint: fingerprintOf(i) }));
    const first = pairs.slice(0, licences);
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    say(`api on ${url}; load from a second process, ${connections} connections`);
    const base = { first: [], repeated: first, durationS };
    const results = await load(
      {
        url,
        connections,
        mixes: [
          {
            mix: 'first activations',
            first,
            repeated: [],
            shares: { first: 1, repeated: 0, invalid: 0 },
            amount: first.length,
            expected: [200],
          },
          {
            ...base,
            mix: 'repeated activations',
            shares: { first: 0, repeated: 1, invalid: 0 },
            expected: [200],
          },
          {
            ...base,
            mix: 'invalid keys',
            shares: { first: 0, repeated: 0, invalid: 1 },
            expected: [404],
          },
          {
            ...base,
            mix: 'mixed 70/10/20',
            first: pairs.slice(licences),
            shares: { first: 0.1, repeated: 0.7, invalid: 0.2 },
            expected: [200, 404],
          },
        ],
      },
      root,
    );
    say('');
    say('mix                     requests    req/s   p50 ms   p99 ms  unexpected  target');
    for (const r of results) {
      say(
        `${r.mix.padEnd(22)} ${String(r.requests).padStart(9)} ${r.requestsPerS.toFixed(0).padStart(8)} ${r.p50Ms.toFixed(1).padStart(8)} ${r.p99Ms.toFixed(1).padStart(8)} ${String(r.unexpected).padStart(11)}  ${r.meetsTarget ? 'met' : 'MISSED'}`,
      );
      if (r.unexpected > 0) say(`  statuses: ${JSON.stringify(r.statuses)}`);
    }
    say(`target: >= ${TARGET_PER_S} activations/s and p99 < ${TARGET_P99_MS} ms per mix`);
    return results;
  } finally {
    await app.close();
    await db.destroy();
    await deleteKeys(redis, config.deployment.redis.prefix);
    redis.disconnect();
    await dropDatabases(mysql);
    rmSync(root, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({
    options: {
      load: { type: 'string' },
      licences: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string' },
      quick: { type: 'boolean', default: false },
    },
  });
  if (values.load) {
    await runLoad(JSON.parse(readFileSync(values.load, 'utf8')) as LoadSpec);
  } else {
    const results = await runActivationBench({
      licences: values.quick ? 2_000 : Number(values.licences ?? 20_000),
      durationS: values.quick ? 3 : Number(values.duration ?? 10),
      connections: Number(values.connections ?? 16),
    });
    process.exitCode = results.every((r) => r.meetsTarget) ? 0 : 1;
  }
}
