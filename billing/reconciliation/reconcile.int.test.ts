import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IspConfig } from '../../config/load.js';
import { createLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { openTestIntake, type TestIntake } from '../../test/harness/intake.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { fetchNewestExport } from './export-source.js';
import { type ReconcileRequest, reconcilePeriod, reconciliationSettingsOf } from './reconcile.js';

const SAMPLES = join(packageRoot(), 'config/samples/demo-fai');
const EXPORT = join(SAMPLES, 'facturation_202612.csv');
const PERIOD = '2026-12';

const get = useTestContext({
  isps: { 'demo-fai': readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8') },
});

let intake: TestIntake;
let isp: IspConfig;
let subscribers: { customer_ref: string; subscriber_id: string; status: string; modules: string }[];

beforeAll(async () => {
  intake = await openTestIntake(get());
  await intake.ingest(
    'demo-fai',
    'abonnes_20261201.csv',
    readFileSync(join(SAMPLES, 'abonnes_20261201.csv')),
  );
  isp = intake.isp('demo-fai');
  subscribers = await get()
    .connectorDb('subscribers')
    .select('customer_ref', 'subscriber_id', 'status', 'modules')
    .where({ isp_id: 'demo-fai' });
});

afterAll(async () => {
  await intake?.close();
});

const VENDOR_PRICES: Record<string, string> = {
  antivirus: '1.20',
  firewall: '0.80',
  'parental-control': '0.90',
  backup: '1.50',
};

function line(
  ref: string,
  module: string,
  overrides: Partial<IspInvoiceLine> = {},
): IspInvoiceLine {
  return {
    lineId: `rl_${ref}_${module}`,
    kind: 'charge',
    period: PERIOD,
    servicePeriod: PERIOD,
    ispId: 'demo-fai',
    customerRef: ref,
    subscriberId: `sub_${ref}`,
    licenceId: `lic_${ref}`,
    module,
    days: 31,
    daysInPeriod: 31,
    quantity: '1',
    unitPrice: VENDOR_PRICES[module] ?? '1.00',
    amount: VENDOR_PRICES[module] ?? '1.00',
    currency: 'EUR',
    activationEventId: `ev_${ref}`,
    activatedAt: '2026-11-02T10:00:00.000Z',
    ...overrides,
  };
}

/** Never activated: the vendor bills nothing for them. */
const NOT_ACTIVATED = new Set(['10000003', '10000006', '10000020']);

/**
 * The vendor's lines: every active subscriber's modules, except the never-activated ones, a
 * licence entitled to antivirus only, an erased subscriber, and an adjustment of an earlier
 * period (which is not compared). Given in subscriber-id order, as the server streams them.
 */
async function* vendorLines(): AsyncGenerator<IspInvoiceLine> {
  const lines: IspInvoiceLine[] = [];
  for (const s of subscribers) {
    if (s.status !== 'active' || NOT_ACTIVATED.has(s.customer_ref)) continue;
    const modules = s.customer_ref === '10000008' ? ['antivirus'] : s.modules.split(',');
    for (const m of modules) lines.push(line(s.customer_ref, m, { subscriberId: s.subscriber_id }));
  }
  lines.push(line('00000001', 'antivirus'));
  lines.push(line('10000001', 'firewall', { kind: 'adjustment', servicePeriod: '2026-11' }));
  lines.sort((a, b) => (a.subscriberId < b.subscriberId ? -1 : 1));
  yield* lines;
}

function capture() {
  const text: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      text.push(String(chunk));
      done();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), text };
}

async function run(
  overrides: Partial<ReconcileRequest> = {},
  metrics = createMetrics({ defaultMetrics: false }),
) {
  const { log, text } = capture();
  const result = await reconcilePeriod(
    { db: get().connectorDb, log, metrics },
    { isp, period: PERIOD, file: EXPORT, vendorLines: vendorLines(), ...overrides },
  );
  return { result, logText: text.join(''), metrics };
}

function csvRows(path: string): Record<string, string>[] {
  const [header, ...rows] = readFileSync(path, 'utf8').trimEnd().split('\n');
  const names = (header as string).split(',');
  return rows.map((row) => Object.fromEntries(row.split(',').map((v, i) => [names[i], v])));
}

describe('reconcilePeriod', () => {
  it('classifies every ref of the demo export against the subscriber map and the vendor lines', async () => {
    const { result } = await run({ sortChunkSize: 4 });
    expect(result.counts).toEqual({
      MATCHED: 28,
      BILLED_NOT_ACTIVATED: 4,
      ACTIVATED_NOT_BILLED: 2,
      MODULES_DIFFER: 2,
      AMOUNT_DIFFERS: 1,
      UNKNOWN_REF: 1,
      MISSING_FROM_EXPORT: 1,
      EXPORT_ROW_REJECTED: 3,
    });
    expect(result).toMatchObject({ exportLines: 55, rejectedLines: 3, vendorLines: 100 });

    const byRef = new Map(csvRows(result.paths.csv).map((r) => [r.customer_ref, r]));
    const verdict = (ref: string) => {
      const r = byRef.get(ref);
      return r && `${r.category}/${r.reason}`;
    };
    expect(verdict('00000001')).toBe('ACTIVATED_NOT_BILLED/SUBSCRIBER_ERASED');
    expect(verdict('10000001')).toBe('MATCHED/MATCHED');
    expect(verdict('10000003')).toBe('BILLED_NOT_ACTIVATED/NEVER_ACTIVATED');
    expect(verdict('10000004')).toBe('MODULES_DIFFER/ISP_BILLED_TWICE');
    expect(verdict('10000005')).toBe('ACTIVATED_NOT_BILLED/ISP_DID_NOT_BILL');
    expect(verdict('10000006')).toBe('MISSING_FROM_EXPORT/NOT_ACTIVATED');
    expect(verdict('10000007')).toBe('AMOUNT_DIFFERS/ISP_CHARGED_MORE');
    expect(verdict('10000008')).toBe('MODULES_DIFFER/ISP_BILLED_EXTRA');
    expect(verdict('10000009')).toBe('EXPORT_ROW_REJECTED/ROW_REJECTED');
    expect(verdict('10000012')).toBe('BILLED_NOT_ACTIVATED/SUBSCRIBER_SUSPENDED');
    expect(verdict('10000020')).toBe('BILLED_NOT_ACTIVATED/NEVER_ACTIVATED');
    expect(verdict('99999999')).toBe('UNKNOWN_REF/NOT_IN_SUBSCRIBER_MAP');

    expect(byRef.get('10000007')).toMatchObject({
      relais_status: 'active',
      isp_modules: 'antivirus',
      relais_modules: 'antivirus',
      vendor_modules: 'antivirus',
      isp_amount: '4.99',
      expected_amount: '3.99',
      vendor_amount: '1.20',
      difference: '1.00',
      isp_lines: '1',
    });
    expect(byRef.get('10000002')).toMatchObject({
      isp_modules: 'antivirus+firewall',
      isp_amount: '5.99',
      expected_amount: '5.99',
      vendor_amount: '2.00',
      difference: '0.00',
      isp_lines: '2',
    });
    const refs = [...byRef.keys()];
    expect(refs).toEqual([...refs].sort());
  });

  it('writes every rejected row with file, line, field and reason', async () => {
    const { result } = await run();
    expect(readFileSync(result.paths.rejects, 'utf8')).toBe(
      [
        'file,line,field,value,reason',
        'facturation_202612.csv,10,amount,"3,9x","amount ""3,9x"" is not a decimal such as -12,50 (at most 6 decimals, no unit or thousands separator)"',
        'facturation_202612.csv,12,period,11/2026,"line bills 2026-11, not 2026-12"',
        'facturation_202612.csv,14,code,PROMO,"code ""PROMO"" is not in the code map"',
        '',
      ].join('\n'),
    );
  });

  it('writes an HTML page with counts and amounts per category', async () => {
    const { result } = await run();
    const html = readFileSync(result.paths.html, 'utf8');
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).toContain(
      '<tr><th scope="row" title="In the ISP export, unknown to Relais.">UNKNOWN_REF</th><td>1</td><td>3.99</td><td>0.00</td><td>0.00</td>',
    );
    expect(html).toContain(
      'AMOUNT_DIFFERS</th><td>1</td><td>4.99</td><td>1.20</td><td>1.00</td><td class="refs">10000007</td>',
    );
    expect(html).toContain('<td>10</td><td>amount</td><td>3,9x</td>');
    expect(html).not.toMatch(/<script|src=|href=/);
  });

  it('sets the per-category gauges', async () => {
    const { metrics } = await run();
    const refs = await metrics.getSingleMetric('relais_reconciliation_refs')?.get();
    const value = (category: string) =>
      refs?.values.find((v) => v.labels.category === category && v.labels.isp === 'demo-fai')
        ?.value;
    expect(value('MATCHED')).toBe(28);
    expect(value('ACTIVATED_NOT_BILLED')).toBe(2);
    expect(value('UNKNOWN_REF')).toBe(1);
    const rejected = await metrics.getSingleMetric('relais_reconciliation_rejected_lines')?.get();
    expect(rejected?.values[0]?.value).toBe(3);
  });

  it('writes byte-identical reports for the same inputs, however the sort is chunked', async () => {
    const dir = join(get().dir, 'determinism');
    const first = await run({ outDir: join(dir, 'a'), sortChunkSize: 3 });
    const second = await run({ outDir: join(dir, 'b') });
    for (const key of ['csv', 'html', 'rejects'] as const) {
      expect(readFileSync(second.result.paths[key])).toEqual(readFileSync(first.result.paths[key]));
    }
  });

  it('reports the same rows for an export in any order', async () => {
    const sorted = await run({ outDir: join(get().dir, 'sorted') });
    const [header, ...rows] = iconv
      .decode(readFileSync(EXPORT), 'windows-1252')
      .trimEnd()
      .split('\r\n');
    const shuffled = join(get().dir, 'facturation_202612.csv');
    // Reversed, with one ref's rows split apart: the spool gives way to the sorter mid-file.
    const text = [header, ...rows.reverse()].join('\r\n');
    writeFileSync(shuffled, iconv.encode(`${text}\r\n`, 'windows-1252'));
    for (const sortChunkSize of [4, undefined]) {
      const outDir = join(get().dir, `shuffled-${sortChunkSize}`);
      const { result } = await run({ outDir, file: shuffled, sortChunkSize });
      expect(result.counts).toEqual(sorted.result.counts);
      expect(readFileSync(result.paths.csv)).toEqual(readFileSync(sorted.result.paths.csv));
    }
  });

  it('logs no customer ref or name', async () => {
    const { logText } = await run();
    expect(logText).toContain('reconciliation done');
    for (const secret of ['10000001', '99999999', 'Rousseau', 'Hélène'])
      expect(logText).not.toContain(secret);
  });

  it('refuses a malformed export and leaves the previous report as it was', async () => {
    const outDir = join(get().dir, 'malformed');
    const good = await run({ outDir });
    const before = readFileSync(good.result.paths.csv);
    const broken = join(get().dir, 'facturation_broken.csv');
    const text = `N° client;Nom;Prénom;Article;Libellé;Montant TTC;Période\n10000001;"Rousseau;x;SECU_ESSENTIEL;;3,99;12/2026\n`;
    writeFileSync(broken, iconv.encode(text, 'windows-1252'));
    const { metrics } = good;
    await expect(run({ outDir, file: broken }, metrics)).rejects.toMatchObject({
      code: 'FEED_CSV_MALFORMED',
      context: expect.objectContaining({ fileName: 'facturation_broken.csv', line: 2 }),
    });
    expect(readFileSync(good.result.paths.csv)).toEqual(before);
    expect(readdirSync(outDir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    const runs = await metrics.getSingleMetric('relais_reconciliation_runs_total')?.get();
    expect(runs?.values.find((v) => v.labels.outcome === 'failed')?.value).toBe(1);
  });

  it('refuses a vendor line whose amount is not a decimal, and writes no report', async () => {
    const outDir = join(get().dir, 'bad-vendor');
    async function* bad(): AsyncGenerator<IspInvoiceLine> {
      yield line('10000001', 'antivirus');
      yield line('10000002', 'antivirus', { lineId: 'rl_bad', amount: '1,20' });
    }
    await expect(run({ outDir, vendorLines: bad() })).rejects.toMatchObject({
      code: 'BILLING_LINE_INVALID',
      context: { lineId: 'rl_bad', field: 'amount' },
    });
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('passes on a failure of the vendor line stream', async () => {
    async function* failing(): AsyncGenerator<IspInvoiceLine> {
      yield line('10000001', 'antivirus');
      throw new Error('connection reset');
    }
    await expect(run({ outDir: join(get().dir, 'reset'), vendorLines: failing() })).rejects.toThrow(
      'connection reset',
    );
  });

  it('refuses a period not written YYYY-MM', async () => {
    await expect(run({ period: '2026-13' })).rejects.toMatchObject({ code: 'PERIOD_INVALID' });
  });

  it('leaves no scratch files behind', async () => {
    await run();
    const staging = join(isp.workDir, 'staging');
    const left = existsSync(staging)
      ? readdirSync(staging).filter((n) => n.startsWith('reconcile-'))
      : [];
    expect(left).toEqual([]);
  });
});

describe('fetchNewestExport', () => {
  it('downloads the newest export matching the pattern from the intake inbox', async () => {
    const inbox = (isp.intake.transport as { inbox: string }).inbox;
    mkdirSync(inbox, { recursive: true });
    const old = join(inbox, 'facturation_202611.csv');
    copyFileSync(EXPORT, old);
    utimesSync(old, new Date('2026-12-01T00:00:00Z'), new Date('2026-12-01T00:00:00Z'));
    copyFileSync(EXPORT, join(inbox, 'facturation_202612.csv'));
    writeFileSync(join(inbox, 'abonnes_20261231.csv'), 'newer, but not an export');
    const dir = join(get().dir, 'download');
    mkdirSync(dir, { recursive: true });
    const { log } = capture();
    const fetched = await fetchNewestExport(isp, reconciliationSettingsOf(isp).source, dir, log);
    expect(fetched.fileName).toBe('facturation_202612.csv');
    expect(readFileSync(fetched.path)).toEqual(readFileSync(EXPORT));
    expect(existsSync(join(inbox, 'facturation_202612.csv'))).toBe(true);
  });

  it('says so when no export matches', async () => {
    const { log } = capture();
    const source = { pattern: 'nothing_*.csv' };
    await expect(fetchNewestExport(isp, source, get().dir, log)).rejects.toMatchObject({
      code: 'RECONCILIATION_EXPORT_NOT_FOUND',
    });
  });
});
