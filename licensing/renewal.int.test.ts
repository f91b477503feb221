import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { licensingDepsOf } from '../test/harness/licensing.js';
import { type SeedOptions, seedLicences } from '../test/harness/seed-licences.js';
import type { LicensingDeps } from './context.js';
import { renewPeriod } from './renewal.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const isp = (timeZone: string, graceDays = 7) =>
  stringify({ ...shipped, timeZone, licensing: { graceDays } });

const ctx = useTestContext({
  isps: {
    paris: isp('Europe/Paris'),
    autumn: isp('Europe/Paris', 3),
    resume: isp('Europe/Paris'),
    race: isp('Europe/Paris'),
    newyork: isp('America/New_York', 0),
    neighbour: isp('Europe/Paris'),
    late: isp('Europe/Paris'),
    dormant: stringify({ ...shipped, enabled: false }),
  },
});

let clock = new Date('2026-04-02T08:00:00Z');
let deps: LicensingDeps;

beforeAll(() => {
  const c = ctx();
  deps = licensingDepsOf(c, { now: () => clock });
});

const seed = (count: number, options: SeedOptions) =>
  seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, count, options);

interface LicenceState {
  id: string;
  period: string | null;
  valid_until: Date | null;
  status: string;
}

async function licence(id: string): Promise<LicenceState> {
  return ctx().licensingDb('licences').where({ id }).first('id', 'period', 'valid_until', 'status');
}

interface EventRow {
  licence_id: string | null;
  type: string;
  data: Record<string, unknown> | null;
  idempotency_key: string | null;
}

async function events(ispId: string, type?: string): Promise<EventRow[]> {
  return ctx()
    .licensingDb('subscription_events')
    .where({ isp_id: ispId })
    .modify((q) => {
      if (type) q.andWhere({ type });
    })
    .orderBy('id')
    .select('licence_id', 'type', 'data', 'idempotency_key');
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** When the server applied the cancel (the seed stamps rows with the wall clock). */
async function cancelledAt(subscriberId: string, at: Date): Promise<void> {
  await ctx()
    .licensingDb('subscriptions')
    .where({ subscriber_id: subscriberId })
    .update({ updated_at: at });
}

describe('closing a period', () => {
  it('renews active licences to the end of the next period plus grace, across the spring DST change', async () => {
    clock = new Date('2026-03-01T00:30:00Z'); // 01:30 in Paris on 1 March: February has ended
    const [active] = await seed(1, { ispId: 'paris', period: '2026-02' });
    const [unset] = await seed(1, { ispId: 'paris', period: null });
    const result = await renewPeriod(deps, 'paris', '2026-02');
    expect(result).toEqual({ renewed: 2, held: 0, lapsed: 0, alreadyClosed: false });
    // March ends at midnight CEST (22:00Z on 31 March, after the 29 March change), + 7 days.
    for (const id of [active?.licenceId, unset?.licenceId]) {
      const row = await licence(id as string);
      expect(row.period).toBe('2026-03');
      expect(iso(row.valid_until)).toBe('2026-04-07T22:00:00.000Z');
    }
    const renewed = await events('paris', 'renewed');
    expect(renewed.map((e) => e.idempotency_key).sort()).toEqual(
      [`renewed:${active?.licenceId}:2026-03`, `renewed:${unset?.licenceId}:2026-03`].sort(),
    );
    expect(renewed[0]?.data).toEqual({
      period: '2026-03',
      validUntil: '2026-04-07T22:00:00.000Z',
    });
  });

  it('holds suspended licences, lapses cancelled ones at period end, and leaves the rest alone', async () => {
    clock = new Date('2026-11-01T00:10:00Z');
    const longValid = new Date('2026-11-20T00:00:00Z');
    const [active] = await seed(1, { ispId: 'autumn', period: '2026-10' });
    const [suspended] = await seed(1, {
      ispId: 'autumn',
      status: 'suspended',
      period: '2026-10',
      validUntil: longValid,
    });
    const [cancelled] = await seed(1, {
      ispId: 'autumn',
      status: 'cancelled',
      period: '2026-10',
      validUntil: longValid,
    });
    // Cancelled in October, the period closed.
    await cancelledAt(cancelled?.subscriberId as string, new Date('2026-10-20T08:00:00Z'));
    const [ahead] = await seed(1, { ispId: 'autumn', period: '2026-11', validUntil: longValid });
    const [revoked] = await seed(1, {
      ispId: 'autumn',
      period: '2026-10',
      licenceStatus: 'revoked',
      validUntil: longValid,
    });
    const [elsewhere] = await seed(1, {
      ispId: 'neighbour',
      period: '2026-10',
      validUntil: longValid,
    });

    const result = await renewPeriod(deps, 'autumn', '2026-10');
    expect(result).toEqual({ renewed: 1, held: 1, lapsed: 1, alreadyClosed: false });

    // November ends at midnight CET (23:00Z on 30 November, after the 25 October change), + 3.
    const renewed = await licence(active?.licenceId as string);
    expect(renewed.period).toBe('2026-11');
    expect(iso(renewed.valid_until)).toBe('2026-12-03T23:00:00.000Z');
    const held = await licence(suspended?.licenceId as string);
    expect(held.period).toBe('2026-10');
    expect(iso(held.valid_until)).toBe(longValid.toISOString());
    // October ends at midnight CET on 31 October: 23:00Z.
    const lapsed = await licence(cancelled?.licenceId as string);
    expect(iso(lapsed.valid_until)).toBe('2026-10-31T23:00:00.000Z');
    for (const untouched of [ahead, revoked, elsewhere]) {
      const row = await licence(untouched?.licenceId as string);
      expect(iso(row.valid_until)).toBe(longValid.toISOString());
    }
    expect((await licence(ahead?.licenceId as string)).period).toBe('2026-11');
    expect(await events('neighbour')).toEqual([]);

    const ledger = await events('autumn');
    expect(ledger.map((e) => [e.type, e.licence_id]).sort()).toEqual(
      [
        ['lapsed', cancelled?.licenceId],
        ['renewed', active?.licenceId],
      ].sort(),
    );

    const close = await ctx()
      .licensingDb('period_closes')
      .where({ isp_id: 'autumn', period: '2026-10' })
      .first();
    expect(close).toMatchObject({ renewed: 1, held: 1, lapsed: 1 });
    expect(close.started_at).toBeInstanceOf(Date);
    expect(close.finished_at).toBeInstanceOf(Date);
  });

  it('is a no-op the second time: nothing changes and no event is added', async () => {
    clock = new Date('2026-11-01T06:00:00Z');
    const before = await ctx().licensingDb('licences').where({ isp_id: 'autumn' }).orderBy('id');
    const eventCount = (await events('autumn')).length;
    const again = await renewPeriod(deps, 'autumn', '2026-10');
    expect(again).toEqual({ renewed: 1, held: 1, lapsed: 1, alreadyClosed: true });
    expect(await ctx().licensingDb('licences').where({ isp_id: 'autumn' }).orderBy('id')).toEqual(
      before,
    );
    expect(await events('autumn')).toHaveLength(eventCount);
  });

  it('lapses a cancelled licence once: a later close does not record it again', async () => {
    clock = new Date('2026-12-01T06:00:00Z');
    const eventsBefore = await events('autumn', 'lapsed');
    const result = await renewPeriod(deps, 'autumn', '2026-11');
    expect(result.lapsed).toBe(0);
    expect(await events('autumn', 'lapsed')).toEqual(eventsBefore);
    // The licence renewed to November moves on to December; the suspended one is still held.
    expect(result).toMatchObject({ renewed: 2, held: 1 });
  });

  it('finishes a run killed half-way, with no double event and exact counts', async () => {
    clock = new Date('2026-04-01T06:00:00Z');
    const seeded = await seed(25, { ispId: 'resume', period: '2026-03' });
    await seed(4, { ispId: 'resume', status: 'suspended', period: '2026-03' });
    await expect(
      renewPeriod(deps, 'resume', '2026-03', {
        chunkSize: 10,
        afterChunk: (chunk) => {
          if (chunk === 1) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    const half = await ctx()
      .licensingDb('period_closes')
      .where({ isp_id: 'resume', period: '2026-03' })
      .first();
    expect(half.finished_at).toBeNull();
    expect(Number(half.renewed) + Number(half.held)).toBe(10);

    const progress: number[] = [];
    const result = await renewPeriod(deps, 'resume', '2026-03', {
      chunkSize: 10,
      onProgress: (p) => progress.push(p.scanned),
    });
    expect(result).toEqual({ renewed: 25, held: 4, lapsed: 0, alreadyClosed: false });
    expect(progress.at(-1)).toBe(29);
    const renewed = await events('resume', 'renewed');
    expect(renewed).toHaveLength(25);
    expect(new Set(renewed.map((e) => e.licence_id))).toEqual(
      new Set(seeded.map((s) => s.licenceId)),
    );
    const rows = await ctx().licensingDb('licences').where({ isp_id: 'resume', status: 'valid' });
    expect(rows.filter((r) => r.period === '2026-04')).toHaveLength(25);
  });

  it('counts every licence once when two runs of one close race', async () => {
    clock = new Date('2026-04-01T06:00:00Z');
    await seed(40, { ispId: 'race', period: '2026-03' });
    const [a, b] = await Promise.all([
      renewPeriod(deps, 'race', '2026-03', { chunkSize: 5 }),
      renewPeriod(deps, 'race', '2026-03', { chunkSize: 5 }),
    ]);
    expect([a?.renewed, b?.renewed]).toEqual([40, 40]);
    expect(await events('race', 'renewed')).toHaveLength(40);
    const close = await ctx()
      .licensingDb('period_closes')
      .where({ isp_id: 'race', period: '2026-03' })
      .first();
    expect(Number(close.renewed)).toBe(40);
  });
});

describe('a late close', () => {
  it('never cuts a licence to before the end of the period it was cancelled in', async () => {
    // November closed on 15 December: some customers cancelled in early December, after it.
    clock = new Date('2026-12-15T10:00:00Z');
    const graceEnd = new Date('2026-12-07T23:00:00Z'); // November's validity plus 7 days
    const [december] = await seed(1, {
      ispId: 'late',
      status: 'cancelled',
      period: '2026-11',
      validUntil: graceEnd,
    });
    const [unset] = await seed(1, {
      ispId: 'late',
      status: 'cancelled',
      period: '2026-11',
      validUntil: null,
    });
    const [november] = await seed(1, {
      ispId: 'late',
      status: 'cancelled',
      period: '2026-11',
      validUntil: graceEnd,
    });
    await cancelledAt(december?.subscriberId as string, new Date('2026-12-03T09:00:00Z'));
    await cancelledAt(unset?.subscriberId as string, new Date('2026-12-03T09:00:00Z'));
    await cancelledAt(november?.subscriberId as string, new Date('2026-11-20T09:00:00Z'));

    expect(await renewPeriod(deps, 'late', '2026-11')).toMatchObject({ lapsed: 3 });
    // December ends at 23:00Z on 31 December, November at 23:00Z on 30 November.
    expect(iso((await licence(december?.licenceId as string)).valid_until)).toBe(
      graceEnd.toISOString(),
    );
    expect(iso((await licence(unset?.licenceId as string)).valid_until)).toBe(
      '2026-12-31T23:00:00.000Z',
    );
    expect(iso((await licence(november?.licenceId as string)).valid_until)).toBe(
      '2026-11-30T23:00:00.000Z',
    );
    const lapsed = new Map(
      (await events('late', 'lapsed')).map((e) => [e.licence_id, e.data?.validUntil]),
    );
    expect(lapsed.get(december?.licenceId as string)).toBe(graceEnd.toISOString());
    expect(lapsed.get(unset?.licenceId as string)).toBe('2026-12-31T23:00:00.000Z');

    // The December close, on time, lapses nothing again and leaves the dates alone.
    clock = new Date('2027-01-01T06:00:00Z');
    expect(await renewPeriod(deps, 'late', '2026-12')).toMatchObject({ lapsed: 0 });
    expect(iso((await licence(unset?.licenceId as string)).valid_until)).toBe(
      '2026-12-31T23:00:00.000Z',
    );
    expect(await events('late', 'lapsed')).toHaveLength(3);
  });
});

describe('a disabled ISP', () => {
  it('still has its periods closed by hand: its customers keep their licences', async () => {
    clock = new Date('2026-04-01T06:00:00Z');
    const [lic] = await seed(1, { ispId: 'dormant', period: '2026-03' });
    expect(deps.config.isps.get('dormant')?.enabled).toBe(false);
    expect(await renewPeriod(deps, 'dormant', '2026-03')).toMatchObject({ renewed: 1 });
    expect((await licence(lic?.licenceId as string)).period).toBe('2026-04');
  });
});

describe('refusing a close', () => {
  it('refuses a period that has not ended in the ISP time zone', async () => {
    // 22:00 on 31 March in New York: March is still running there, not in Paris.
    clock = new Date('2026-04-01T02:00:00Z');
    await expect(renewPeriod(deps, 'newyork', '2026-03')).rejects.toMatchObject({
      code: 'PERIOD_INVALID',
      message: expect.stringMatching(/2026-03 has not ended yet in America\/New_York/),
    });
    const [lic] = await seed(1, { ispId: 'newyork', period: '2026-03' });
    clock = new Date('2026-04-01T04:00:00Z'); // midnight EDT
    expect(await renewPeriod(deps, 'newyork', '2026-03')).toMatchObject({ renewed: 1 });
    // April ends at midnight EDT (04:00Z on 1 May); grace 0.
    expect(iso((await licence(lic?.licenceId as string)).valid_until)).toBe(
      '2026-05-01T04:00:00.000Z',
    );
  });

  it('refuses a malformed period and an unknown ISP', async () => {
    for (const bad of ['2026-13', '2026-3', 'march', '0000-01']) {
      await expect(renewPeriod(deps, 'paris', bad)).rejects.toMatchObject({
        code: 'PERIOD_INVALID',
        message: expect.stringContaining(`"${bad}"`),
      });
    }
    await expect(renewPeriod(deps, 'nobody', '2026-01')).rejects.toMatchObject({
      code: 'ISP_UNKNOWN',
    });
  });
});
