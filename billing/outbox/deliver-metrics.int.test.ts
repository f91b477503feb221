/**
 * Invoice-line file deliveries counted per ISP, outcome and failure code, through the real
 * delivery ledger (MariaDB) and a real local outbox folder.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { billingOutboxSchema } from '../../config/billing-outbox-schema.js';
import type { IspConfig } from '../../config/load.js';
import { silentLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { readPrometheusText, sampleValue } from '../../test/harness/prometheus-text.js';
import { deliverFiles } from './deliver.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({ isps: { demo } });
const metrics = createMetrics({ defaultMetrics: false });

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'relais-outbox-metrics-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function localFile(dir: string, name: string, content: string): Promise<string> {
  await mkdir(join(work, dir), { recursive: true });
  const path = join(work, dir, name);
  await writeFile(path, content);
  return path;
}

describe('invoice-line delivery metrics', () => {
  it('counts each file by outcome and each failed delivery by code', async () => {
    const base = ctx().config.isps.get('demo') as IspConfig;
    const billing = base.billing as NonNullable<IspConfig['billing']>;
    const outbox = billingOutboxSchema.parse({ type: 'local', folder: join(work, 'outbox') });
    await mkdir(join(work, 'outbox'));
    const isp: IspConfig = { ...base, id: 'counted', billing: { ...billing, outbox } };
    const deps = { db: ctx().connectorDb, log: silentLogger(), lockWaitS: 5, metrics };

    const first = await localFile('a', 'lines-2026-11.csv', 'l1\r\n');
    await deliverFiles(deps, isp, '2026-11', [first]);
    await deliverFiles(deps, isp, '2026-11', [first]);
    const changed = await localFile('b', 'lines-2026-11.csv', 'l2\r\n');
    await expect(deliverFiles(deps, isp, '2026-11', [changed])).rejects.toMatchObject({
      code: 'BILLING_DELIVERY_CHANGED',
    });

    const page = readPrometheusText(await metrics.metrics());
    expect(page.problems).toEqual([]);
    const delivered = (outcome: string) =>
      sampleValue(page, 'relais_billing_deliveries_total', {
        isp: 'counted',
        channel: 'file',
        outcome,
      });
    expect([delivered('delivered'), delivered('already-delivered')]).toEqual([1, 1]);
    expect(
      sampleValue(page, 'relais_billing_delivery_failures_total', {
        isp: 'counted',
        channel: 'file',
        code: 'BILLING_DELIVERY_CHANGED',
      }),
    ).toBe(1);
  });
});
