/**
 * The ISP's SFTP server killed mid-transfer, under a running Relais (`startRelais`, role all,
 * schedules off so that only the test asks for work): a real OpenSSH server (test/harness/
 * sshd.ts) killed with SIGKILL, its sessions with it, then started again.
 *
 * - Mid-download: a poll job (as the scheduler adds it, default retries) downloads a large
 *   export; the server dies once a seeded share of it has arrived. The job fails with
 *   SFTP_TRANSFER_FAILED and BullMQ retries it on its own; the retry downloads the file whole
 *   and applies it once.
 * - Mid-upload: the month-end export (what the hourly schedule runs) uploads a large invoice
 *   line file to the ISP's SFTP outbox; the server dies once a seeded share of it is written.
 *   The export fails with SFTP_TRANSFER_FAILED, the ledger keeps the file `uploading`, and the
 *   next run delivers it once, byte for byte the file Relais wrote.
 *
 * Both sides are listed while the server is down and after the retry: no partial file ever
 * sits under a final name, neither in Relais' folders nor on the server.
 *
 * RELAIS_CHAOS_SEED picks the exports and the moments of the kills; printed on failure.
 */
import { createHash, randomInt } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RunningRelais } from '../../cli/commands/start.js';
import { periodOf, previousPeriod } from '../../licensing/periods.js';
import { newId } from '../../platform/ids.js';
import type { Lifecycle } from '../../platform/lifecycle.js';
import { packageRoot } from '../../platform/package-root.js';
import { exportDuePeriod } from '../../queue/billing-export.scheduler.js';
import { JOB_NAMES, pollJobId } from '../../queue/queues.js';
import { encode, generateCustomers, renderCsv, seededRandom } from '../generators/isp-exports.js';
import { createTestContext, type TestContext } from '../harness/context.js';
import { explainFailure, startLoggedRelais } from '../harness/logged-relais.js';
import { type SshdServer, sftpLoginOf, startSshd } from '../harness/sshd.js';
import { waitFor } from '../harness/wait.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? randomInt(1, 2 ** 31));
const random = seededRandom(SEED);
const ISP = 'sftp-fai';
/** Rated lines of the period exported: about 150 bytes each in the ISP's CSV. */
const LINES = 100_000;

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The shipped demo-fai config, polling and delivering through the test's SFTP server. */
function sftpFai(server: SshdServer): Record<string, unknown> {
  const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
  const login = sftpLoginOf(server);
  return {
    ...shipped,
    intake: {
      ...shipped.intake,
      transport: { ...login, inbox: server.inboxPath },
      schedule: { cron: '0 0 1 1 *' },
    },
    billing: {
      ...shipped.billing,
      outbox: {
        ...login,
        folder: server.outboxPath,
        checksumFile: true,
        doneMarker: '.done',
      },
    },
  };
}

let server: SshdServer;
let ctx: TestContext;
let lifecycle: Lifecycle;
let running: RunningRelais;
let logLines: string[] = [];

beforeAll(async () => {
  server = await startSshd();
  ctx = await createTestContext({
    deployment: { shutdownTimeoutMs: 10_000 },
    isps: { [ISP]: sftpFai(server) },
  });
  ({ running, lifecycle, logLines } = await startLoggedRelais(ctx.config, { schedules: false }));
});

afterAll(async () => {
  try {
    await lifecycle?.shutdown('sftp kill test done');
    await ctx?.cleanup();
  } finally {
    await server?.stop();
  }
});

/** Files (not folders) of a local folder, with their sizes; [] when it does not exist. */
function listing(dir: string): { name: string; sizeBytes: number }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => ({ name: entry.name, sizeBytes: statSync(join(dir, entry.name)).size }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

const workDir = () => ctx.config.isps.get(ISP)?.workDir as string;
const onServer = (...parts: string[]) => join(server.root, ...parts);

/** Writes a file on the server as the SFTP user would have uploaded it. */
function putOnServer(folder: string, name: string, bytes: Buffer): void {
  const path = onServer(folder, name);
  writeFileSync(path, bytes);
  const owner = statSync(onServer(folder));
  chownSync(path, owner.uid, owner.gid);
}

/** Kills the server once `probe` reports at least `bytes`; throws if `done` settles first. */
async function killWhen(probe: () => number, bytes: number, done: Promise<unknown>): Promise<void> {
  let settled = false;
  void done.finally(() => {
    settled = true;
  });
  while (!settled && probe() < bytes) await sleep(1);
  if (settled) throw new Error('the transfer ended before the kill: make the file larger');
  server.kill();
  isDown = true;
}

let isDown = false;

async function restartServer(): Promise<void> {
  await server.restart();
  isDown = false;
}

// A test that failed with the server down must not take the next one with it.
afterEach(async () => {
  if (isDown) await restartServer();
});

describe('the SFTP server killed mid-transfer', () => {
  it('mid-download: the poll job is retried on its own, the feed is applied once', async () => {
    explainFailure('sftp kill test', SEED, logLines);
    // 40 customers padded with blank lines to 24 MiB: long enough to die in the middle.
    const padding = `${' '.repeat(8 * 1024 - 2)}\r\n`.repeat(3 * 1024);
    const customers = encode(renderCsv(generateCustomers(40, SEED)), 'windows-1252');
    const bytes = Buffer.concat([customers, Buffer.from(padding)]);
    const name = 'abonnes_20261212.csv';
    putOnServer('inbox', name, bytes);
    const queues = running.runtime.queues;
    const job = await queues.feeds.add(
      JOB_NAMES.pollIsp,
      { ispId: ISP },
      { jobId: pollJobId(ISP, new Date()) },
    );
    const staging = join(workDir(), 'staging');
    const staged = () => listing(staging).reduce((n, f) => n + f.sizeBytes, 0);
    const firstFailure = waitFor('the first attempt to fail', async () => {
      const state = await queues.feeds.getJob(job.id as string);
      return state && state.attemptsMade >= 1 ? state : undefined;
    });
    await killWhen(staged, Math.floor(bytes.length * (0.05 + 0.8 * random())), firstFailure);

    const failed = await firstFailure;
    expect(failed.failedReason).toMatch(/^sftp download \/inbox\/abonnes_20261212\.csv failed/);
    const logged = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'feeds job failed');
    expect(logged).toMatchObject({ isp: ISP, err: { code: 'SFTP_TRANSFER_FAILED' } });
    // Nothing partial anywhere: not staged, not kept, not recorded; the server's file is whole.
    expect(listing(staging)).toEqual([]);
    expect(listing(join(workDir(), 'feeds'))).toEqual([]);
    expect(await ctx.connectorDb('feeds').where({ isp_id: ISP })).toEqual([]);
    expect(listing(onServer('inbox'))).toEqual([{ name, sizeBytes: bytes.length }]);
    expect(listing(onServer('inbox', 'processed'))).toEqual([]);

    await restartServer();
    await waitFor(
      'the retried poll job to complete',
      async () => ((await job.getState()) === 'completed' ? true : undefined),
      60_000,
    );
    const feeds = await ctx.connectorDb('feeds').where({ isp_id: ISP });
    expect(feeds).toHaveLength(1);
    const feed = feeds[0];
    expect(feed).toMatchObject({ name, status: 'applied', sha256: sha256(bytes) });
    expect([Number(feed.size_bytes), Number(feed.records)]).toEqual([bytes.length, 40]);
    expect(listing(staging)).toEqual([]);
    expect(listing(join(workDir(), 'feeds'))).toEqual([
      { name: `${feed.sha256}.feed`, sizeBytes: bytes.length },
    ]);
    expect(listing(onServer('inbox'))).toEqual([]);
    expect(listing(onServer('inbox', 'processed'))).toEqual([{ name, sizeBytes: bytes.length }]);
  });

  it('mid-upload: the invoice line file reaches the outbox once, whole, on the next run', async () => {
    explainFailure('sftp kill test', SEED, logLines);
    const isp = ctx.config.isps.get(ISP);
    if (!isp) throw new Error(`no ISP ${ISP}`);
    const now = new Date();
    const period = previousPeriod(periodOf(now, isp.timeZone));
    await seedClosedPeriod(period, LINES);
    const deps = {
      db: ctx.connectorDb,
      log: running.services.log,
      source: running.licensing.billing,
    };
    const fileName = `lignes_${ISP}_${period}.csv`;
    const local = join(workDir(), 'billing', period);
    const outbox = onServer('outbox');

    const first = exportDuePeriod(deps, isp, now).then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitFor('the local file to be written', async () =>
      existsSync(join(local, fileName)) ? true : undefined,
    );
    const size = statSync(join(local, fileName)).size;
    const uploaded = () => listing(outbox).reduce((n, f) => n + f.sizeBytes, 0);
    await killWhen(uploaded, Math.floor(size * (0.05 + 0.8 * random())), first);
    const err = await first;

    expect(err).toMatchObject({ code: 'SFTP_TRANSFER_FAILED', retryable: true });
    const ledger = await ctx.connectorDb('billing_deliveries').where({ isp_id: ISP, period });
    expect(ledger.map((r) => [r.file_name, r.status])).toEqual([[fileName, 'uploading']]);
    // The ISP sees no file under its final name, only the temporary one (or none).
    const partial = listing(outbox);
    expect(partial.map((f) => f.name).filter((n) => !n.endsWith('.part'))).toEqual([]);
    expect(partial.every((f) => f.sizeBytes < size)).toBe(true);
    // Relais' own copy is whole: written under a temporary name and renamed.
    expect(listing(local)).toEqual([{ name: fileName, sizeBytes: size }]);

    await restartServer();
    const retry = await exportDuePeriod(deps, isp, new Date());

    expect(retry).toMatchObject({ isp: ISP, period, outcome: 'exported', lines: LINES });
    const written = readFileSync(join(local, fileName));
    const delivered = readFileSync(join(outbox, fileName));
    expect(sha256(delivered)).toBe(sha256(written));
    expect(listing(outbox).map((f) => f.name)).toEqual([
      fileName,
      `${fileName}.done`,
      `${fileName}.sha256`,
    ]);
    const row = await ctx.connectorDb('billing_deliveries').where({ isp_id: ISP, period }).first();
    expect(row).toMatchObject({ status: 'delivered', attempts: 2, sha256: sha256(written) });
    // And the next hourly check only reads the ledger.
    expect(await exportDuePeriod(deps, isp, new Date())).toMatchObject({
      outcome: 'delivered-before',
    });
  });
});

/**
 * A closed period of `count` one-module lines, as the server's close leaves it (rated lines
 * and the close with its summary), and each line's subscriber on the connector side.
 */
async function seedClosedPeriod(period: string, count: number): Promise<void> {
  const at = new Date();
  const subscriberIds = Array.from({ length: count }, () => newId('sub'));
  for (let i = 0; i < count; i += 2_000) {
    const chunk = subscriberIds.slice(i, i + 2_000);
    await ctx.connectorDb('subscribers').insert(
      chunk.map((subscriberId, j) => ({
        isp_id: ISP,
        customer_ref: String(20_000_000 + i + j),
        subscriber_id: subscriberId,
        status: 'active',
        offer: 'SECU_ESSENTIEL',
        modules: 'antivirus',
        version: 1,
        created_at: at,
        updated_at: at,
      })),
    );
    await ctx.licensingDb('rated_lines').insert(
      chunk.map((subscriberId, j) => ({
        isp_id: ISP,
        period,
        line_id: `${period}/${String(i + j).padStart(6, '0')}/antivirus`,
        kind: 'charge',
        service_period: period,
        subscriber_id: subscriberId,
        licence_id: `lic_${subscriberId.slice(4)}`,
        module: 'antivirus',
        days: 30,
        days_in_period: 30,
        quantity: '1',
        unit_price: '1.20',
        amount: '1.20',
        currency: 'EUR',
        activation_event_id: i + j + 1,
        activated_at: at,
      })),
    );
  }
  const total = ((count * 120) / 100).toFixed(2);
  await ctx.licensingDb('billing_closes').insert({
    isp_id: ISP,
    period,
    status: 'closed',
    ledger_high_id: count,
    rules: '{}',
    line_count: count,
    summary: JSON.stringify({ currency: 'EUR', lineCount: count, total, totals: [] }),
    licences: count,
    started_at: at,
    closed_at: at,
  });
}
