/**
 * kill -9 at every step of the intake, then a restart: the end state must be that of one clean
 * run. Each crash case has its own ISP (same config, same files) so its state can be compared
 * with the clean ISP's: subscribers, commands (by customer, since subscriber ids are random),
 * outbox batches and queued jobs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { decodeCommands } from '../mappings/provisioning-command.js';
import { packageRoot } from '../platform/package-root.js';
import { openQueues } from '../queue/queues.js';
import {
  encode,
  generateCustomers,
  nextDay,
  renderCsv,
  seededRandom,
} from './generators/isp-exports.js';
import { collect, runCli, spawnCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const CASES = [
  'feed-received',
  'feed-read',
  'batch-committed:1',
  'batch-committed:2',
  'feed-applied',
  'outbox-added',
] as const;
const ispOf = (point: string) => `crash-${point.replace(':', '-')}`;
/** Points hit while the next day's snapshot is applied from its change list (not streamed). */
const NEXT_DAY_CASES = ['feed-read', 'batch-committed:1', 'feed-applied'] as const;
const nextDayIspOf = (point: string) => `crash2-${point.replace(':', '-')}`;
/** Points hit while a first load out of ref order is sorted, then applied while diffed. */
const SHUFFLED_CASES = ['feed-read', 'batch-committed:1', 'batch-committed:2'] as const;
const shuffledIspOf = (point: string) => `crash3-${point.replace(':', '-')}`;

const ctx = useTestContext({
  isps: Object.fromEntries(
    [
      'clean',
      'timed',
      ...CASES.map(ispOf),
      ...NEXT_DAY_CASES.map(nextDayIspOf),
      ...SHUFFLED_CASES.map(shuffledIspOf),
    ].map((id) => [id, demo]),
  ),
});

const CUSTOMERS = 5_000; // ten batches of 500, in transactions of four, four and two
const day1 = [...generateCustomers(CUSTOMERS, 51)];
const day2 = [...nextDay(day1, CUSTOMERS, 0.05, 52)];

function files(): { day1: string; day2: string; shuffled1: string } {
  const dir = join(ctx().dir, 'exports');
  mkdirSync(join(dir, 'shuffled'), { recursive: true });
  const paths = {
    day1: join(dir, 'abonnes_1.csv'),
    day2: join(dir, 'abonnes_2.csv'),
    shuffled1: join(dir, 'shuffled', 'abonnes_1.csv'),
  };
  writeFileSync(paths.day1, encode(renderCsv(day1), 'windows-1252'));
  writeFileSync(paths.day2, encode(renderCsv(day2), 'windows-1252'));
  const random = seededRandom(53);
  const shuffled = day1.map((c) => ({ c, key: random() })).sort((a, b) => a.key - b.key);
  writeFileSync(paths.shuffled1, encode(renderCsv(shuffled.map(({ c }) => c)), 'windows-1252'));
  return paths;
}

function ingest(isp: string, file: string, crashPoint?: string) {
  const env: Record<string, string> = crashPoint ? { RELAIS_CRASH_POINT: crashPoint } : {};
  return runCli(['ingest', file, '--isp', isp, '--config', join(ctx().dir, 'relais.yaml')], {
    env,
  });
}

/** Everything a run leaves behind, with subscriber ids replaced by the refs they stand for. */
async function endState(isp: string) {
  const db = ctx().connectorDb;
  const subscribers = await db('subscribers')
    .where({ isp_id: isp })
    .select('customer_ref', 'subscriber_id', 'status', 'modules', 'offer', 'version');
  const refOf = new Map(subscribers.map((s) => [s.subscriber_id, s.customer_ref]));
  const feeds = await db('feeds')
    .where({ isp_id: isp })
    .whereNot({ status: 'duplicate' })
    .orderBy('received_at');
  // A cancel by absence takes effect when its snapshot was received, which differs from run to
  // run: name the feed instead of its clock time.
  const receipts = new Map(
    feeds.map((f, i) => [new Date(f.received_at).toISOString(), `received(feed ${i + 1})`]),
  );
  const batches = await db('provisioning_batches').where({ isp_id: isp }).orderBy('id');
  const commands = batches
    .flatMap((b) => decodeCommands(b.commands))
    .map((c) => {
      const at = receipts.get(c.effectiveAt) ?? c.effectiveAt;
      return `${refOf.get(c.subscriberId)} v${c.version} ${c.kind} ${c.status} ${c.modules} ${at}`;
    })
    .sort();
  const keys = batches.flatMap((b) => decodeCommands(b.commands).map((c) => c.key));
  const queues = openQueues(ctx().redis, ctx().prefix);
  const jobs = await queues.provisioning.getJobs(['waiting', 'delayed', 'prioritized', 'active']);
  await queues.close();
  const batchIds = new Set(batches.map((b) => Number(b.id)));
  const jobsOfIsp = jobs.filter((j) => batchIds.has(j.data.batchId));
  return {
    subscribers: subscribers
      .map((s) => `${s.customer_ref} ${s.status} ${s.modules} ${s.offer} v${s.version}`)
      .sort(),
    commands,
    uniqueKeys: new Set(keys).size === keys.length,
    feeds: feeds.map((f) => ({
      name: f.name,
      status: f.status,
      records: f.records,
      applied: f.applied,
      subscribes: f.subscribes,
      changes: f.changes,
      suspends: f.suspends,
      resumes: f.resumes,
      cancels: f.cancels,
    })),
    batchesQueued: batches.every((b) => b.state === 'queued'),
    jobsPerBatch:
      jobsOfIsp.length === batches.length &&
      new Set(jobsOfIsp.map((j) => j.id)).size === batches.length,
    commandsInBatches: batches.reduce((n, b) => n + Number(b.command_count), 0),
  };
}

async function batchCount(isp: string): Promise<number> {
  const row = await ctx()
    .connectorDb('provisioning_batches')
    .where({ isp_id: isp })
    .count({ n: '*' });
  return Number(row[0]?.n);
}

describe('a crash at any point of the intake', () => {
  let paths: ReturnType<typeof files>;
  let clean: Awaited<ReturnType<typeof endState>>;

  it('has a clean run to compare with', async () => {
    paths = files();
    expect((await ingest('clean', paths.day1)).code).toBe(0);
    expect((await ingest('clean', paths.day2)).code).toBe(0);
    clean = await endState('clean');
    expect(clean.subscribers.length).toBeGreaterThan(CUSTOMERS * 0.9);
    expect(clean.commands.length).toBe(clean.commandsInBatches);
    expect(clean.uniqueKeys && clean.batchesQueued && clean.jobsPerBatch).toBe(true);
  }, 60_000);

  it.each(CASES)(
    'kill -9 at %s, then a restart, ends as one clean run',
    async (point) => {
      const isp = ispOf(point);
      const crashed = await ingest(isp, paths.day1, point);
      expect(crashed.signal).toBe('SIGKILL');
      const restarted = await ingest(isp, paths.day1);
      expect(restarted.code, restarted.stderr).toBe(0);
      expect((await ingest(isp, paths.day2)).code).toBe(0);
      expect(await endState(isp)).toEqual(clean);
    },
    60_000,
  );

  it.each(NEXT_DAY_CASES)(
    'kill -9 at %s of the next day, then a restart, ends as one clean run',
    async (point) => {
      const isp = nextDayIspOf(point);
      expect((await ingest(isp, paths.day1)).code).toBe(0);
      const crashed = await ingest(isp, paths.day2, point);
      expect(crashed.signal).toBe('SIGKILL');
      const restarted = await ingest(isp, paths.day2);
      expect(restarted.code, restarted.stderr).toBe(0);
      expect(await endState(isp)).toEqual(clean);
    },
    60_000,
  );

  it.each(SHUFFLED_CASES)(
    'kill -9 at %s of a first load out of ref order, then a restart, ends as one clean run',
    async (point) => {
      const isp = shuffledIspOf(point);
      const crashed = await ingest(isp, paths.shuffled1, point);
      expect(crashed.signal).toBe('SIGKILL');
      const restarted = await ingest(isp, paths.shuffled1);
      expect(restarted.code, restarted.stderr).toBe(0);
      expect((await ingest(isp, paths.day2)).code).toBe(0);
      expect(await endState(isp)).toEqual(clean);
    },
    60_000,
  );

  it('kill -9 from outside while batches are being committed ends as one clean run', async () => {
    const child = spawnCli([
      'ingest',
      paths.day1,
      '--isp',
      'timed',
      '--config',
      join(ctx().dir, 'relais.yaml'),
    ]);
    const done = collect(child, 60_000);
    for (;;) {
      if ((await batchCount('timed')) >= 2 || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    const result = await done;
    // The kill landed mid-apply (not after the whole file) unless the machine was very fast.
    expect(result.signal === 'SIGKILL' || (await batchCount('timed')) >= 10).toBe(true);
    expect((await ingest('timed', paths.day1)).code).toBe(0);
    expect((await ingest('timed', paths.day2)).code).toBe(0);
    expect(await endState('timed')).toEqual(clean);
  }, 60_000);
});
