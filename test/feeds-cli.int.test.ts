/**
 * `relais feeds list|show|approve|reject` as an operator runs them: the real command in a child
 * process, on this file's databases and Redis prefix. The feeds are made in-process through the
 * intake (a first snapshot, then one that misses most customers and is held), so that each test
 * reads what the command prints and what it leaves in the database.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Feed } from '../connectors/feed-ledger.js';
import { packageRoot } from '../platform/package-root.js';
import {
  CSV_HEADER,
  type Customer,
  encode,
  generateCustomers,
  renderCsv,
} from './generators/isp-exports.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake, type TestIntake } from './harness/intake.js';

const shipped = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');

const ctx = useTestContext({
  isps: { valve: stringify(parse(shipped)), other: stringify(parse(shipped)) },
});

const feeds = (...args: string[]) =>
  runCli(['feeds', ...args, '--config', join(ctx().dir, 'relais.yaml')]);

const csv = (customers: Iterable<Customer>) => encode(renderCsv(customers), 'windows-1252');

const day1 = [...generateCustomers(100, 31)];
const shrunk = day1.slice(0, 30); // 70 % missing: held by the 10 % safety valve

let intake: TestIntake;
const ids = { first: '', held: '', other: '', failed: '' };

beforeAll(async () => {
  intake = await openTestIntake(ctx());
  ids.first = await intake.ingest('valve', 'abonnes_1.csv', csv(day1));
  ids.held = await intake.ingest('valve', 'abonnes_2.csv', csv(shrunk));
  ids.other = await intake.ingest('other', 'abonnes_1.csv', csv(day1.slice(0, 10)));
  const noRef = encode(
    [CSV_HEADER.replace('N° client', 'Client'), '\r\n1;a;b;c;d;e;f;g\r\n'],
    'windows-1252',
  );
  ids.failed = await intake.ingest('other', 'abonnes_bad.csv', noRef);
  expect((await intake.ledger.get(ids.held))?.status).toBe('held');
  expect((await intake.ledger.get(ids.failed))?.status).toBe('failed');
}, 60_000);

afterAll(async () => {
  await intake?.close();
});

/** Status of each stored subscriber of the valve ISP whose ref the shrunk snapshot lacks. */
async function missingStatuses(): Promise<string[]> {
  const listed = new Set(shrunk.map((c) => c.ref));
  const rows: { customer_ref: string; status: string }[] = await ctx()
    .connectorDb('subscribers')
    .where({ isp_id: 'valve' })
    .select('customer_ref', 'status');
  return rows.filter((r) => !listed.has(r.customer_ref)).map((r) => r.status);
}

function jsonLines(stdout: string): Feed[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

describe('relais feeds list', () => {
  it('prints a table of every feed, newest first', async () => {
    const { code, stdout, stderr } = await feeds('list');
    expect(code, stderr).toBe(0);
    const [header, ...rows] = stdout.trimEnd().split('\n');
    expect(header).toMatch(/^feed\s+isp\s+status\s+received \(UTC\)\s+records\s+reject/);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual([
      ids.failed,
      ids.other,
      ids.held,
      ids.first,
    ]);
    const held = rows.find((r) => r.startsWith(ids.held));
    expect(held).toMatch(/\svalve\s+held\s.*\s30\s+0\s+\+0 ~0 susp 0 res 0 -\d+\s+abonnes_2\.csv$/);
  });

  it('keeps only the feeds of one ISP with --isp', async () => {
    const { code, stdout } = await feeds('list', '--isp', 'other', '--json');
    expect(code).toBe(0);
    expect(jsonLines(stdout).map((f) => [f.id, f.ispId])).toEqual([
      [ids.failed, 'other'],
      [ids.other, 'other'],
    ]);
  });

  it('keeps only one status with --status, and prints one JSON object per line with --json', async () => {
    const { code, stdout } = await feeds('list', '--isp', 'valve', '--status', 'held', '--json');
    expect(code).toBe(0);
    const [held, ...rest] = jsonLines(stdout);
    expect(rest).toEqual([]);
    expect(held).toMatchObject({
      id: ids.held,
      ispId: 'valve',
      status: 'held',
      name: 'abonnes_2.csv',
      records: 30,
      errorMessage: expect.stringMatching(/would cancel \d+ of \d+ active subscribers/),
    });
  });

  it('says so when no feed matches', async () => {
    const { code, stdout } = await feeds('list', '--isp', 'other', '--status', 'held');
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('no feed');
  });

  it('refuses an unknown status with exit 2 and the list of statuses', async () => {
    const { code, stdout } = await feeds('list', '--status', 'lost');
    expect(code).toBe(2);
    expect(stdout).toContain('unknown status lost; one of received, parsing, applied, held');
  });
});

describe('relais feeds show', () => {
  it('prints one feed with its counts and why it is held', async () => {
    const { code, stdout, stderr } = await feeds('show', ids.held);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain(`feed      ${ids.held}\nisp       valve\nstatus    held\n`);
    expect(stdout).toMatch(/file {6}abonnes_2\.csv \(\d+ bytes, cli\)/);
    expect(stdout).toContain('records   30 read, 30 applied, 0 rejected');
    expect(stdout).toMatch(/changes {3}0 subscribe, 0 change, 0 suspend, 0 resume, \d+ cancel/);
    expect(stdout).toMatch(
      /\nheld {5}would cancel 70 of \d+ active subscribers \(\d+\.\d %\), above the 10 % safety limit: approve or reject it\n/,
    );
  });

  it('prints the feed and its first rejects as one JSON object with --json', async () => {
    const { code, stdout } = await feeds('show', ids.failed, '--json');
    expect(code).toBe(0);
    const shown = JSON.parse(stdout);
    expect(shown).toMatchObject({
      id: ids.failed,
      ispId: 'other',
      status: 'failed',
      errorCode: 'FEED_COLUMNS_MISSING',
      rejects: [],
    });
  });

  it('fails with exit 1 and FEED_NOT_FOUND for an unknown feed id', async () => {
    const { code, stdout, stderr } = await feeds('show', 'feed_nosuchfeed');
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim()).toBe('FEED_NOT_FOUND: no feed feed_nosuchfeed');
  });
});

describe('relais feeds approve', () => {
  it('applies a held snapshot at once and prints the applied feed', async () => {
    const before = await missingStatuses();
    expect(before.length).toBeGreaterThan(50);
    expect(before.filter((s) => s !== 'cancelled').length).toBeGreaterThan(50);

    const { code, stdout, stderr } = await feeds('approve', ids.held);

    expect(code, stderr).toBe(0);
    expect(stdout).toContain(`feed      ${ids.held}\nisp       valve\nstatus    applied\n`);
    expect(stdout).toMatch(/\napproved {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n/);
    expect(await intake.ledger.get(ids.held)).toMatchObject({
      status: 'applied',
      approvedAt: expect.any(Date),
    });
    expect(new Set(await missingStatuses())).toEqual(new Set(['cancelled']));
  });

  it.each([
    ['an applied feed', () => ids.held, 'is applied, not held'],
    ['a failed feed', () => ids.failed, 'is failed, not held'],
  ])('refuses %s with exit 1 and FEED_NOT_HELD', async (_case, idOf, reason) => {
    const { code, stderr } = await feeds('approve', idOf());
    expect(code).toBe(1);
    expect(stderr.trim()).toBe(`FEED_NOT_HELD: feed ${idOf()} ${reason}`);
  });
});

describe('relais feeds reject', () => {
  it('drops a held snapshot: nothing of it is applied', async () => {
    const heldAgain = await intake.ingest('valve', 'abonnes_3.csv', csv(day1.slice(0, 3)));
    expect((await intake.ledger.get(heldAgain))?.status).toBe('held');
    const subscribersBefore = await ctx().connectorDb('subscribers').where({ isp_id: 'valve' });
    const batchesBefore = await ctx().connectorDb('provisioning_batches').count({ n: '*' });

    const { code, stdout, stderr } = await feeds('reject', heldAgain);

    expect(code, stderr).toBe(0);
    expect(stdout).toContain(`feed      ${heldAgain}\nisp       valve\nstatus    failed\n`);
    expect(stdout).toContain('error     FEED_HELD_DROPPED: held snapshot dropped by an operator');
    expect(await intake.ledger.get(heldAgain)).toMatchObject({
      status: 'failed',
      errorCode: 'FEED_HELD_DROPPED',
    });
    expect(await ctx().connectorDb('subscribers').where({ isp_id: 'valve' })).toEqual(
      subscribersBefore,
    );
    expect(await ctx().connectorDb('provisioning_batches').count({ n: '*' })).toEqual(
      batchesBefore,
    );

    const again = await feeds('reject', heldAgain);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`FEED_NOT_HELD: feed ${heldAgain} is failed, not held`);
  });

  it.each(['approve', 'reject'])(
    '%s fails with exit 1 and FEED_NOT_FOUND for an unknown id',
    async (verb) => {
      const { code, stderr } = await feeds(verb, 'feed_nosuchfeed');
      expect(code).toBe(1);
      expect(stderr.trim()).toBe('FEED_NOT_FOUND: no feed feed_nosuchfeed');
    },
  );

  it.each(['show', 'approve', 'reject'])(
    '%s without a feed id is a usage error (exit 2)',
    async (verb) => {
      const { code, stderr } = await feeds(verb);
      expect(code).toBe(2);
      expect(stderr).toContain("missing required argument 'id'");
    },
  );
});
