/**
 * The privacy boundary over a whole month (issue 7, "Privacy and tenant isolation"): the real
 * `relais demo` in a child process plays the demo month of the three example ISPs (CSV in
 * Windows-1252, namespaced XML, fixed-width deltas; a bad row, a held snapshot, keys by e-mail
 * and by return file, activations, a module added, a customer gone, the close, the vendor's
 * invoices, the invoice lines and the reconciliation) from samples in which every personal
 * field (customer ref, first name, last name, e-mail) holds a probe value nobody could write
 * by chance (`test/generators/privacy-samples.ts`). Then everything on the server's side of the
 * boundary is searched for every probe, in every form it could take (test/harness/privacy-scan.ts):
 *
 * - every cell of every table of the licensing database;
 * - every log line the demo wrote, at debug level, both sides (one process runs both);
 * - every command the demo sent to Redis during the run (job payloads included, even those
 *   removed once done), recorded with MONITOR on a Redis of this file's own, and every key left;
 * - every request the connector sent the subscription server and every answer, recorded by a
 *   proxy the connector is pointed at (`server.url`);
 * - every file of the vendor's output (`var/vendor-invoices/`).
 *
 * A hit fails the test and names where (table.column and row, log line, Redis command or key,
 * request path). Positive controls show the probes were really used and are found where they
 * belong: the connector's subscribers, the ISPs' return files and invoice lines, the mailboxes.
 *
 * Not scanned, on purpose: the demo's stdout (the operator's console narrates which customer
 * activates, by ref), the connector database and the ISP-side files, which hold refs by design.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import iconv from 'iconv-lite';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DEMO_ACTIVATIONS } from '../../cli/commands/demo.js';
import { packageRoot } from '../../platform/package-root.js';
import { JOB_NAMES } from '../../queue/queues.js';
import {
  BAD_REF,
  everyProbe,
  PROBE_DOMAIN,
  PROBE_LETTERS,
  PROBE_REF_PATTERN,
  type ProbeIsp,
  privacySampleFiles,
  probeOf,
  probeRef,
} from '../generators/privacy-samples.js';
import { type CliResult, collect, spawnCli } from '../harness/cli.js';
import { useTestContext } from '../harness/context.js';
import {
  databaseCells,
  dumpRedis,
  firstFindings,
  type PersonalValue,
  PersonalValues,
} from '../harness/privacy-scan.js';
import { type RecordingProxy, startRecordingProxy } from '../harness/recording-proxy.js';
import { type RedisServer, startRedisServer } from '../harness/redis-server.js';

const ISPS = Object.keys(PROBE_LETTERS) as ProbeIsp[];
const DEMO_TIMEOUT_MS = 170_000;

/** A shipped ISP config with its customer refs taking the probe pattern instead of 8 digits. */
function probeIspConfig(ispId: ProbeIsp): string {
  const config = parse(readFileSync(join(packageRoot(), `config/isps/${ispId}.yaml`), 'utf8'));
  config.intake.fields.customerRef.pattern = PROBE_REF_PATTERN;
  const reconciliation = config.billing?.reconciliation;
  if (reconciliation) reconciliation.fields.customerRef.pattern = PROBE_REF_PATTERN;
  return stringify(config);
}

/** Every personal value of the month, and the domain every e-mail shares. */
const PROBES = new PersonalValues([
  { kind: 'e-mail domain', value: PROBE_DOMAIN },
  { kind: 'rejected customer ref', value: BAD_REF },
  ...everyProbe().flatMap(({ probe }): PersonalValue[] => [
    { kind: 'customer ref', value: probe.ref },
    { kind: 'first name', value: probe.firstName },
    { kind: 'first name token', value: probe.firstName.split('-')[1] as string },
    { kind: 'last name', value: probe.lastName },
    { kind: 'last name token', value: probe.lastName.split('-')[1] as string },
    { kind: 'e-mail', value: probe.email },
    { kind: 'e-mail local part', value: probe.email.split('@')[0] as string },
  ]),
]);

/** The shipped demo's activations, as the probe customers they stand for. */
const ACTIVATIONS = DEMO_ACTIVATIONS.map((a) => ({
  ispId: a.ispId,
  ref: probeRef(a.ispId as ProbeIsp, a.ref),
}));

// Throw-away services first: their afterAll hooks then run after the context's cleanup.
const redisServer: RedisServer = await startRedisServer();
const proxy: RecordingProxy = await startRecordingProxy();
afterAll(async () => {
  await proxy.close();
  await redisServer.stop();
});

const shippedDeployment = parse(readFileSync(join(packageRoot(), 'config/relais.yaml'), 'utf8'));
const ctx = useTestContext({
  deployment: {
    billing: shippedDeployment.billing,
    redis: { url: redisServer.url },
    // The connector reaches the subscription server through the recording proxy.
    server: { url: proxy.url },
  },
  isps: Object.fromEntries(ISPS.map((id) => [id, probeIspConfig(id)])),
});

interface RedisCommand {
  n: number;
  args: string[];
}
const commands: RedisCommand[] = [];
let monitorClient: Redis | undefined;
let monitor: Redis | undefined;
let child: ChildProcess | undefined;
let run: CliResult;
let elapsedMs = 0;

const varDir = () => join(ctx().dir, 'var');
const samplesDir = () => join(ctx().dir, 'samples');

function writeSamples(): void {
  for (const file of privacySampleFiles()) {
    const path = join(samplesDir(), file.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.bytes);
  }
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** A file's lines as haystacks, read as UTF-8 and as Latin-1 (the ISPs' encodings). */
function fileLines(path: string): [string, string][] {
  const bytes = readFileSync(path);
  const texts = [bytes.toString('utf8'), iconv.decode(bytes, 'windows-1252')];
  const where = relative(ctx().dir, path);
  return texts.flatMap((text) =>
    text.split('\n').map((line, i): [string, string] => [`${where} line ${i + 1}`, line]),
  );
}

beforeAll(async () => {
  writeSamples();
  monitorClient = new Redis(redisServer.url);
  monitor = await monitorClient.monitor();
  monitor.on('monitor', (_time: string, args: string[]) => {
    commands.push({ n: commands.length + 1, args });
  });

  const started = Date.now();
  child = spawnCli([
    'demo',
    ...['--config', join(ctx().dir, 'relais.yaml')],
    ...['--samples', samplesDir()],
    ...['--activate', ACTIVATIONS.map((a) => `${a.ispId}:${a.ref}`).join(',')],
    ...['--log-level', 'debug'],
  ]);
  let seen = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    seen += chunk.toString();
    const api = /api at (http:\/\/127\.0\.0\.1:\d+)/.exec(seen)?.[1];
    if (api) proxy.setTarget(api);
  });
  run = await collect(child, DEMO_TIMEOUT_MS);
  elapsedMs = Date.now() - started;
  // The demo has exited: everything it sent is recorded; stop recording.
  monitor.disconnect();
  monitorClient.disconnect();
}, DEMO_TIMEOUT_MS + 10_000);

/** What the scans read, printed at the end (docs/reliability.md quotes it). */
const scanned: Record<string, number> = {};

afterAll(() => {
  console.info(`privacy month: ${PROBES.needles.length} needles searched in`, scanned);
  monitor?.disconnect();
  monitorClient?.disconnect();
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** `findings` as an assertion can show them: nothing when clean, else the first places. */
const report = (haystacks: Iterable<[string, string]>) => firstFindings(PROBES.scan(haystacks));

describe('the demo month with a probe in every personal field', () => {
  it('plays the whole month: feeds, rejects, the held snapshot, activations, closes', async () => {
    expect(run.code, `${run.stdout}\n${run.stderr.slice(-4000)}`).toBe(0);
    const feeds = await ctx().connectorDb('feeds').select('name', 'status', 'rejected');
    expect(feeds).toHaveLength(7);
    expect(feeds.every((f) => f.status === 'applied')).toBe(true);
    // The bad status, the e-mail that is not one, the ref that breaks the pattern.
    expect(
      feeds
        .filter((f) => f.rejected > 0)
        .map((f) => `${f.name} ${f.rejected}`)
        .sort(),
    ).toEqual(['abonnes_20261202.csv 2', 'clients-20261201.xml 1']);
    expect(run.stdout).toMatch(/HELD for approval/);
    const activated = await ctx().licensingDb('licences').whereNotNull('activated_at');
    expect(activated).toHaveLength(ACTIVATIONS.length);
    const closes = await ctx().licensingDb('billing_closes').where({ period: '2026-12' });
    expect(closes.map((c) => c.isp_id).sort()).toEqual([...ISPS].sort());
    expect(run.stdout).toMatch(/UNKNOWN_REF 1.*EXPORT_ROW_REJECTED 3/);
    console.info(`privacy month: the demo took ${(elapsedMs / 1000).toFixed(1)} s`);
  });

  it('stores no personal value in any cell of any table of the licensing database', async () => {
    const { licensingDb, config } = ctx();
    const cells = await databaseCells(licensingDb, config.deployment.mysql.licensingDatabase);
    const tables = new Set(cells.map(([where]) => where.split('.')[0]));
    for (const table of ['subscriptions', 'licences', 'subscription_events', 'rated_lines']) {
      expect(tables, table).toContain(table);
    }
    scanned.cells = cells.length;
    expect(report(cells)).toEqual([]);
  });

  it('logs no personal value: every line of the debug log of both sides', () => {
    const lines = run.stderr.split('\n').filter((line) => line.length > 0);
    const messages = new Set(lines.map((line) => (JSON.parse(line) as { msg: string }).msg));
    // Both sides spoke, so their silence about customers means something.
    for (const msg of ['feed applied', 'provisioning batch sent', 'provisioning batch applied']) {
      expect(messages, msg).toContain(msg);
    }
    // Info lines are there: the demo's default (warn) would have hidden them.
    expect(lines.filter((line) => line.includes('"level":"info"')).length).toBeGreaterThan(50);
    scanned.logLines = lines.length;
    expect(
      report(lines.map((line, i) => [`log line ${i + 1}: ${line.slice(0, 200)}`, line])),
    ).toEqual([]);
  });

  it('queues no personal value: no command sent to Redis in the month, no key left', async () => {
    expect(commands.length).toBeGreaterThan(1000);
    // The job payloads went through: BullMQ adds each job with a Lua script, its data an
    // argument. Every kind of job the month ran is among the commands (no push: no ingest job).
    for (const name of [JOB_NAMES.pollIsp, JOB_NAMES.provisionBatch, JOB_NAMES.deliverBatch]) {
      expect(
        commands.some((c) => c.args.some((a) => a.includes(name))),
        name,
      ).toBe(true);
    }
    expect(
      report(
        commands.map((c) => [
          `redis command ${c.n}: ${c.args.slice(0, 2).join(' ')}`,
          c.args.join(' '),
        ]),
      ),
    ).toEqual([]);
    const keys = await dumpRedis(ctx().redis, ctx().prefix);
    expect(keys.size).toBeGreaterThan(0);
    scanned.redisCommands = commands.length;
    scanned.redisKeys = keys.size;
    expect(report([...keys].map(([key, text]) => [`redis key ${key}`, text]))).toEqual([]);
  });

  it('sends the server no personal value: every request of the connector and every answer', async () => {
    const { exchanges } = proxy;
    const paths = exchanges.map((e) => e.path);
    const batches = await ctx().connectorDb('provisioning_batches').count({ n: '*' });
    expect(paths.filter((p) => p === '/v1/provisioning/batches').length).toBeGreaterThanOrEqual(
      Number(batches[0]?.n),
    );
    expect(paths).toContain('/v1/provisioning/deliveries');
    // Every ISP's invoice lines were read back from the server, each with its own token.
    const lineReads = exchanges.filter((e) => e.path === '/v1/billing/periods/2026-12/lines');
    expect(new Set(lineReads.map((e) => e.headers.authorization)).size).toBe(ISPS.length);
    expect(exchanges.every((e) => e.status < 500)).toBe(true);
    const haystacks = exchanges.flatMap((e, i): [string, string][] => {
      const where = `request ${i + 1} ${e.method} ${e.path}`;
      return [
        [`${where} (path and headers)`, `${e.path}\n${JSON.stringify(e.headers)}`],
        [`${where} (body)`, e.body.toString('utf8')],
        [
          `${where} (answer)`,
          `${JSON.stringify(e.responseHeaders)}\n${e.response.toString('utf8')}`,
        ],
      ];
    });
    scanned.requests = exchanges.length;
    expect(report(haystacks)).toEqual([]);
  });

  it("writes no personal value into the vendor's output files", () => {
    const files = filesUnder(join(varDir(), 'vendor-invoices'));
    for (const isp of ISPS) {
      expect(files.map((f) => relative(varDir(), f))).toContain(
        `vendor-invoices/${isp}/2026-12/invoice.xml`,
      );
    }
    scanned.vendorFiles = files.length;
    expect(report(files.flatMap(fileLines))).toEqual([]);
  });

  describe('positive controls: the probes were used, and found where they belong', () => {
    it('the connector holds every customer ref it was sent', async () => {
      const { connectorDb, config } = ctx();
      const cells = await databaseCells(connectorDb, config.deployment.mysql.connectorDatabase);
      const found = new Set(PROBES.scan(cells).flatMap((f) => f.found));
      for (const isp of ISPS) {
        const letter = PROBE_LETTERS[isp];
        expect(found).toContain(`customer ref ${probeOf(letter, 1).ref}`);
        expect(found).toContain(`customer ref ${probeOf(letter, 20).ref}`);
      }
    });

    it("the ISPs' files carry their customers: return files, invoice lines, mailboxes", () => {
      const ispFiles = filesUnder(join(varDir(), 'isps'));
      const mails = filesUnder(join(varDir(), 'demo', 'mailboxes'));
      const found = new Set(
        PROBES.scan([...ispFiles, ...mails].flatMap(fileLines)).flatMap((f) => f.found),
      );
      for (const a of ACTIVATIONS) expect(found).toContain(`customer ref ${a.ref}`);
      // alpha-telecom's keys went by e-mail, to the probe addresses of its export.
      expect(found).toContain(`e-mail ${probeOf('A', 1).email}`);
      // And the console names who activated: the values went all the way through.
      for (const a of ACTIVATIONS) expect(run.stdout).toContain(a.ref);
    });
  });
});
