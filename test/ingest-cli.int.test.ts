/**
 * `relais ingest` as an integrator runs it: the real command in a child process, on this file's
 * databases and Redis prefix. A dry run (installed config or a draft given by path) must print
 * what the file would do and write nothing; a real ingest goes through the ledger and prints
 * the feed. The dry run's diff is checked against what the real ingest of the same file does.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Feed } from '../connectors/feed-ledger.js';
import { packageRoot } from '../platform/package-root.js';
import {
  CSV_HEADER,
  type Customer,
  encode,
  generateCustomers,
  nextDay,
  renderCsv,
} from './generators/isp-exports.js';
import { type CliResult, collect, runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';

const shippedText = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');
const ctx = useTestContext({ isps: { fai: stringify(parse(shippedText)) } });

const withConfig = (args: string[]) => [...args, '--config', join(ctx().dir, 'relais.yaml')];
const relais = (...args: string[]) => runCli(withConfig(args));

/**
 * Runs the command on a pseudo-terminal (util-linux `script`), as a person at a terminal would:
 * stdout and stderr both reach the terminal, so the result's stdout holds both.
 */
function relaisOnTty(...args: string[]): Promise<CliResult> {
  const root = packageRoot();
  const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  const argv = [process.execPath, '--import', tsx, join(root, 'cli/main.ts'), ...withConfig(args)];
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qefc', quoted, '/dev/null'], {
    cwd: root,
    env: { ...process.env, RELAIS_CONFIG: '', COLUMNS: '100' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, 60_000);
}

const PROGRESS_BAR = /reading \[[█░]+\] \d+% \| \d+\/\d+/;

const day1 = [...generateCustomers(30, 51)];
const day2 = [...nextDay(day1, day1.length, 0.2, 52)];

/** day2 as the ISP wrote it, with an unknown offer on line 5 and an impossible date on line 9. */
function day2Csv(): Buffer {
  const rows = [...renderCsv(day2)];
  rows[4] = (rows[4] as string).replace(/SECU_\w+/, 'SECU_OR');
  rows[8] = (rows[8] as string).replace(/\d\d\/\d\d\/\d{4}/, '31/02/2026');
  return encode(rows, 'windows-1252');
}

function writeExport(name: string, bytes: Buffer | string): string {
  const dir = join(ctx().dir, 'exports');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** What a dry run must leave untouched. */
async function footprint() {
  const db = ctx().connectorDb;
  const count = async (table: string) => Number((await db(table).count({ n: '*' }))[0]?.n);
  return {
    feeds: await count('feeds'),
    subscribers: await count('subscribers'),
    batches: await count('provisioning_batches'),
    rejects: await count('feed_rejects'),
    state: await db('subscribers').orderBy('subscriber_id').select('*'),
    redisKeys: await redisKeys(),
  };
}

/** Every Redis key under this file's prefix (queues, jobs), sorted. */
async function redisKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await ctx().redis.scan(cursor, 'MATCH', `${ctx().prefix}:*`);
    keys.push(...found);
    cursor = next;
  } while (cursor !== '0');
  return keys.sort();
}

async function expectNothingWritten(run: () => Promise<void>): Promise<void> {
  const before = await footprint();
  await run();
  expect(await footprint()).toEqual(before);
}

let day2File: string;

beforeAll(async () => {
  const first = await relais('ingest', writeExport('abonnes_1.csv', csv(day1)), '--isp', 'fai');
  expect(first.code, first.stderr).toBe(0);
  day2File = writeExport('abonnes_2.csv', day2Csv());
}, 60_000);

function csv(customers: Iterable<Customer>): Buffer {
  return encode(renderCsv(customers), 'windows-1252');
}

interface Summary {
  type: 'summary';
  records: number;
  accepted: number;
  rejected: number;
  diff: {
    subscribes: number;
    changes: number;
    suspends: number;
    resumes: number;
    cancels: number;
    activeBefore: number;
  };
  decision: { kind: string };
}

let dryRunSummary: Summary;

describe('relais ingest --dry-run --json', () => {
  it('emits one JSON object per line: each record, each reject, then the summary', async () => {
    let stdout = '';
    await expectNothingWritten(async () => {
      const run = await relais('ingest', day2File, '--isp', 'fai', '--dry-run', '--json');
      expect(run.code, run.stderr).toBe(0);
      stdout = run.stdout;
    });

    const lines = stdout.trimEnd().split('\n');
    const objects = lines.map((line) => JSON.parse(line));
    expect(objects.map((o) => o.type)).toEqual([
      ...Array(day2.length - 2).fill('record'),
      'reject',
      'reject',
      'summary',
    ]);
    const records = objects.filter((o) => o.type === 'record');
    expect(records.map((r) => r.line)).toEqual(
      Array.from({ length: day2.length }, (_, i) => i + 2).filter((l) => l !== 5 && l !== 9),
    );
    expect(records[0]).toMatchObject({
      customerRef: day2[0]?.ref,
      status: expect.stringMatching(/^(active|suspended|cancelled)$/),
      modules: expect.any(Array),
    });
    expect(objects.filter((o) => o.type === 'reject')).toEqual([
      expect.objectContaining({
        line: 5,
        field: 'offer',
        reason: expect.stringMatching(/SECU_OR/),
      }),
      expect.objectContaining({
        line: 9,
        field: 'effectiveDate',
        reason: expect.stringMatching(/31 February 2026/),
      }),
    ]);
    dryRunSummary = objects.at(-1);
    expect(dryRunSummary).toMatchObject({
      type: 'summary',
      file: 'abonnes_2.csv',
      records: day2.length,
      accepted: day2.length - 2,
      rejected: 2,
      decision: { kind: 'apply' },
    });
    const { subscribes, changes, suspends, resumes, cancels } = dryRunSummary.diff;
    expect(subscribes + changes + suspends + resumes + cancels).toBeGreaterThan(0);
  });
});

describe('relais ingest --dry-run', () => {
  it('prints the records, the diff counts and every reject, and writes nothing', async () => {
    let stdout = '';
    await expectNothingWritten(async () => {
      const run = await relais('ingest', day2File, '--isp', 'fai', '--dry-run');
      expect(run.code, run.stderr).toBe(0);
      stdout = run.stdout;
    });

    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('dry run of abonnes_2.csv for ISP fai (snapshot mode)');
    const recordLines = lines.filter((l) => /^ {2}line \d+ +\d{8} /.test(l));
    expect(recordLines).toHaveLength(20);
    expect(recordLines[0]).toMatch(new RegExp(`^ {2}line 2 +${day2[0]?.ref} `));
    expect(stdout).toContain(`  ... and ${day2.length - 2 - 20} more (use --json for all)`);
    expect(stdout).toContain(`records: ${day2.length} read, ${day2.length - 2} valid, 2 rejected`);
    const d = dryRunSummary.diff;
    expect(stdout).toContain(
      `diff against the stored state (${d.activeBefore} active subscribers):`,
    );
    expect(stdout).toContain(
      `  subscribe ${d.subscribes}, change ${d.changes}, suspend ${d.suspends}, resume ${d.resumes}, cancel ${d.cancels}`,
    );
    expect(stdout).toContain('verdict: would be applied');
    const rejects = lines.slice(
      lines.indexOf('rejects (2):') + 1,
      lines.indexOf('rejects (2):') + 3,
    );
    expect(rejects[0]).toMatch(/^ {2}line 5 offer "SECU_OR": .*SECU_OR/);
    expect(rejects[1]).toMatch(/^ {2}line 9 effectiveDate "31\/02\/2026": .*31 February 2026/);
    expect(lines).toContain('nothing was applied (dry run)');
    expect(lines.at(-1)).toBe(rejects[1]);
  });

  it('counts the same changes as the real ingest of the same file', async () => {
    const copy = writeExport('abonnes_2-copy-for-diff.csv', day2Csv());
    const run = await relais('ingest', copy, '--isp', 'fai', '--json');
    expect(run.code, run.stderr).toBe(0);
    const feed: Feed = JSON.parse(run.stdout);
    expect(feed).toMatchObject({
      status: 'applied',
      records: dryRunSummary.records,
      applied: dryRunSummary.accepted,
      rejected: dryRunSummary.rejected,
      subscribes: dryRunSummary.diff.subscribes,
      changes: dryRunSummary.diff.changes,
      suspends: dryRunSummary.diff.suspends,
      resumes: dryRunSummary.diff.resumes,
      cancels: dryRunSummary.diff.cancels,
    });
  });

  it('reports a file it would refuse with exit 1, still writing nothing', async () => {
    const file = writeExport(
      'abonnes_cols.csv',
      encode(['N° client;Offre\r\n1;X\r\n'], 'windows-1252'),
    );
    await expectNothingWritten(async () => {
      const run = await relais('ingest', file, '--isp', 'fai', '--dry-run');
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        /^file refused: FEED_COLUMNS_MISSING: abonnes_cols\.csv:1: the header lacks columns "Options", "Statut", "Date effet", "Courriel"$/m,
      );
    });
  });
});

describe('relais ingest --isp-config', () => {
  const draftPath = () => join(ctx().dir, 'drafts', 'draft-fai.yaml');

  function writeDraft(text: string): string {
    mkdirSync(join(ctx().dir, 'drafts'), { recursive: true });
    writeFileSync(draftPath(), text);
    return draftPath();
  }

  it('dry-runs a draft config that is not installed', async () => {
    // The draft maps fewer fields than the installed config: no status, so all are active.
    const draft = parse(shippedText);
    delete draft.intake.fields.status;
    const path = writeDraft(stringify(draft));

    await expectNothingWritten(async () => {
      const run = await relais('ingest', day2File, '--isp-config', path, '--dry-run', '--json');
      expect(run.code, run.stderr).toBe(0);
      const objects = run.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      const records = objects.filter((o) => o.type === 'record');
      expect(records).toHaveLength(day2.length - 2);
      expect(new Set(records.map((r) => r.status))).toEqual(new Set(['active']));
      // Nothing is stored for an ISP that is not installed: every valid record subscribes.
      expect(objects.at(-1).diff).toMatchObject({
        activeBefore: 0,
        subscribes: records.length,
        cancels: 0,
      });
    });
  });

  it('exits 2 with file:line:column for a draft with a config mistake', async () => {
    const text = shippedText.replace('delimiter: ";"', 'delimitor: ";"');
    const line = text.split('\n').findIndex((l) => l.includes('delimitor')) + 1;
    const column = (text.split('\n')[line - 1] as string).indexOf('delimitor') + 1;
    const path = writeDraft(text);

    const run = await relais('ingest', day2File, '--isp-config', path, '--dry-run');

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${path}:${line}:${column}`);
    expect(run.stderr).toMatch(/CONFIG_INVALID/);
  });

  it('refuses a draft without --dry-run, and both --isp and --isp-config, with exit 2', async () => {
    const path = writeDraft(shippedText);
    const real = await relais('ingest', day2File, '--isp-config', path);
    expect(real.code).toBe(2);
    expect(real.stdout).toContain('a draft config can only be tried with --dry-run');
    const both = await relais('ingest', day2File, '--isp', 'fai', '--isp-config', path);
    expect(both.code).toBe(2);
    expect(both.stdout).toContain('give exactly one of --isp ID or --isp-config PATH');
  });
});

describe('relais ingest', () => {
  it('applies a file and prints its ledger entry', async () => {
    const day3 = [...nextDay(day2, day2.length, 0.05, 53)];
    const run = await relais('ingest', writeExport('abonnes_3.csv', csv(day3)), '--isp', 'fai');

    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.match(/^feed {6}(feed_\w+)$/m)?.[1];
    const feed = (await ctx().connectorDb('feeds').where({ id }).first()) as Record<
      string,
      unknown
    >;
    expect(feed).toMatchObject({ isp_id: 'fai', name: 'abonnes_3.csv', status: 'applied' });
    expect(run.stdout).toContain('isp       fai\nstatus    applied\n');
    expect(run.stdout).toMatch(/^file {6}abonnes_3\.csv \(\d+ bytes, cli\)$/m);
    expect(run.stdout).toContain(
      `records   ${day3.length} read, ${day3.length} applied, 0 rejected`,
    );
    expect(run.stdout).toMatch(
      /^changes {3}\d+ subscribe, \d+ change, .* provisioning batches\)$/m,
    );
  });

  it('shows a progress bar on a terminal only, never with --json or into a pipe', async () => {
    const big = [...generateCustomers(60_000, 54)];
    const onTty = await relaisOnTty(
      'ingest',
      writeExport('abonnes_big.csv', csv(big)),
      '--isp',
      'fai',
    );
    expect(onTty.code, onTty.stdout).toBe(0);
    expect(onTty.stdout).toMatch(PROGRESS_BAR);
    expect(onTty.stdout).toMatch(/applying \d+ changes \[/);
    expect(onTty.stdout).toContain('status    applied');

    const json = await relaisOnTty(
      'ingest',
      writeExport('abonnes_big2.csv', csv(big.slice(1))),
      '--isp',
      'fai',
      '--json',
    );
    expect(json.code, json.stdout).toBe(0);
    expect(json.stdout).not.toMatch(/reading|applying/);
    expect(JSON.parse(json.stdout.trim())).toMatchObject({ status: 'applied' });

    const piped = await relais(
      'ingest',
      writeExport('abonnes_big3.csv', csv(big.slice(2))),
      '--isp',
      'fai',
    );
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).not.toMatch(/reading|applying/);
    expect(piped.stdout).not.toMatch(/reading|applying/);
  }, 120_000);

  it('says a file already received is a duplicate, and applies nothing', async () => {
    const before = await footprint();
    const run = await relais('ingest', day2File, '--isp', 'fai');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      /^already received as feed_\w+ \(applied\); this copy is recorded as duplicate feed_\w+$/m,
    );
    expect((await footprint()).batches).toBe(before.batches);
  });

  it('exits 1 for a refused file and prints the ledger entry with the error', async () => {
    const header = CSV_HEADER.replace('Offre', 'Forfait');
    const file = writeExport(
      'abonnes_bad.csv',
      encode([`${header}\r\n`, '10000001;a;b;c;d;e;Actif;01/01/2026\r\n'], 'windows-1252'),
    );

    const run = await relais('ingest', file, '--isp', 'fai');

    expect(run.code).toBe(1);
    expect(run.stdout).toContain('status    failed');
    expect(run.stdout).toMatch(
      /^error {5}FEED_COLUMNS_MISSING: abonnes_bad\.csv:1: the header lacks column "Offre"/m,
    );
  });

  it('exits 2 for a file that does not exist', async () => {
    const run = await relais('ingest', join(ctx().dir, 'nope.csv'), '--isp', 'fai');
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('no such file');
  });
});

describe('relais --help', () => {
  it('lists the ingest and feeds commands with a one-line description', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const command of ['ingest', 'feeds']) {
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b.*\\S`, 'm'));
    }
  });

  it.each(['ingest', 'feeds', 'feeds list', 'feeds show', 'feeds approve', 'feeds reject'])(
    'explains "%s" with --help',
    async (command) => {
      const { code, stdout } = await runCli([...command.split(' '), '--help']);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: relais ${command} `));
    },
  );
});
