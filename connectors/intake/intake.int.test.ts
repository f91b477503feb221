import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { decodeCommands } from '../../mappings/provisioning-command.js';
import { createMetrics } from '../../platform/metrics.js';
import { packageRoot } from '../../platform/package-root.js';
import {
  CSV_HEADER,
  type Customer,
  encode,
  generateCustomers,
  nextDay,
  renderCsv,
  renderFixedWidth,
  renderXml,
  seededRandom,
} from '../../test/generators/isp-exports.js';
import { useTestContext } from '../../test/harness/context.js';
import { openTestIntake, type TestIntake } from '../../test/harness/intake.js';
import { createIntakeMetrics } from './intake-metrics.js';

const shipped = (id: string) =>
  parse(readFileSync(join(packageRoot(), 'config/isps', `${id}.yaml`), 'utf8'));

/** The shipped demo-fai config with overrides of its intake section. */
function csvIsp(intake: Record<string, unknown> = {}): Record<string, unknown> {
  const base = shipped('demo-fai');
  return { ...base, intake: { ...base.intake, ...intake } };
}

const ctx = useTestContext({
  isps: {
    'csv-a': csvIsp(),
    'csv-b': csvIsp(),
    'csv-shuffled': csvIsp(),
    'csv-rows': csvIsp(),
    'csv-strict': csvIsp({ rejects: { refuseFileAbove: 0.1 } }),
    'csv-utf8': csvIsp({ format: { ...shipped('demo-fai').intake.format, encoding: 'utf-8' } }),
    'csv-valve': csvIsp(),
    'xml-a': stringify(shipped('alpha-telecom')),
    'fixed-a': stringify(shipped('bretagne-net')),
  },
});

const metrics = createMetrics({ defaultMetrics: false });
let intake: TestIntake;
beforeAll(async () => {
  intake = await openTestIntake(ctx(), { metrics: createIntakeMetrics(metrics) });
});

/** The value of one series of a metric of the intake, or undefined when it has none yet. */
async function metricValue(name: string, labels: Record<string, string>) {
  const metric = metrics.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))
    ?.value;
}

afterAll(async () => {
  await intake.close();
});

const OFFER_MODULES: Record<Customer['offer'], string[]> = {
  SECU_ESSENTIEL: ['antivirus'],
  SECU_FAMILLE: ['antivirus', 'firewall', 'parental-control'],
  SECU_INTEGRAL: ['antivirus', 'backup', 'firewall', 'parental-control'],
};

function modulesOf(c: Customer): string[] {
  return [...new Set([...OFFER_MODULES[c.offer], ...c.options])].sort();
}

interface State {
  status: string;
  modules: string[];
}

/** What the subscriber map must hold after these snapshots, computed from the customers alone. */
function expectedAfterSnapshots(...days: Customer[][]): Map<string, State> {
  const state = new Map<string, State>();
  for (const day of days) {
    const listed = new Set(day.map((c) => c.ref));
    for (const [ref, s] of state) {
      if (!listed.has(ref)) state.set(ref, { ...s, status: 'cancelled' });
    }
    for (const c of day) {
      const before = state.get(c.ref);
      if (!before && c.status === 'cancelled') continue;
      const modules = c.status === 'cancelled' && before ? before.modules : modulesOf(c);
      state.set(c.ref, { status: c.status, modules });
    }
  }
  return state;
}

async function storedState(ispId: string): Promise<Map<string, State>> {
  const rows = await ctx()
    .connectorDb('subscribers')
    .select('customer_ref', 'status', 'modules')
    .where({ isp_id: ispId });
  return new Map(
    rows.map((r) => [
      r.customer_ref,
      { status: r.status, modules: r.modules === '' ? [] : r.modules.split(',') },
    ]),
  );
}

async function subscriberIds(ispId: string): Promise<Map<string, string>> {
  const rows = await ctx()
    .connectorDb('subscribers')
    .select('customer_ref', 'subscriber_id')
    .where({ isp_id: ispId });
  return new Map(rows.map((r) => [r.customer_ref, r.subscriber_id]));
}

async function batchesOf(feedId: string): Promise<{ commands: string; state: string }[]> {
  return ctx().connectorDb('provisioning_batches').where({ feed_id: feedId }).orderBy('id');
}

const csv = (customers: Iterable<Customer>) => encode(renderCsv(customers), 'windows-1252');

describe('snapshot intake', () => {
  const day1 = [...generateCustomers(300, 7)];
  const day2 = [...nextDay(day1, day1.length, 0.05, 8)];

  it('subscribes every customer of a first snapshot under a random subscriber id', async () => {
    const feedId = await intake.ingest('csv-a', 'abonnes_1.csv', csv(day1));
    const feed = await intake.ledger.get(feedId);
    expect(feed).toMatchObject({ status: 'applied', records: 300, rejected: 0 });
    expect(await storedState('csv-a')).toEqual(expectedAfterSnapshots(day1));
    const ids = await subscriberIds('csv-a');
    for (const [ref, id] of ids) {
      expect(id).toMatch(/^sub_[0-9a-z]{26}$/);
      expect(id).not.toContain(ref);
    }
    // The same customers at another ISP get other ids: the id is not derived from the ref.
    await intake.ingest('csv-b', 'abonnes_1.csv', csv(day1));
    const other = await subscriberIds('csv-b');
    for (const [ref, id] of ids) expect(other.get(ref)).not.toBe(id);
  });

  it('turns the next snapshot into commands for the changed customers only', async () => {
    const before = await subscriberIds('csv-a');
    const feedId = await intake.ingest('csv-a', 'abonnes_2.csv', csv(day2));
    const feed = await intake.ledger.get(feedId);
    expect(feed?.status).toBe('applied');
    const expected = expectedAfterSnapshots(day1, day2);
    expect(await storedState('csv-a')).toEqual(expected);

    const previous = expectedAfterSnapshots(day1);
    const changed = [...expected].filter(
      ([ref, s]) => JSON.stringify(previous.get(ref)) !== JSON.stringify(s),
    );
    const commands = (await batchesOf(feedId)).flatMap((b) => decodeCommands(b.commands));
    expect(commands).toHaveLength(changed.length);
    expect(changed.length).toBeGreaterThan(5);
    expect(changed.length).toBeLessThan(40);
    const counted =
      (feed?.subscribes ?? 0) +
      (feed?.changes ?? 0) +
      (feed?.suspends ?? 0) +
      (feed?.resumes ?? 0) +
      (feed?.cancels ?? 0);
    expect(counted).toBe(changed.length);
    // Known refs keep their subscriber ids.
    const after = await subscriberIds('csv-a');
    for (const [ref, id] of before) expect(after.get(ref)).toBe(id);
  });

  it('reads an export out of ref order through a sort, ending where the ordered one did', async () => {
    const shuffled = (customers: Customer[], seed: number) => {
      const random = seededRandom(seed);
      return customers
        .map((c) => ({ c, key: random() }))
        .sort((a, b) => a.key - b.key)
        .map(({ c }) => c);
    };

    const first = await intake.ingest('csv-shuffled', 'abonnes_1.csv', csv(shuffled(day1, 3)));
    const second = await intake.ingest('csv-shuffled', 'abonnes_2.csv', csv(shuffled(day2, 4)));

    expect((await intake.ledger.get(first))?.status).toBe('applied');
    expect((await intake.ledger.get(second))?.status).toBe('applied');
    expect(await storedState('csv-shuffled')).toEqual(expectedAfterSnapshots(day1, day2));
    const ways = intake
      .logLines()
      .filter((l) => l.msg === 'feed applied')
      .map((l) => `${l.isp} ${l.way}`);
    expect(ways).toEqual([
      'csv-a one pass',
      'csv-b one pass',
      'csv-a one pass',
      'csv-shuffled sorted, applied while diffing',
      'csv-shuffled sorted',
    ]);
  });

  it('records the same content under another name as a duplicate and applies nothing', async () => {
    const batchesBefore = await ctx().connectorDb('provisioning_batches').count({ n: '*' });
    const stateBefore = await storedState('csv-a');
    const id = await intake.ingest('csv-a', 'copy-of-abonnes_2.csv', csv(day2));
    const feeds = await intake.ledger.list({ ispId: 'csv-a' });
    const duplicate = feeds.find((f) => f.name === 'copy-of-abonnes_2.csv');
    expect(duplicate?.status).toBe('duplicate');
    expect(id).not.toBe(duplicate?.id); // ingest answers with the original
    expect((await intake.ledger.get(id))?.name).toBe('abonnes_2.csv');
    expect(await ctx().connectorDb('provisioning_batches').count({ n: '*' })).toEqual(
      batchesBefore,
    );
    expect(await storedState('csv-a')).toEqual(stateBefore);
  });

  it('queues commands that hold ids, modules, status and times only', async () => {
    const jobs = await intake.queues.provisioning.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(jobs.length).toBeGreaterThan(0);
    const refs = [...(await subscriberIds('csv-a')).keys()];
    const emails = day1.map((c) => c.email);
    const names = day1.map((c) => c.lastName);
    const inRedis = jobs.map((j) => JSON.stringify(j.data)).join('\n');
    const inOutbox = (await ctx().connectorDb('provisioning_batches').select('commands'))
      .map((r) => r.commands)
      .join('\n');
    const log = intake.logText();
    for (const text of [inRedis, inOutbox, log]) {
      for (const secret of [...refs, ...emails, ...names]) expect(text).not.toContain(secret);
    }
    for (const job of jobs) expect(Object.keys(job.data).sort()).toEqual(['batchId', 'ispId']);
    const stored = inOutbox.split('\n')[0] as string;
    expect(Object.keys(JSON.parse(stored)).sort()).toEqual(['c', 'm', 'o', 'v']);
    const command = decodeCommands(stored)[0] as object;
    expect(Object.keys(command).sort()).toEqual(
      [
        'effectiveAt',
        'key',
        'kind',
        'modules',
        'offer',
        'status',
        'subscriberId',
        'version',
      ].sort(),
    );
  });
});

describe('bad records', () => {
  const customers = [...generateCustomers(20, 21)];
  const rows = [...renderCsv(customers)];

  function withRow(index: number, edit: (row: string) => string): Buffer {
    const copy = [...rows];
    copy[index] = `${edit((copy[index] as string).trimEnd())}\r\n`;
    return encode(copy, 'windows-1252');
  }

  it.each([
    [
      'a short row',
      (r: string) => r.split(';').slice(0, 4).join(';'),
      null,
      /expected 8 columns, found 4/,
    ],
    ['an unknown offer', (r: string) => r.replace(/SECU_\w+/, 'SECU_OR'), 'offer', /SECU_OR/],
    [
      'an unknown status word',
      (r: string) => r.replace(/;(Actif|Suspendu|Résilié);/, ';Gelé;'),
      'status',
      /GELÉ/,
    ],
    [
      'an impossible date',
      (r: string) => r.replace(/\d\d\/\d\d\/\d{4}/, '31/02/2026'),
      'effectiveDate',
      /31 February 2026/,
    ],
    ['a malformed ref', (r: string) => r.replace(/^\d+/, 'ABC'), 'customerRef', /does not match/],
  ])(
    'rejects %s with file, line, field and reason, and applies the rest',
    async (_, edit, field, reason) => {
      const name = `rows-${field ?? 'short'}.csv`;
      const feedId = await intake.ingest('csv-rows', name, withRow(5, edit));
      const feed = await intake.ledger.get(feedId);
      expect(feed).toMatchObject({ status: 'applied', records: 20, rejected: 1 });
      const rejects = await intake.ledger.rejectsOf(feedId);
      expect(rejects).toHaveLength(1);
      expect(rejects[0]).toMatchObject({ line: 6, field });
      expect(rejects[0]?.reason).toMatch(reason);
      const outbox = join(intake.isp('csv-rows').workDir, 'outbox', 'rejects');
      const file = readdirSync(outbox).find((f) => f.includes(feedId));
      expect(file).toBeDefined();
      const bytes = readFileSync(join(outbox, file as string));
      expect(bytes.subarray(0, 3).toString('hex')).toBe('efbbbf'); // a BOM for spreadsheets
      const lines = bytes.subarray(3).toString('utf8').trimEnd().split('\n');
      expect(lines[0]).toBe('file;line;field;value;reason');
      expect(lines[1]?.startsWith(`${name};6;${field ?? ''};`)).toBe(true);
      expect(lines).toHaveLength(2);
    },
  );

  it('rejects every row of a duplicated customer ref and keeps that customer as stored', async () => {
    const copy = [...rows];
    const duplicated = copy[3] as string;
    copy.push(duplicated.replace(/SECU_\w+/, 'SECU_INTEGRAL'));
    const before = (await storedState('csv-rows')).get(customers[2]?.ref as string);
    expect(before).toBeDefined();
    const records = (outcome: string) =>
      metricValue('relais_feed_records_total', { isp: 'csv-rows', outcome });
    const [appliedBefore, rejectedBefore] = [
      (await records('applied')) ?? 0,
      await records('rejected'),
    ];
    const feedId = await intake.ingest('csv-rows', 'dup.csv', encode(copy, 'windows-1252'));
    const feed = await intake.ledger.get(feedId);
    expect(feed).toMatchObject({ status: 'applied', rejected: 2, cancels: 0 });
    expect(await records('rejected')).toBe((rejectedBefore ?? 0) + 2);
    expect(await records('applied')).toBe(appliedBefore + (feed?.applied ?? Number.NaN));
    const rejects = await intake.ledger.rejectsOf(feedId);
    expect(rejects.map((r) => r.line)).toEqual([4, 22]);
    expect(rejects[0]?.reason).toMatch(/appears 2 times/);
    expect((await storedState('csv-rows')).get(customers[2]?.ref as string)).toEqual(before);
  });
});

describe('refused files', () => {
  async function expectRefused(ispId: string, name: string, bytes: Buffer, code: string) {
    const before = await ctx()
      .connectorDb('subscribers')
      .where({ isp_id: ispId })
      .count({ n: '*' });
    const failures = { isp: ispId, code };
    const failedBefore = (await metricValue('relais_feed_failures_total', failures)) ?? 0;
    const feedId = await intake.ingest(ispId, name, bytes);
    const feed = await intake.ledger.get(feedId);
    expect(feed).toMatchObject({ status: 'failed', errorCode: code });
    expect(await metricValue('relais_feed_failures_total', failures)).toBe(failedBefore + 1);
    expect(feed?.errorMessage).toContain(name);
    expect(
      await ctx().connectorDb('subscribers').where({ isp_id: ispId }).count({ n: '*' }),
    ).toEqual(before);
    expect(await batchesOf(feedId)).toEqual([]);
    // The bytes stay for a person to look at.
    const kept = join(intake.isp(ispId).workDir, 'feeds', `${feed?.sha256}.feed`);
    expect(existsSync(kept)).toBe(true);
    expect(intake.logText()).toContain(code);
    return feed;
  }

  it('refuses a file whose header is in the wrong encoding, naming the setting to fix', async () => {
    const text = `${CSV_HEADER}\r\n10000001;Dupont;Zoé;z@x.fr;SECU_ESSENTIEL;;Actif;01/02/2026\r\n`;
    const utf8 = await expectRefused(
      'csv-strict',
      'utf8.csv',
      Buffer.from(text, 'utf8'),
      'FEED_ENCODING_INVALID',
    );
    expect(utf8?.errorMessage).toBe(
      'utf8.csv:1: the header lacks column "N° client": the header reads like utf-8 decoded as windows-1252 ("é" as "Ã©"); the file looks like utf-8 while intake.format.encoding is windows-1252',
    );

    // The other way round: a Windows-1252 export under a config that says utf-8.
    const latin1 = await expectRefused(
      'csv-utf8',
      'latin1.csv',
      encode([text], 'windows-1252'),
      'FEED_ENCODING_INVALID',
    );
    expect(latin1?.errorMessage).toBe(
      'latin1.csv:1: the header lacks column "N° client": the header holds bytes that are not valid utf-8 (is the encoding right?); the file looks like iso-8859-1 or windows-1252 while intake.format.encoding is utf-8',
    );
  });

  it('refuses a file missing a mapped column', async () => {
    const text = 'N° client;Offre;Statut\r\n10000001;SECU_ESSENTIEL;Actif\r\n';
    await expectRefused(
      'csv-strict',
      'cols.csv',
      encode([text], 'windows-1252'),
      'FEED_COLUMNS_MISSING',
    );
  });

  it('refuses an empty file (a header only) and a zero-byte file', async () => {
    await expectRefused(
      'csv-strict',
      'empty.csv',
      encode([`${CSV_HEADER}\r\n`], 'windows-1252'),
      'FEED_EMPTY',
    );
    await expectRefused('csv-strict', 'zero.csv', Buffer.alloc(0), 'FEED_ZERO_BYTES');
  });

  it('refuses a file with more rejects than the ISP allows, and still sends the rejects back', async () => {
    const customers = [...generateCustomers(10, 5)];
    const rows = [...renderCsv(customers)].map((r, i) =>
      i > 0 && i <= 2 ? r.replace(/SECU_\w+/, 'NOPE') : r,
    );
    const feed = await expectRefused(
      'csv-strict',
      'many.csv',
      encode(rows, 'windows-1252'),
      'FEED_TOO_MANY_REJECTS',
    );
    expect(feed).toMatchObject({ records: 10, rejected: 2 });
    const outbox = join(intake.isp('csv-strict').workDir, 'outbox', 'rejects');
    expect(readdirSync(outbox).some((f) => f.includes(feed?.id as string))).toBe(true);
  });

  it('refuses a truncated fixed-width file whose trailer does not match', async () => {
    const lines = [...generateCustomers(5, 9)].map((customer) => ({
      customer,
      op: 'SUB' as const,
    }));
    const text = [...renderFixedWidth(lines)];
    text.splice(3, 1); // a detail lost in transfer
    await expectRefused(
      'fixed-a',
      'MVT-cut.txt',
      encode(text, 'iso-8859-1'),
      'FEED_TRAILER_MISMATCH',
    );
    const noTrailer = [...renderFixedWidth(lines)].slice(0, -1);
    await expectRefused(
      'fixed-a',
      'MVT-notrailer.txt',
      encode(noTrailer, 'iso-8859-1'),
      'FEED_TRAILER_MISSING',
    );
  });

  it('refuses XML with a DOCTYPE or an entity bomb before reading any record', async () => {
    const xml = [...renderXml(generateCustomers(3, 4))].join('');
    const bomb = xml.replace(
      '<at:Abonnes',
      '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n<at:Abonnes',
    );
    await expectRefused('xml-a', 'bomb.xml', Buffer.from(bomb), 'FEED_XML_DOCTYPE');
    const truncated = xml.slice(0, Math.floor(xml.length * 0.6));
    await expectRefused('xml-a', 'cut.xml', Buffer.from(truncated), 'FEED_XML_MALFORMED');
  });
});

describe('safety valve', () => {
  const day1 = [...generateCustomers(100, 31)];

  it('holds a snapshot that would cancel too many, applies it on approval', async () => {
    await intake.ingest('csv-valve', 'v1.csv', csv(day1));
    const before = await storedState('csv-valve');
    const shrunk = day1.slice(0, 70); // 30 % missing
    const feedId = await intake.ingest('csv-valve', 'v2.csv', csv(shrunk));
    const held = await intake.ledger.get(feedId);
    expect(held).toMatchObject({ status: 'held' });
    expect(held?.errorMessage).toMatch(/would cancel \d+ of \d+ active subscribers/);
    expect(await storedState('csv-valve')).toEqual(before);
    expect(intake.logText()).toContain('snapshot held for approval');
    const valve = { isp: 'csv-valve' };
    expect(await metricValue('relais_feeds_total', { ...valve, status: 'held' })).toBe(1);
    expect(await metricValue('relais_feeds_held', valve)).toBe(1);
    expect(await metricValue('relais_feeds_total', { ...valve, status: 'applied' })).toBe(1);

    const change = (kind: string) =>
      metricValue('relais_feed_changes_total', { isp: 'csv-valve', kind });
    expect(await change('subscribe')).toBe(day1.filter((c) => c.status !== 'cancelled').length);
    const cancelsBefore = (await change('cancel')) ?? 0;
    const { feed } = await intake.intake.approve(feedId);
    expect(feed.status).toBe('applied');
    expect(feed.cancels).toBeGreaterThan(0);
    expect(await change('cancel')).toBe(cancelsBefore + feed.cancels);
    expect(await storedState('csv-valve')).toEqual(expectedAfterSnapshots(day1, shrunk));
    expect(await metricValue('relais_feeds_held', valve)).toBe(0);
    expect(await metricValue('relais_feeds_total', { ...valve, status: 'held' })).toBe(1);
    expect(await metricValue('relais_feeds_total', { ...valve, status: 'applied' })).toBe(2);
  });

  it('drops a held snapshot on rejection, and supersedes a held one when a newer applies', async () => {
    const now = await storedState('csv-valve');
    const dropped = await intake.ingest('csv-valve', 'v3.csv', csv(day1.slice(0, 20)));
    expect((await intake.ledger.get(dropped))?.status).toBe('held');
    expect(await metricValue('relais_feeds_held', { isp: 'csv-valve' })).toBe(1);
    const rejected = await intake.intake.reject(dropped);
    expect(rejected.status).toBe('failed');
    expect(await metricValue('relais_feeds_held', { isp: 'csv-valve' })).toBe(0);
    expect(await storedState('csv-valve')).toEqual(now);
    await expect(intake.intake.approve(dropped)).rejects.toMatchObject({ code: 'FEED_NOT_HELD' });

    const stale = await intake.ingest('csv-valve', 'v4.csv', csv(day1.slice(0, 10)));
    expect((await intake.ledger.get(stale))?.status).toBe('held');
    const fresh = await intake.ingest('csv-valve', 'v5.csv', csv(day1.slice(0, 69)));
    expect((await intake.ledger.get(fresh))?.status).toBe('applied');
    expect(await intake.ledger.get(stale)).toMatchObject({
      status: 'failed',
      errorCode: 'FEED_SUPERSEDED',
    });
  });
});

describe('delta intake', () => {
  it('applies one customer’s operations in effective-date order, whatever the file order', async () => {
    const [a, b] = [...generateCustomers(2, 41)] as [Customer, Customer];
    const d = (day: number) => ({ y: 2026, m: 11, d: day });
    const subscribe = renderFixedWidth([
      { customer: a, op: 'SUB', date: d(1) },
      { customer: b, op: 'SUB', date: d(1) },
    ]);
    await intake.ingest('fixed-a', 'MVT1.txt', encode(subscribe, 'iso-8859-1'));
    const text = renderFixedWidth([
      { customer: a, op: 'REP', date: d(5) },
      { customer: a, op: 'SUS', date: d(3) },
      { customer: b, op: 'RES', date: d(4) },
      { customer: b, op: 'SUS', date: d(2) },
    ]);
    const feedId = await intake.ingest('fixed-a', 'MVT2.txt', encode(text, 'iso-8859-1'));
    expect(await intake.ledger.get(feedId)).toMatchObject({
      status: 'applied',
      suspends: 2,
      resumes: 1,
      cancels: 1,
      rejected: 0,
    });
    const state = await storedState('fixed-a');
    expect(state.get(a.ref)?.status).toBe('active');
    expect(state.get(b.ref)?.status).toBe('cancelled');
    const commands = (await batchesOf(feedId)).flatMap((x) => decodeCommands(x.commands));
    const ids = await subscriberIds('fixed-a');
    const ofA = commands.filter((c: { subscriberId: string }) => c.subscriberId === ids.get(a.ref));
    expect(ofA.map((c: { kind: string }) => c.kind)).toEqual(['suspend', 'resume']);
    expect(ofA.map((c: { version: number }) => c.version)).toEqual([2, 3]);
  });

  it('rejects an operation of a later file dated before what an earlier file applied', async () => {
    const [a, b, ...others] = [...generateCustomers(7, 43)].map((x, i) => ({
      ...x,
      ref: `${39999990 + i}`,
    }));
    const d = (day: number) => ({ y: 2026, m: 11, d: day });
    const first = renderFixedWidth([
      { customer: a as Customer, op: 'SUB', date: d(1) },
      { customer: b as Customer, op: 'SUB', date: d(1) },
      { customer: a as Customer, op: 'SUS', date: d(10) },
    ]);
    await intake.ingest('fixed-a', 'MVT4.txt', encode(first, 'iso-8859-1'));
    // A late file: a's resume predates the suspension already applied; b's cancel does not.
    // New subscribers keep the one reject under the ISP's 20 % threshold.
    const late = renderFixedWidth([
      { customer: a as Customer, op: 'REP', date: d(8) },
      { customer: b as Customer, op: 'RES', date: d(8) },
      ...others.map((customer) => ({ customer, op: 'SUB' as const, date: d(8) })),
    ]);
    const feedId = await intake.ingest('fixed-a', 'MVT5.txt', encode(late, 'iso-8859-1'));

    expect(await intake.ledger.get(feedId)).toMatchObject({
      status: 'applied',
      cancels: 1,
      resumes: 0,
      subscribes: 5,
      rejected: 1,
    });
    const [reject] = await intake.ledger.rejectsOf(feedId);
    expect(reject).toMatchObject({ line: 2, field: 'effectiveDate' });
    expect(reject?.reason).toMatch(/dated before the last operation applied .*\(2026-11-\d\d\)/);
    const state = await storedState('fixed-a');
    expect(state.get((a as Customer).ref)?.status).toBe('suspended');
    expect(state.get((b as Customer).ref)?.status).toBe('cancelled');
  });

  it('rejects an operation that makes no sense for the customer, with the reason', async () => {
    const [c, ...others] = [...generateCustomers(6, 99)].map((x, i) => ({
      ...x,
      ref: `${29999990 + i}`,
    }));
    const text = renderFixedWidth([
      { customer: c as Customer, op: 'REP' },
      ...others.map((customer) => ({ customer, op: 'SUB' as const })),
    ]);
    const feedId = await intake.ingest('fixed-a', 'MVT3.txt', encode(text, 'iso-8859-1'));
    expect(await intake.ledger.get(feedId)).toMatchObject({
      status: 'applied',
      subscribes: 5,
      rejected: 1,
    });
    const [reject] = await intake.ledger.rejectsOf(feedId);
    expect(reject?.reason).toMatch(/unknown|not subscribed|never/i);
  });
});
