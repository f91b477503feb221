import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { syncIsps } from '../connectors/isp-registry.js';
import { type SubscriberChange, subscriberBatches } from '../mappings/subscriber-store.js';
import { applyPrepared, prepareChanges } from '../mappings/subscriber-writes.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';

const demo = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');
const ctx = useTestContext({ isps: { 'isp-a': demo }, deployment: { mysql: { poolMax: 3 } } });

function change(ref: string, subscriberId = newId('sub')): SubscriberChange {
  return {
    customerRef: ref,
    subscriberId,
    isNew: true,
    status: 'active',
    offer: 'SECU_ESSENTIEL',
    modules: ['antivirus'],
    effectiveAt: new Date('2026-12-01T23:00:00.000Z'),
    version: 1,
    commands: [],
  };
}

/** Refs in an order that is not insertion order, some sharing prefixes, some not ASCII. */
const REFS = Array.from({ length: 1_200 }, (_, i) => `R${(i * 7919) % 1_200}`).concat([
  'Zoé',
  'Zoe',
  'a-lower',
]);

beforeAll(async () => {
  const db = ctx().connectorDb;
  await syncIsps(db, ctx().config.isps, silentLogger());
  const changes = REFS.map((ref) => change(ref));
  await db.transaction((trx) => applyPrepared(trx, prepareChanges('isp-a', 'feed_x', changes)));
});

describe('subscriberBatches', () => {
  it('hands over every subscriber once, in JavaScript string order of refs', async () => {
    const refs: string[] = [];
    let batches = 0;
    for await (const batch of subscriberBatches(ctx().connectorDb, 'isp-a')) {
      batches++;
      refs.push(...batch.map((s) => s.customerRef));
    }

    expect(refs).toEqual([...REFS].sort());
    expect(batches).toBeGreaterThan(1);
  });

  it('gives its connection back when the reader stops early', async () => {
    for (let run = 0; run < 5; run++) {
      for await (const _batch of subscriberBatches(ctx().connectorDb, 'isp-a')) break;
    }
    // Three connections in the pool: five abandoned scans that kept theirs would hang here.
    const [rows] = await ctx().connectorDb.raw('SELECT COUNT(*) AS n FROM subscribers');
    expect(Number(rows[0].n)).toBe(REFS.length);
  });
});

describe('prepareChanges', () => {
  it('refuses a subscriber id that is not one of ours rather than write it unescaped', () => {
    expect(() => prepareChanges('isp-a', 'feed_x', [change('R1', "sub_x', 'evil")])).toThrow(
      /not one of ours/,
    );
  });
});
