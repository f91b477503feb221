import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { licensingDepsOf } from '../../test/harness/licensing.js';
import { seedLicences } from '../../test/harness/seed-licences.js';
import type { LicensingDeps } from '../context.js';
import { appendEvents, type LedgerEvent } from '../ledger.js';
import { closeBillingPeriod, insertLinesAsRows } from './close.js';
import { readRatedLines } from './lines.js';
import type { RatedLine } from './rated-line.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const isp = (billing: Record<string, unknown> = {}) =>
  stringify({ ...shipped, timeZone: 'Europe/Paris', billing: { ...shipped.billing, ...billing } });

const ctx = useTestContext({
  isps: {
    plain: isp(),
    early: isp(),
    noprice: isp(),
    race: isp(),
    crash: isp(),
    dup: isp(),
    twin: isp(),
    late: isp(),
    daily: isp({ proration: 'daily' }),
  },
});

let clock = new Date('2026-12-05T08:00:00Z');
let deps: LicensingDeps;
beforeAll(() => {
  deps = licensingDepsOf(ctx(), { now: () => clock });
});

interface Story {
  modules?: string[];
  /** Subscribed at (ISO). */
  from?: string;
  /** Activated at (ISO); none: never activated. */
  activated?: string;
  /** When the activation reached the ledger (default: when it happened). */
  activationRecorded?: string;
  more?: { type: LedgerEvent['type']; at: string; recorded?: string; modules?: string[] }[];
}

/** One subscriber with its licence, and its ledger told as a story. */
async function subscriber(
  ispId: string,
  story: Story,
): Promise<{ subscriberId: string; licenceId: string }> {
  const modules = story.modules ?? ['antivirus'];
  const [seeded] = await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 1, {
    ispId,
    modules,
  });
  const { subscriberId, licenceId } = seeded as { subscriberId: string; licenceId: string };
  const from = new Date(story.from ?? '2026-09-01T08:00:00Z');
  await appendEvents(
    ctx().licensingDb,
    [
      {
        ispId,
        subscriberId,
        licenceId,
        type: 'provisioned',
        data: { modules, status: 'active' },
        occurredAt: from,
      },
    ],
    from,
  );
  if (story.activated)
    await activate(ispId, subscriberId, licenceId, story.activated, story.activationRecorded);
  for (const e of story.more ?? []) {
    await appendEvents(
      ctx().licensingDb,
      [
        {
          ispId,
          subscriberId,
          licenceId,
          type: e.type,
          data: e.modules ? { modules: e.modules } : {},
          occurredAt: new Date(e.at),
        },
      ],
      new Date(e.recorded ?? e.at),
    );
  }
  return { subscriberId, licenceId };
}

async function activate(
  ispId: string,
  subscriberId: string,
  licenceId: string,
  at: string,
  recorded?: string,
) {
  await appendEvents(
    ctx().licensingDb,
    [
      {
        ispId,
        subscriberId,
        licenceId,
        type: 'activated',
        data: {},
        idempotencyKey: `activated:${licenceId}`,
        occurredAt: new Date(at),
      },
    ],
    new Date(recorded ?? at),
  );
  await ctx()
    .licensingDb('licences')
    .where({ id: licenceId })
    .update({ activated_at: new Date(at) });
}

async function linesOf(ispId: string, period: string): Promise<RatedLine[]> {
  const lines: RatedLine[] = [];
  for await (const line of readRatedLines(ctx().licensingDb, ispId, period, 7)) lines.push(line);
  return lines;
}

describe('closeBillingPeriod', () => {
  it('bills activated licences only, freezes the lines and says so when run again', async () => {
    clock = new Date('2026-12-05T08:00:00Z');
    const billed = await subscriber('plain', {
      modules: ['antivirus', 'firewall'],
      activated: '2026-10-03T10:00:00Z',
    });
    await subscriber('plain', { modules: ['antivirus'] }); // never activated
    await subscriber('plain', {
      activated: '2026-09-02T10:00:00Z',
      more: [{ type: 'cancelled', at: '2026-10-20T10:00:00Z' }],
    });
    await subscriber('plain', { activated: '2026-12-01T10:00:00Z' }); // after November

    const first = await closeBillingPeriod(deps, 'plain', '2026-11');
    expect(first.outcome).toBe('closed');
    expect(first.summary).toEqual({
      currency: 'EUR',
      lineCount: 2,
      total: '2.00',
      totals: [
        { module: 'antivirus', kind: 'charge', lines: 1, amount: '1.20' },
        { module: 'firewall', kind: 'charge', lines: 1, amount: '0.80' },
      ],
    });
    const lines = await linesOf('plain', '2026-11');
    expect(lines.map((l) => [l.lineId, l.amount])).toEqual([
      [`2026-11/${billed.subscriberId}/${billed.licenceId}/antivirus`, '1.20'],
      [`2026-11/${billed.subscriberId}/${billed.licenceId}/firewall`, '0.80'],
    ]);
    const activation = await ctx()
      .licensingDb('subscription_events')
      .where({ licence_id: billed.licenceId, type: 'activated' })
      .first('id');
    expect(lines[0]?.activationEventId).toBe(String(activation.id));

    const again = await closeBillingPeriod(deps, 'plain', '2026-11');
    expect(again.outcome).toBe('already-closed');
    expect(again.summary).toEqual(first.summary);
    expect(await linesOf('plain', '2026-11')).toEqual(lines);
  });

  it('stores the same rows with INSERTs when the server refuses LOAD DATA LOCAL', async () => {
    // The first test closed plain 2026-11 through LOAD DATA; write its lines again the other way.
    const loaded = await linesOf('plain', '2026-11');
    expect(loaded.length).toBeGreaterThan(0);
    const db = ctx().licensingDb;
    await db.transaction(async (trx) => {
      await trx('rated_lines').where({ isp_id: 'plain', period: '2026-11' }).delete();
      await insertLinesAsRows(trx, loaded);
    });
    expect(await linesOf('plain', '2026-11')).toEqual(loaded);
  });

  it('prorates daily per ISP', async () => {
    clock = new Date('2026-12-05T08:00:00Z');
    await subscriber('daily', {
      activated: '2026-10-03T10:00:00Z',
      more: [
        { type: 'suspended', at: '2026-11-10T09:00:00Z' },
        { type: 'resumed', at: '2026-11-20T08:00:00Z' },
      ],
    });
    const result = await closeBillingPeriod(deps, 'daily', '2026-11');
    expect(result.summary.total).toBe('0.84'); // 21 days of 30 at 1.20
  });

  it('refuses to close before period end plus the cutoff days, unless forced', async () => {
    clock = new Date('2026-12-03T12:00:00Z'); // the cutoff ends 3 December 23:00Z
    await subscriber('early', { activated: '2026-10-03T10:00:00Z' });
    await expect(closeBillingPeriod(deps, 'early', '2026-11')).rejects.toMatchObject({
      code: 'BILLING_PERIOD_NOT_CLOSABLE',
      message: expect.stringContaining('closes at 2026-12-03T23:00:00.000Z'),
    });
    expect(await ctx().licensingDb('billing_closes').where({ isp_id: 'early' })).toEqual([]);
    const forced = await closeBillingPeriod(deps, 'early', '2026-11', { force: true });
    expect(forced.summary.lineCount).toBe(1);
  });

  it('refuses a period with an entitled module that has no price, naming it, and keeps nothing', async () => {
    clock = new Date('2026-12-05T08:00:00Z');
    await subscriber('noprice', {
      modules: ['antivirus', 'vpn'],
      activated: '2026-10-03T10:00:00Z',
    });
    await expect(closeBillingPeriod(deps, 'noprice', '2026-11')).rejects.toMatchObject({
      code: 'BILLING_PRICE_MISSING',
      message: expect.stringContaining('no price for module vpn'),
    });
    expect(await ctx().licensingDb('billing_closes').where({ isp_id: 'noprice' })).toEqual([]);
    expect(await ctx().licensingDb('rated_lines').where({ isp_id: 'noprice' })).toEqual([]);
  });

  it('closes once when two closes race', async () => {
    clock = new Date('2026-12-05T08:00:00Z');
    for (let i = 0; i < 40; i++) await subscriber('race', { activated: '2026-10-03T10:00:00Z' });
    const results = await Promise.all([
      closeBillingPeriod(deps, 'race', '2026-11', { pageSubscribers: 5 }),
      closeBillingPeriod(deps, 'race', '2026-11', { pageSubscribers: 5 }),
    ]);
    expect(results.map((r) => r.outcome).sort()).toEqual(['already-closed', 'closed']);
    expect(results[0]?.summary).toEqual(results[1]?.summary);
    const lines = await linesOf('race', '2026-11');
    expect(lines).toHaveLength(40);
    expect(new Set(lines.map((l) => l.subscriberId)).size).toBe(40);
    const [counted] = await ctx()
      .licensingDb('billing_closes')
      .where({ isp_id: 'race' })
      .count({ n: '*' });
    expect(Number(counted?.n)).toBe(1);
  });

  it('refuses a page whose line is already stored instead of skipping or doubling it', async () => {
    // Lines go in with LOAD DATA LOCAL, which turns a duplicate key into a warning; the close
    // must still fail and roll the page back rather than freeze a period missing a line.
    clock = new Date('2026-12-05T08:00:00Z');
    const { subscriberId, licenceId } = await subscriber('dup', {
      modules: ['antivirus', 'firewall'],
      activated: '2026-10-03T10:00:00Z',
    });
    const lineId = `2026-11/${subscriberId}/${licenceId}/firewall`;
    await ctx()
      .licensingDb('rated_lines')
      .insert({
        isp_id: 'dup',
        period: '2026-11',
        line_id: lineId,
        kind: 'charge',
        service_period: '2026-11',
        subscriber_id: subscriberId,
        licence_id: licenceId,
        module: 'firewall',
        days: 30,
        days_in_period: 30,
        quantity: '1',
        unit_price: '9.99',
        amount: '9.99',
        currency: 'EUR',
        activation_event_id: 1,
        activated_at: new Date('2026-10-03T10:00:00Z'),
      });
    await expect(closeBillingPeriod(deps, 'dup', '2026-11')).rejects.toThrow(
      /rated lines not written cleanly: 1 of 2 rows, 1 warnings: Duplicate entry/,
    );
    const stored = await ctx().licensingDb('rated_lines').where({ isp_id: 'dup' }).select('amount');
    expect(stored.map((r) => String(r.amount))).toEqual(['9.99']); // the page was rolled back
    const row = await ctx().licensingDb('billing_closes').where({ isp_id: 'dup' }).first();
    expect(row).toMatchObject({ status: 'running', cursor: null });
  });

  it('completes a close that crashed half-way to exactly the lines of a clean close', async () => {
    clock = new Date('2026-12-05T08:00:00Z');
    for (let i = 0; i < 23; i++) {
      const story: Story = { modules: ['antivirus', 'backup'], activated: '2026-10-03T10:00:00Z' };
      await subscriber('crash', story);
      await subscriber('twin', story);
    }
    await expect(
      closeBillingPeriod(deps, 'crash', '2026-11', {
        pageSubscribers: 5,
        afterPage: (page) => {
          if (page === 2) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    const partial = await ctx()
      .licensingDb('rated_lines')
      .where({ isp_id: 'crash' })
      .count({ n: '*' });
    expect(Number(partial[0]?.n)).toBe(20); // two pages of 5 subscribers, 2 modules each

    const resumed = await closeBillingPeriod(deps, 'crash', '2026-11', { pageSubscribers: 5 });
    const clean = await closeBillingPeriod(deps, 'twin', '2026-11');
    expect(resumed.outcome).toBe('closed');
    const strip = (lines: RatedLine[]) =>
      lines.map((l) => [l.module, l.amount, l.days, l.quantity]).sort();
    const crashed = await linesOf('crash', '2026-11');
    expect(crashed).toHaveLength(46);
    expect(new Set(crashed.map((l) => l.lineId)).size).toBe(46);
    expect(strip(crashed)).toEqual(strip(await linesOf('twin', '2026-11')));
    expect(resumed.summary.total).toBe(clean.summary.total);
  });

  it('turns late events of a closed period into adjustment lines of the next one', async () => {
    clock = new Date('2026-11-05T08:00:00Z');
    const cancelledLate = await subscriber('late', { activated: '2026-09-10T10:00:00Z' });
    const activatedLate = await subscriber('late', { from: '2026-10-02T08:00:00Z' });
    const october = await closeBillingPeriod(deps, 'late', '2026-10');
    expect(october.summary.lineCount).toBe(1);

    // After October closed: an activation of 20 October arrives, and the ISP backdates a
    // cancel to midnight on 1 October (Paris), so October was never due for that licence.
    await activate(
      'late',
      activatedLate.subscriberId,
      activatedLate.licenceId,
      '2026-10-20T10:00:00Z',
      '2026-11-10T09:00:00Z',
    );
    await appendEvents(
      ctx().licensingDb,
      [
        {
          ispId: 'late',
          subscriberId: cancelledLate.subscriberId,
          licenceId: cancelledLate.licenceId,
          type: 'cancelled',
          data: {},
          occurredAt: new Date('2026-09-30T22:00:00Z'),
        },
      ],
      new Date('2026-11-12T09:00:00Z'),
    );

    clock = new Date('2026-12-05T08:00:00Z');
    const november = await closeBillingPeriod(deps, 'late', '2026-11');
    const lines = await linesOf('late', '2026-11');
    const view = lines.map((l) => [l.lineId, l.kind, l.servicePeriod, l.amount, l.quantity]);
    expect(view).toEqual(
      [
        [
          `2026-11/${activatedLate.subscriberId}/${activatedLate.licenceId}/antivirus`,
          'charge',
          '2026-11',
          '1.20',
          '1',
        ],
        [
          `2026-11/adj/2026-10/${activatedLate.subscriberId}/${activatedLate.licenceId}/antivirus`,
          'adjustment',
          '2026-10',
          '1.20',
          '1',
        ],
        [
          `2026-11/adj/2026-10/${cancelledLate.subscriberId}/${cancelledLate.licenceId}/antivirus`,
          'adjustment',
          '2026-10',
          '-1.20',
          '-1',
        ],
      ].sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
    );
    expect(november.summary.total).toBe('1.20');
    // October itself is never rewritten.
    expect((await linesOf('late', '2026-10')).map((l) => l.amount)).toEqual(['1.20']);

    // The next close finds nothing new: no adjustment twice.
    clock = new Date('2027-01-05T08:00:00Z');
    const december = await closeBillingPeriod(deps, 'late', '2026-12');
    expect(december.summary.totals).toEqual([
      { module: 'antivirus', kind: 'charge', lines: 1, amount: '1.20' },
    ]);
  });

  it('refuses to close a period earlier than one already closed', async () => {
    clock = new Date('2027-01-05T08:00:00Z');
    await expect(closeBillingPeriod(deps, 'late', '2026-09')).rejects.toMatchObject({
      code: 'BILLING_PERIOD_OUT_OF_ORDER',
    });
  });
});
