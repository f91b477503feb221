/**
 * Whole polls of a local-folder inbox against the real databases: pick-up, receipt, processing
 * and settling of the source file, including two processes polling one ISP at once.
 */
import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { IspConfig } from '../../config/load.js';
import { createDb, type Db } from '../../platform/db.js';
import { createLogger, type Logger } from '../../platform/logger.js';
import { BUSY, withNamedLock } from '../../platform/named-lock.js';
import { packageRoot } from '../../platform/package-root.js';
import {
  type Customer,
  encode,
  generateCustomers,
  nextDay,
  renderCsv,
  renderFixedWidth,
} from '../../test/generators/isp-exports.js';
import { useTestContext } from '../../test/harness/context.js';
import { FeedLedger } from '../feed-ledger.js';
import { syncIsps } from '../isp-registry.js';
import { FeedFiles } from './feed-files.js';
import { type IntakeDeps, IntakeService } from './intake-service.js';
import { type PollResult, pollIsp } from './poll.js';

const shipped = (id: string) =>
  parse(readFileSync(join(packageRoot(), 'config/isps', `${id}.yaml`), 'utf8'));

/** The shipped demo-fai config (CSV snapshots, local folder) with its pickup overridden. */
function demoFai(pickup: Record<string, unknown> = {}): Record<string, unknown> {
  const base = shipped('demo-fai');
  const intake = { ...base.intake, pickup: { ...base.intake.pickup, ...pickup } };
  return { ...base, intake };
}

const ctx = useTestContext({
  isps: {
    'fai-good': demoFai(),
    'fai-columns': demoFai(),
    'bn-trailer': shipped('bretagne-net'),
    'fai-empty': demoFai(),
    'fai-young': demoFai({ completeness: { type: 'stable', minAgeS: 60 } }),
    'fai-marker': demoFai({ completeness: { type: 'done-marker' } }),
    'fai-dup': demoFai(),
    'fai-limit': demoFai({ maxFilesPerPoll: 2 }),
    'fai-race': demoFai({ maxFilesPerPoll: 1 }),
    'fai-busy': demoFai(),
  },
});

/** One Relais process's intake: its own pool, ledger and service, as `openIntake` wires them. */
interface Process {
  deps: IntakeDeps;
  intake: IntakeService;
}

function openProcess(db: Db, log: Logger): Process {
  const { config } = ctx();
  const files = new FeedFiles((ispId) => config.isps.get(ispId)?.workDir ?? 'unused');
  const deps: IntakeDeps = { db, log, ledger: new FeedLedger(db), files };
  return { deps, intake: new IntakeService(deps, config) };
}

const logLines: string[] = [];
let main: Process;
let other: Process;
let otherDb: Db;

beforeAll(async () => {
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  const { config, connectorDb } = ctx();
  await syncIsps(connectorDb, config.isps, log);
  for (const isp of config.isps.values()) mkdirSync(inboxOf(isp.id), { recursive: true });
  main = openProcess(connectorDb, log);
  otherDb = createDb(config.deployment.mysql, 'connector');
  other = openProcess(otherDb, log);
});

afterAll(async () => {
  await otherDb?.destroy();
});

function ispOf(ispId: string): IspConfig {
  return main.intake.isp(ispId);
}

function inboxOf(ispId: string): string {
  const transport = ctx().config.isps.get(ispId)?.intake.transport;
  if (transport?.type !== 'local' || !transport.inbox) throw new Error(`${ispId} is not local`);
  return transport.inbox;
}

/** Writes a file into the ISP's inbox, dated `ageS` seconds ago (whole seconds). */
function drop(ispId: string, name: string, bytes: Buffer | string, ageS = 0): string {
  const path = join(inboxOf(ispId), name);
  writeFileSync(path, bytes);
  setAge(path, ageS);
  return path;
}

function setAge(path: string, ageS: number): void {
  const when = Math.floor(Date.now() / 1000) - ageS;
  utimesSync(path, when, when);
}

/** File names directly in the inbox, or in one of its subfolders. */
function filesIn(ispId: string, folder = ''): string[] {
  const dir = join(inboxOf(ispId), folder);
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name)
      .sort();
  } catch {
    return [];
  }
}

async function poll(ispId: string, process: Process = main): Promise<PollResult> {
  const result = await pollIsp(process.deps, process.intake, ispOf(ispId));
  if (result === BUSY) throw new Error(`poll of ${ispId} found the ISP busy`);
  return result;
}

async function feedsOf(ispId: string) {
  const ledger = main.deps.ledger;
  return (await ledger.list({ ispId, limit: 1_000 })).reverse();
}

async function subscriberCount(ispId: string): Promise<number> {
  const row = await ctx().connectorDb('subscribers').where({ isp_id: ispId }).count({ n: '*' });
  return Number(row[0]?.n);
}

async function subscriberRefs(ispId: string): Promise<Map<string, string>> {
  const rows = await ctx()
    .connectorDb('subscribers')
    .select('customer_ref', 'status')
    .where({ isp_id: ispId });
  return new Map(rows.map((r) => [r.customer_ref, r.status]));
}

async function batchCount(ispId: string): Promise<number> {
  const row = await ctx()
    .connectorDb('provisioning_batches')
    .where({ isp_id: ispId })
    .count({ n: '*' });
  return Number(row[0]?.n);
}

const csv = (customers: Iterable<Customer>) => encode(renderCsv(customers), 'windows-1252');

/** The refs a snapshot lists as active or suspended, with that status. */
function listedState(customers: Customer[]): Map<string, string> {
  return new Map(customers.filter((c) => c.status !== 'cancelled').map((c) => [c.ref, c.status]));
}

/** A chain of daily snapshots: day 1, then each next day derived from the one before. */
function days(count: number, size: number, seed: number): Customer[][] {
  const chain = [[...generateCustomers(size, seed)]];
  for (let i = 1; i < count; i++) {
    chain.push([...nextDay(chain[i - 1] as Customer[], size + i, 0.05, seed + i)]);
  }
  return chain;
}

describe('pollIsp on a local folder', () => {
  describe('when a complete file is waiting', () => {
    it('applies it and moves it to processed/', async () => {
      const customers = [...generateCustomers(40, 11)];
      const bytes = csv(customers);
      drop('fai-good', 'abonnes_20261201.csv', bytes);

      const result = await poll('fai-good');

      expect(result.received).toEqual([
        { name: 'abonnes_20261201.csv', feedId: expect.any(String), status: 'applied' },
      ]);
      const [feed] = await feedsOf('fai-good');
      expect(feed).toMatchObject({
        id: result.received[0]?.feedId,
        source: 'local',
        status: 'applied',
        records: 40,
        rejected: 0,
        sizeBytes: bytes.length,
      });
      expect(await subscriberCount('fai-good')).toBe(listedState(customers).size);
      expect(await batchCount('fai-good')).toBeGreaterThan(0);
      expect(filesIn('fai-good')).toEqual([]);
      expect(filesIn('fai-good', 'processed')).toEqual(['abonnes_20261201.csv']);
      expect(readFileSync(join(inboxOf('fai-good'), 'processed/abonnes_20261201.csv'))).toEqual(
        bytes,
      );
      expect(filesIn('fai-good', 'failed')).toEqual([]);
    });
  });

  describe('when a file is refused', () => {
    const withoutOffer = () => {
      const lines = [...renderCsv(generateCustomers(20, 12))].map((line) => {
        const fields = line.split(';');
        fields.splice(4, 1);
        return fields.join(';');
      });
      return encode(lines, 'windows-1252');
    };
    const badTrailer = () => {
      const lines = [...generateCustomers(5, 13)].map((customer) => ({
        customer,
        op: 'SUB' as const,
      }));
      const text = encode(renderFixedWidth(lines), 'iso-8859-1').toString('latin1');
      return Buffer.from(text.replace(/^T000000005$/m, 'T000000007'), 'latin1');
    };

    it.each([
      {
        ispId: 'fai-columns',
        name: 'abonnes_20261202.csv',
        render: withoutOffer,
        code: 'FEED_COLUMNS_MISSING',
        reason: /Offre/,
      },
      {
        ispId: 'bn-trailer',
        name: 'MVT20261202.txt',
        render: badTrailer,
        code: 'FEED_TRAILER_MISMATCH',
        reason: /trailer counts 7 detail records, the file holds 5/,
      },
    ])(
      '$ispId: moves $name to failed/ with a .error.txt naming $code, and writes nothing',
      async ({ ispId, name, render, code, reason }) => {
        drop(ispId, name, render());

        const result = await poll(ispId);

        expect(result.received).toEqual([{ name, feedId: expect.any(String), status: 'failed' }]);
        const [feed] = await feedsOf(ispId);
        expect(feed).toMatchObject({ status: 'failed', errorCode: code });
        expect(feed?.errorMessage).toMatch(reason);
        expect(await subscriberCount(ispId)).toBe(0);
        expect(await batchCount(ispId)).toBe(0);
        expect(filesIn(ispId)).toEqual([]);
        expect(filesIn(ispId, 'failed')).toEqual([name, `${name}.error.txt`]);
        const report = readFileSync(join(inboxOf(ispId), 'failed', `${name}.error.txt`), 'utf8');
        expect(report).toContain(`file: ${name}`);
        expect(report).toContain(`reason: ${code}: ${feed?.errorMessage}`);
        expect(filesIn(ispId, 'processed')).toEqual([]);
      },
    );

    it('refuses a zero-byte file with FEED_ZERO_BYTES and moves it to failed/ with its reason', async () => {
      drop('fai-empty', 'abonnes_20261203.csv', '');

      const result = await poll('fai-empty');

      expect(result.received).toEqual([
        { name: 'abonnes_20261203.csv', feedId: expect.any(String), status: 'failed' },
      ]);
      expect(result.skipped).toEqual([]);
      const feeds = await feedsOf('fai-empty');
      expect(feeds).toHaveLength(1);
      expect(feeds[0]).toMatchObject({ status: 'failed', errorCode: 'FEED_ZERO_BYTES' });
      expect(filesIn('fai-empty')).toEqual([]);
      expect(filesIn('fai-empty', 'failed')).toEqual([
        'abonnes_20261203.csv',
        'abonnes_20261203.csv.error.txt',
      ]);
      const report = readFileSync(
        join(inboxOf('fai-empty'), 'failed/abonnes_20261203.csv.error.txt'),
        'utf8',
      );
      expect(report).toContain('reason: FEED_ZERO_BYTES: abonnes_20261203.csv is empty (0 bytes)');

      const again = await poll('fai-empty');
      expect(again).toEqual({ received: [], skipped: [], settled: [] });
      expect(await feedsOf('fai-empty')).toHaveLength(1);
    });

    it('leaves no customer data in the log while refusing files', () => {
      const text = logLines.join('');
      expect(text).toContain('source file refused');
      for (const customer of generateCustomers(20, 12)) {
        expect(text).not.toContain(customer.ref);
        expect(text).not.toContain(customer.email);
      }
    });
  });

  describe('when a file is still being written', () => {
    it('skips a file younger than minAgeS and picks it up, whole, once it has aged', async () => {
      const customers = [...generateCustomers(30, 14)];
      const [head, ...rows] = [...renderCsv(customers)];
      const path = drop(
        'fai-young',
        'abonnes_20261204.csv',
        encode([head as string, ...rows.slice(0, 10)], 'windows-1252'),
      );

      const early = await poll('fai-young');

      expect(early.received).toEqual([]);
      expect(early.skipped).toMatchObject([{ name: 'abonnes_20261204.csv', reason: 'too recent' }]);
      expect(await feedsOf('fai-young')).toEqual([]);
      expect(filesIn('fai-young')).toEqual(['abonnes_20261204.csv']);

      appendFileSync(path, encode(rows.slice(10), 'windows-1252'));
      setAge(path, 61);
      const later = await poll('fai-young');

      expect(later.received).toMatchObject([{ name: 'abonnes_20261204.csv', status: 'applied' }]);
      const feeds = await feedsOf('fai-young');
      expect(feeds).toHaveLength(1);
      expect(feeds[0]).toMatchObject({ status: 'applied', records: 30 });
      expect(filesIn('fai-young', 'processed')).toEqual(['abonnes_20261204.csv']);
    });

    it('skips a file without its done marker, then takes both once the marker is there', async () => {
      const bytes = csv(generateCustomers(25, 15));
      drop('fai-marker', 'abonnes_20261205.csv', bytes, 600);

      const early = await poll('fai-marker');

      expect(early.received).toEqual([]);
      expect(early.skipped).toMatchObject([
        { name: 'abonnes_20261205.csv', reason: 'no done marker' },
      ]);
      expect(await feedsOf('fai-marker')).toEqual([]);

      drop('fai-marker', 'abonnes_20261205.csv.done', '');
      const later = await poll('fai-marker');

      expect(later.received).toMatchObject([{ name: 'abonnes_20261205.csv', status: 'applied' }]);
      expect(await feedsOf('fai-marker')).toMatchObject([{ status: 'applied', records: 25 }]);
      expect(filesIn('fai-marker')).toEqual([]);
      expect(filesIn('fai-marker', 'processed')).toEqual([
        'abonnes_20261205.csv',
        'abonnes_20261205.csv.done',
      ]);
    });
  });

  describe('when the same content arrives under a new name', () => {
    it('records a duplicate, applies nothing again and settles the copy', async () => {
      const bytes = csv(generateCustomers(30, 16));
      drop('fai-dup', 'abonnes_20261206.csv', bytes, 120);
      const first = await poll('fai-dup');
      const subscribers = await subscriberRefs('fai-dup');
      const batches = await batchCount('fai-dup');

      drop('fai-dup', 'abonnes_20261206_bis.csv', bytes);
      const second = await poll('fai-dup');

      expect(second.received).toEqual([
        { name: 'abonnes_20261206_bis.csv', feedId: expect.any(String), status: 'duplicate' },
      ]);
      const copy = await main.deps.ledger.get(second.received[0]?.feedId as string);
      expect(copy).toMatchObject({ status: 'duplicate', duplicateOf: first.received[0]?.feedId });
      expect(await subscriberRefs('fai-dup')).toEqual(subscribers);
      expect(await batchCount('fai-dup')).toBe(batches);
      expect(filesIn('fai-dup')).toEqual([]);
      expect(filesIn('fai-dup', 'processed')).toEqual([
        'abonnes_20261206.csv',
        'abonnes_20261206_bis.csv',
      ]);
    });
  });

  describe('when more files wait than one poll takes', () => {
    it('takes maxFilesPerPoll files, oldest mtime first then by name, and the rest next poll', async () => {
      const [d1, d2, d3] = days(3, 60, 20) as [Customer[], Customer[], Customer[]];
      drop('fai-limit', 'abonnes_3.csv', csv(d1), 300);
      drop('fai-limit', 'abonnes_2.csv', csv(d3), 200);
      drop('fai-limit', 'abonnes_1.csv', csv(d2), 200);

      const first = await poll('fai-limit');

      expect(first.received.map((r) => [r.name, r.status])).toEqual([
        ['abonnes_3.csv', 'applied'],
        ['abonnes_1.csv', 'applied'],
      ]);
      expect(first.skipped).toMatchObject([{ name: 'abonnes_2.csv', reason: 'over poll limit' }]);
      expect(filesIn('fai-limit')).toEqual(['abonnes_2.csv']);

      const second = await poll('fai-limit');

      expect(second.received.map((r) => [r.name, r.status])).toEqual([
        ['abonnes_2.csv', 'applied'],
      ]);
      expect((await feedsOf('fai-limit')).map((f) => f.name)).toEqual([
        'abonnes_3.csv',
        'abonnes_1.csv',
        'abonnes_2.csv',
      ]);
      const live = new Map(
        [...(await subscriberRefs('fai-limit'))].filter(([, status]) => status !== 'cancelled'),
      );
      expect(live).toEqual(listedState(d3));
    });
  });

  describe('when two processes poll one ISP at once', () => {
    it('processes each file exactly once', async () => {
      const chain = days(4, 50, 30);
      chain.forEach((day, i) => {
        drop('fai-race', `abonnes_${i + 1}.csv`, csv(day), 400 - i * 10);
      });

      const outcomes: (PollResult | typeof BUSY)[] = [];
      for (let round = 0; round < 12 && filesIn('fai-race').length > 0; round++) {
        outcomes.push(
          ...(await Promise.all([
            pollIsp(main.deps, main.intake, ispOf('fai-race')),
            pollIsp(other.deps, other.intake, ispOf('fai-race')),
          ])),
        );
      }

      const names = chain.map((_, i) => `abonnes_${i + 1}.csv`);
      const feeds = await feedsOf('fai-race');
      expect(feeds.map((f) => [f.name, f.status])).toEqual(names.map((n) => [n, 'applied']));
      const received = outcomes.flatMap((o) => (o === BUSY ? [] : o.received.map((r) => r.name)));
      expect(received.sort()).toEqual(names);
      expect(filesIn('fai-race')).toEqual([]);
      expect(filesIn('fai-race', 'processed')).toEqual(names);
      expect(filesIn('fai-race', 'failed')).toEqual([]);
      const live = new Map(
        [...(await subscriberRefs('fai-race'))].filter(([, status]) => status !== 'cancelled'),
      );
      expect(live).toEqual(listedState(chain[3] as Customer[]));
    });

    it('leaves a file received while another process holds the ISP, and settles it next poll', async () => {
      drop('fai-busy', 'abonnes_20261207.csv', csv(generateCustomers(20, 17)), 60);
      const isp = ispOf('fai-busy');

      const during = await withNamedLock(otherDb, `isp:${isp.id}`, () => poll('fai-busy'));

      expect(during).not.toBe(BUSY);
      expect((during as PollResult).received).toMatchObject([
        { name: 'abonnes_20261207.csv', status: 'received' },
      ]);
      expect(filesIn('fai-busy')).toEqual(['abonnes_20261207.csv']);

      const drained = await other.intake.drain(isp);
      expect(drained).not.toBe(BUSY);
      const after = await poll('fai-busy');

      expect(after.received).toEqual([]);
      expect(after.settled).toMatchObject([{ name: 'abonnes_20261207.csv', status: 'applied' }]);
      expect(await feedsOf('fai-busy')).toMatchObject([{ status: 'applied', records: 20 }]);
      expect(filesIn('fai-busy')).toEqual([]);
      expect(filesIn('fai-busy', 'processed')).toEqual(['abonnes_20261207.csv']);
    });
  });
});
