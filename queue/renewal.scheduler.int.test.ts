import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { IspConfig } from '../config/load.js';
import type { LicensingDeps } from '../licensing/context.js';
import { withNamedLock } from '../platform/named-lock.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { licensingDepsOf } from '../test/harness/licensing.js';
import { seedLicences } from '../test/harness/seed-licences.js';
import { renewDuePeriod, startRenewalScheduler } from './renewal.scheduler.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({
  isps: {
    daily: stringify(shipped),
    started: stringify({ ...shipped, timeZone: 'Asia/Tokyo' }),
    dormant: stringify({ ...shipped, enabled: false }),
  },
});

let clock = new Date('2026-06-01T00:20:00Z');
let deps: LicensingDeps;

beforeAll(() => {
  const c = ctx();
  deps = licensingDepsOf(c, { now: () => clock });
});

const ispOf = (id: string) => ctx().config.isps.get(id) as IspConfig;

describe('the renewal check', () => {
  it('closes the period that has just ended, then has nothing to do until the next one', async () => {
    const [lic] = await seedLicences(ctx().licensingDb, deps.keystore.keyHashSecret, 1, {
      ispId: 'daily',
      period: '2026-05',
    });
    clock = new Date('2026-05-31T22:10:00Z'); // 00:10 on 1 June in Paris
    expect(await renewDuePeriod(deps, ispOf('daily'))).toEqual({
      isp: 'daily',
      outcome: 'closed',
      period: '2026-05',
      renewed: 1,
      held: 0,
      lapsed: 0,
    });
    const row = await ctx().licensingDb('licences').where({ id: lic?.licenceId }).first();
    expect(row.period).toBe('2026-06');
    clock = new Date('2026-06-15T22:10:00Z');
    expect(await renewDuePeriod(deps, ispOf('daily'))).toEqual({
      isp: 'daily',
      outcome: 'up-to-date',
    });
  });

  it('leaves the ISP to the scheduler that holds its renewal lock', async () => {
    clock = new Date('2026-07-02T22:10:00Z'); // June has ended and is not closed yet
    let result: unknown;
    await withNamedLock(ctx().licensingDb, 'renewal:daily', async () => {
      result = await renewDuePeriod(deps, ispOf('daily'));
    });
    expect(result).toEqual({ isp: 'daily', outcome: 'busy' });
    const june = await ctx()
      .licensingDb('period_closes')
      .where({ isp_id: 'daily', period: '2026-06' })
      .first();
    expect(june).toBeUndefined();
  });
});

describe('the renewal scheduler', () => {
  it('checks every enabled ISP at start and stops cleanly', async () => {
    clock = new Date('2026-07-02T22:10:00Z');
    const scheduler = startRenewalScheduler({
      config: ctx().config,
      licensing: deps,
      log: deps.log,
    });
    // The start-up checks run in the background; poll for their rows.
    const deadline = Date.now() + 10_000;
    let closes: { isp_id: string; period: string; finished_at: Date | null }[] = [];
    while (Date.now() < deadline) {
      closes = await ctx()
        .licensingDb('period_closes')
        .whereIn('isp_id', ['started', 'dormant'])
        .orWhere({ isp_id: 'daily', period: '2026-06' });
      if (closes.filter((c) => c.finished_at !== null).length >= 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await scheduler.stop();
    expect(closes.map((c) => [c.isp_id, c.period]).sort()).toEqual([
      ['daily', '2026-06'],
      ['started', '2026-06'],
    ]);
  });
});
