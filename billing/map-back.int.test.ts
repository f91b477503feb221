import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { syncIsps } from '../connectors/isp-registry.js';
import { newId } from '../platform/ids.js';
import { createLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import type { VendorRatedLine as RatedLine } from './invoice-line.js';
import { mapToCustomerRefs } from './map-back.js';

const isp = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({ isps: { one: isp, other: isp } });
const NOW = new Date('2026-12-04T10:15:00.000Z');

beforeAll(async () => {
  await syncIsps(ctx().connectorDb, ctx().config.isps, createLogger({ level: 'silent' }));
});

async function subscriber(ispId: string, ref: string): Promise<string> {
  const subscriberId = newId('sub');
  await ctx().connectorDb('subscribers').insert({
    isp_id: ispId,
    customer_ref: ref,
    subscriber_id: subscriberId,
    status: 'active',
    offer: 'SECU_ESSENTIEL',
    modules: 'antivirus',
    version: 1,
    created_at: NOW,
    updated_at: NOW,
  });
  return subscriberId;
}

function line(subscriberId: string, n: number): RatedLine {
  return {
    lineId: `2026-11/lic${n}/antivirus`,
    kind: 'charge',
    period: '2026-11',
    servicePeriod: '2026-11',
    ispId: 'one',
    subscriberId,
    licenceId: `lic${n}`,
    module: 'antivirus',
    days: 30,
    daysInPeriod: 30,
    quantity: '1',
    unitPrice: '1.20',
    amount: '1.20',
    currency: 'EUR',
    activationEventId: String(100 + n),
    activatedAt: '2026-11-02T09:00:00.000Z',
  };
}

async function* from<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

describe('mapping rated lines back to customer refs', () => {
  it('gives every line its customer ref, in order, across chunk boundaries', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i += 1) ids.push(await subscriber('one', `0000${i}`));
    const lines = ids.map((id, n) => line(id, n));
    const mapped = await collect(mapToCustomerRefs(ctx().connectorDb, 'one', from(lines), 3));
    expect(mapped.map((l) => [l.lineId, l.customerRef])).toEqual(
      lines.map((l, n) => [l.lineId, `0000${n}`]),
    );
    expect(mapped[2]).toMatchObject({ ...lines[2], customerRef: '00002' });
  });

  it('finds the ref of a subscriber erased since, in the erased list', async () => {
    const subscriberId = newId('sub');
    await ctx().connectorDb('erased_subscribers').insert({
      subscriber_id: subscriberId,
      isp_id: 'one',
      customer_ref: 'GONE-1',
      erased_at: NOW,
    });
    const [mapped] = await collect(
      mapToCustomerRefs(ctx().connectorDb, 'one', from([line(subscriberId, 50)])),
    );
    expect(mapped?.customerRef).toBe('GONE-1');
  });

  it('stops on a subscriber of another ISP or of nobody, naming the line', async () => {
    const elsewhere = await subscriber('other', 'X1');
    const lines = [line(await subscriber('one', 'OK1'), 60), line(elsewhere, 61)];
    await expect(collect(mapToCustomerRefs(ctx().connectorDb, 'one', from(lines)))).rejects.toThrow(
      `rated line 2026-11/lic61/antivirus names subscriber ${elsewhere}, unknown to this connector for one`,
    );
  });
});
