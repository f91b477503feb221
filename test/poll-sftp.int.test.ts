/**
 * Whole polls of an ISP's SFTP inbox on a real OpenSSH server: a file is downloaded, applied and
 * moved to processed/ on the server; a wrong host key and a server killed mid-download end in a
 * clear error with nothing received and the file left on the server for the next poll.
 */
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FeedLedger } from '../connectors/feed-ledger.js';
import { FeedFiles } from '../connectors/intake/feed-files.js';
import { createIntakeMetrics } from '../connectors/intake/intake-metrics.js';
import { type IntakeDeps, IntakeService } from '../connectors/intake/intake-service.js';
import { type PollResult, pollIsp } from '../connectors/intake/poll.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { fingerprintOf } from '../connectors/transports/sftp-host-key.js';
import { ConfigError, TransientError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { BUSY } from '../platform/named-lock.js';
import { packageRoot } from '../platform/package-root.js';
import { startFeedsWorker } from '../queue/feeds.worker.js';
import { JOB_NAMES, openQueues, type Queues } from '../queue/queues.js';
import { encode, generateCustomers, renderCsv } from './generators/isp-exports.js';
import { createTestContext, type TestContext } from './harness/context.js';
import { type SshdServer, startSshd } from './harness/sshd.js';

/** The shipped demo-fai config, polling the test server's inbox instead of a local folder. */
function sftpFai(server: SshdServer, hostKeyFingerprint: string): Record<string, unknown> {
  const base = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
  const transport = {
    type: 'sftp',
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.privateKey,
    hostKeyFingerprint,
    inbox: server.inboxPath,
    connectRetries: 0,
  };
  return { ...base, intake: { ...base.intake, transport } };
}

let server: SshdServer;
let ctx: TestContext;
let deps: IntakeDeps;
let intake: IntakeService;
const logLines: Record<string, unknown>[] = [];
const metrics = createMetrics({ defaultMetrics: false });

/** How many deliveries of `isp` the metrics count as refused with `code`. */
async function refusedCount(isp: string, code: string): Promise<number> {
  const metric = metrics.getSingleMetric('relais_deliveries_refused_total');
  const { values } = (await metric?.get()) ?? { values: [] };
  return values.find((v) => v.labels.isp === isp && v.labels.code === code)?.value ?? 0;
}

beforeAll(async () => {
  server = await startSshd();
  const wrongKey = fingerprintOf(randomBytes(51));
  ctx = await createTestContext({
    isps: {
      'sftp-fai': sftpFai(server, server.hostKeyFingerprint),
      'sftp-wrongkey': sftpFai(server, wrongKey),
    },
  });
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  await syncIsps(ctx.connectorDb, ctx.config.isps, log);
  const files = new FeedFiles((ispId) => ctx.config.isps.get(ispId)?.workDir ?? 'unused');
  const ledger = new FeedLedger(ctx.connectorDb);
  deps = { db: ctx.connectorDb, log, ledger, files, metrics: createIntakeMetrics(metrics) };
  intake = new IntakeService(deps, ctx.config);
});

afterAll(async () => {
  await ctx?.cleanup();
  await server?.stop();
});

/** Local path of a file in the server's inbox (or a subfolder of it). */
function onServer(...parts: string[]): string {
  return join(server.root, 'inbox', ...parts);
}

/** Writes a file into the server's inbox, owned by the SFTP user as if it had uploaded it. */
function putOnServer(name: string, bytes: Buffer): void {
  const path = onServer(name);
  writeFileSync(path, bytes);
  const owner = statSync(onServer());
  chownSync(path, owner.uid, owner.gid);
}

function serverFiles(folder = ''): string[] {
  const dir = onServer(folder);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => entry.name)
    .sort();
}

async function poll(ispId: string): Promise<PollResult> {
  const result = await pollIsp(deps, intake, intake.isp(ispId));
  if (result === BUSY) throw new Error(`poll of ${ispId} found the ISP busy`);
  return result;
}

async function feedCount(ispId: string): Promise<number> {
  return (await deps.ledger.list({ ispId, limit: 1_000 })).length;
}

async function subscriberCount(ispId: string): Promise<number> {
  const row = await ctx.connectorDb('subscribers').where({ isp_id: ispId }).count({ n: '*' });
  return Number(row[0]?.n);
}

/** Files in the ISP's local staging folder: downloads in progress or left behind. */
function stagedFiles(ispId: string): { name: string; sizeBytes: number }[] {
  const dir = join(ctx.config.isps.get(ispId)?.workDir as string, 'staging');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => ({ name: entry.name, sizeBytes: statSync(join(dir, entry.name)).size }));
}

const csv = (count: number, seed: number) =>
  encode(renderCsv(generateCustomers(count, seed)), 'windows-1252');

describe('pollIsp on an SFTP inbox', () => {
  it('downloads a file, applies it and moves it to processed/ on the server', async () => {
    const bytes = csv(35, 41);
    putOnServer('abonnes_20261210.csv', bytes);

    const result = await poll('sftp-fai');

    expect(result.received).toEqual([
      { name: 'abonnes_20261210.csv', feedId: expect.any(String), status: 'applied' },
    ]);
    const feed = await deps.ledger.get(result.received[0]?.feedId as string);
    expect(feed).toMatchObject({ source: 'sftp', status: 'applied', records: 35 });
    expect(await subscriberCount('sftp-fai')).toBeGreaterThan(0);
    expect(serverFiles()).toEqual([]);
    expect(serverFiles('processed')).toEqual(['abonnes_20261210.csv']);
    expect(readFileSync(onServer('processed', 'abonnes_20261210.csv'))).toEqual(bytes);
  });

  describe('when the server presents another host key', () => {
    // Both ISPs poll one inbox: the file kept for a person must not reach the next tests.
    afterAll(() => rmSync(onServer('abonnes_20261211.csv'), { force: true }));

    it('refuses it with SFTP_HOST_KEY_MISMATCH, receives nothing and leaves the file', async () => {
      putOnServer('abonnes_20261211.csv', csv(10, 42));
      const before = statSync(onServer('abonnes_20261211.csv'));

      const failure = poll('sftp-wrongkey');

      await expect(failure).rejects.toBeInstanceOf(ConfigError);
      await expect(failure).rejects.toMatchObject({
        code: 'SFTP_HOST_KEY_MISMATCH',
        context: { presented: server.hostKeyFingerprint },
      });
      expect(await feedCount('sftp-wrongkey')).toBe(0);
      expect(await refusedCount('sftp-wrongkey', 'SFTP_HOST_KEY_MISMATCH')).toBeGreaterThan(0);
      const after = statSync(onServer('abonnes_20261211.csv'));
      expect([after.size, after.mtimeMs]).toEqual([before.size, before.mtimeMs]);
      expect(stagedFiles('sftp-wrongkey')).toEqual([]);
    });

    it('fails the poll job at once, without retries, and logs the code', async () => {
      const queues: Queues = openQueues(ctx.redis, ctx.prefix);
      const connection = new Redis(ctx.config.deployment.redis.url, {
        maxRetriesPerRequest: null,
      });
      const worker = startFeedsWorker({
        config: ctx.config,
        intake,
        intakeDeps: deps,
        log: deps.log,
        connection,
        prefix: ctx.prefix,
      });
      try {
        const failed = new Promise<Job>((resolve) => {
          worker.on('failed', (job) => {
            if (job) resolve(job);
          });
        });
        await queues.feeds.add(
          JOB_NAMES.pollIsp,
          { ispId: 'sftp-wrongkey' },
          { jobId: 'poll-sftp-wrongkey-manual' },
        );

        const job = await failed;

        expect(job.attemptsMade).toBe(1);
        expect(await job.getState()).toBe('failed');
        expect(job.failedReason).toMatch(/^SFTP_HOST_KEY_MISMATCH: /);
        const line = logLines.find((l) => l.msg === 'feeds job failed');
        expect(line).toMatchObject({ jobId: 'poll-sftp-wrongkey-manual', isp: 'sftp-wrongkey' });
        expect(JSON.stringify(line)).toContain('SFTP_HOST_KEY_MISMATCH');
        expect(await feedCount('sftp-wrongkey')).toBe(0);
      } finally {
        await worker.close();
        await queues.close();
        connection.disconnect();
      }
    });
  });

  describe('when the server dies mid-download', () => {
    it('fails with SFTP_TRANSFER_FAILED, receives nothing, and the next poll takes the file', async () => {
      // The first file's customers padded with 24 MiB of blank lines: new content (not a
      // duplicate), no cancels (not held), and long enough to kill the server while it flows.
      const padding = `${' '.repeat(8 * 1024 - 2)}\r\n`.repeat(3 * 1024);
      const bytes = Buffer.concat([csv(35, 41), Buffer.from(padding)]);
      putOnServer('abonnes_20261212.csv', bytes);
      expect(serverFiles()).toEqual(['abonnes_20261212.csv']);
      const feedsBefore = await feedCount('sftp-fai');
      const subscribersBefore = await subscriberCount('sftp-fai');

      const failure = poll('sftp-fai').then(
        () => undefined,
        (err: unknown) => err,
      );
      let settled = false;
      failure.finally(() => {
        settled = true;
      });
      while (!settled && !stagedFiles('sftp-fai').some((f) => f.sizeBytes >= 256 * 1024)) {
        await sleep(2);
      }
      expect(settled).toBe(false); // else the file went through before the kill: make it larger
      server.kill();
      const err = await failure;

      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ code: 'SFTP_TRANSFER_FAILED' });
      expect(await refusedCount('sftp-fai', 'SFTP_TRANSFER_FAILED')).toBe(1);
      expect(await feedCount('sftp-fai')).toBe(feedsBefore);
      expect(await subscriberCount('sftp-fai')).toBe(subscribersBefore);
      expect(stagedFiles('sftp-fai')).toEqual([]);
      expect(serverFiles()).toEqual(['abonnes_20261212.csv']);
      expect(statSync(onServer('abonnes_20261212.csv')).size).toBe(bytes.length);

      await server.restart();
      const next = await poll('sftp-fai');

      expect(next.received).toMatchObject([{ name: 'abonnes_20261212.csv', status: 'applied' }]);
      const feed = await deps.ledger.get(next.received[0]?.feedId as string);
      expect(feed).toMatchObject({ status: 'applied', records: 35, sizeBytes: bytes.length });
      expect(serverFiles()).toEqual([]);
      expect(serverFiles('processed')).toContain('abonnes_20261212.csv');
      expect(await feedCount('sftp-fai')).toBe(feedsBefore + 1);
    });
  });
});
