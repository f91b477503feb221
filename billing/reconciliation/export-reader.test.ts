import { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import {
  type ReconciliationSettings,
  reconciliationSchema,
} from '../../config/reconciliation-schema.js';
import {
  compileExportRules,
  compilePeriodFormat,
  type ExportItem,
  readExport,
  toExportItem,
} from './export-reader.js';

const OFFERS = { SECU_ESSENTIEL: ['antivirus'], SECU_FAMILLE: ['antivirus', 'firewall'] };
const MODULES = ['antivirus', 'backup', 'firewall'];

function settings(overrides: Record<string, unknown> = {}): ReconciliationSettings {
  return reconciliationSchema.parse({
    format: { type: 'csv', delimiter: ';' },
    fields: {
      customerRef: { from: 'Ref', pattern: '^[0-9]{4}$' },
      code: { from: 'Code', case: 'upper' },
      amount: { from: 'Amount', decimalSeparator: ',' },
      period: { from: 'Period', format: 'MM/yyyy' },
    },
    ...overrides,
  });
}

function rules(s = settings()) {
  return compileExportRules(s, '2026-12', { offers: OFFERS, modules: MODULES });
}

async function readText(text: string | Buffer, s = settings()): Promise<ExportItem[]> {
  const items: ExportItem[] = [];
  const input = Readable.from([typeof text === 'string' ? Buffer.from(text) : text]);
  for await (const item of readExport(input, 'export.csv', rules(s))) items.push(item);
  return items;
}

type RejectCase = [string, Record<string, string>, string, string | null, string, string | null];

const values = (v: Record<string, string>) => ({
  Ref: '0001',
  Code: 'secu_essentiel',
  Amount: '3,99',
  Period: '12/2026',
  ...v,
});

describe('toExportItem', () => {
  it('reads a line: ref, the modules of its code, the amount in micro-units', () => {
    expect(toExportItem(7, values({}), rules())).toEqual({
      kind: 'line',
      ref: '0001',
      line: 7,
      modules: 'antivirus',
      amountMicros: 3_990_000n,
    });
  });

  it('maps module codes to themselves and offers to their modules by default', () => {
    const item = (code: string) => toExportItem(1, values({ Code: code }), rules());
    expect(item('BACKUP')).toMatchObject({ modules: 'backup' });
    expect(item('SECU_FAMILLE')).toMatchObject({ modules: 'antivirus+firewall' });
  });

  it('uses the configured code map instead of the defaults', () => {
    const own = rules(settings({ codes: { SAUV: ['backup'] } }));
    expect(toExportItem(1, values({ Code: 'sauv' }), own)).toMatchObject({ modules: 'backup' });
    expect(toExportItem(1, values({ Code: 'SECU_FAMILLE' }), own)).toMatchObject({
      kind: 'reject',
      field: 'code',
    });
  });

  it('reads a credit', () => {
    expect(toExportItem(1, values({ Amount: '-1,5' }), rules())).toMatchObject({
      amountMicros: -1_500_000n,
    });
  });

  it.each<RejectCase>([
    ['an empty ref', { Ref: '' }, 'customerRef', null, 'customer ref is empty', null],
    [
      'a ref off the pattern',
      { Ref: 'A12' },
      'customerRef',
      null,
      'customer ref does not match the configured pattern',
      null,
    ],
    [
      'a ref with a control character',
      { Ref: '00\u00001' },
      'customerRef',
      null,
      'customer ref holds a control character',
      null,
    ],
    ['an empty code', { Code: '' }, 'code', null, 'code is empty', '0001'],
    [
      'an unknown code',
      { Code: 'promo' },
      'code',
      'PROMO',
      'code "PROMO" is not in the code map',
      '0001',
    ],
    ['an empty amount', { Amount: '' }, 'amount', null, 'amount is empty', '0001'],
    ...['3.99', '3,99 €', '1 000,00', 'abc', '3,9999999'].map(
      (amount) =>
        <RejectCase>[
          `the amount ${amount}`,
          { Amount: amount },
          'amount',
          amount,
          `amount "${amount}" is not a decimal such as -12,50 (at most 6 decimals, no unit or thousands separator)`,
          '0001',
        ],
    ),
    [
      'a period written otherwise',
      { Period: '2026-12' },
      'period',
      '2026-12',
      'period "2026-12" is not written MM/yyyy',
      '0001',
    ],
    [
      'a line of another period',
      { Period: '11/2026' },
      'period',
      '11/2026',
      'line bills 2026-11, not 2026-12',
      '0001',
    ],
  ])('rejects %s, naming the field', (_, v, field, value, reason, ref) => {
    expect(toExportItem(9, values(v), rules())).toEqual({
      kind: 'reject',
      line: 9,
      field,
      value,
      reason,
      ref,
    });
  });

  it('rejects a repeated value (an XML element given twice)', () => {
    const item = toExportItem(3, { ...values({}), Amount: ['1,00', '2,00'] }, rules());
    expect(item).toMatchObject({
      kind: 'reject',
      field: 'amount',
      reason: 'expected one value, found 2',
    });
  });
});

describe('compilePeriodFormat', () => {
  it.each([
    ['yyyy-MM', '2026-12', '2026-12'],
    ['MM/yyyy', '03/2026', '2026-03'],
    ['yyyyMM', '202601', '2026-01'],
    ['dd/MM/yyyy', '31/12/2026', '2026-12'],
    ['yyyy-MM', '2026-13', undefined],
    ['yyyy-MM', '2026-1', undefined],
  ])('%s reads %s as %s', (format, text, period) => {
    expect(compilePeriodFormat(format)(text)).toBe(period);
  });
});

describe('readExport', () => {
  const header = 'Ref;Name;Code;Amount;Period\n';

  it('streams lines and rejects in file order, with file line numbers', async () => {
    const text = `${header}0001;Dupré;SECU_ESSENTIEL;3,99;12/2026\n0002;Noël;SECU_ESSENTIEL;x;12/2026\n0003;Bécue\n`;
    expect(await readText(text)).toEqual([
      { kind: 'line', ref: '0001', line: 2, modules: 'antivirus', amountMicros: 3_990_000n },
      expect.objectContaining({ kind: 'reject', line: 3, field: 'amount', ref: '0002' }),
      expect.objectContaining({ kind: 'reject', line: 4, ref: null }),
    ]);
  });

  it('reads the encoding the format names', async () => {
    const s = settings({ format: { type: 'csv', delimiter: ';', encoding: 'windows-1252' } });
    const bytes = iconv.encode(
      `${header}0001;Lefèvre;SECU_ESSENTIEL;3,99;12/2026\n`,
      'windows-1252',
    );
    expect(await readText(bytes, s)).toMatchObject([{ kind: 'line', ref: '0001' }]);
  });

  it('refuses a file whose quotes never close, naming the line', async () => {
    const text = `${header}0001;Dupré;SECU_ESSENTIEL;3,99;12/2026\n0002;"Noël;SECU_ESSENTIEL;3,99;12/2026\n`;
    await expect(readText(text)).rejects.toMatchObject({
      code: 'FEED_CSV_MALFORMED',
      context: expect.objectContaining({ fileName: 'export.csv', line: 3 }),
    });
  });

  it('refuses a file without a mapped column', async () => {
    await expect(readText('Ref;Code;Period\n0001;X;12/2026\n')).rejects.toMatchObject({
      code: 'FEED_COLUMNS_MISSING',
    });
  });

  it('refuses an empty file', async () => {
    await expect(readText('')).rejects.toMatchObject({ code: 'FEED_ZERO_BYTES' });
  });

  it('reads an XML export', async () => {
    const s = reconciliationSchema.parse({
      format: { type: 'xml', recordElement: 'Invoice' },
      fields: {
        customerRef: { from: '@customer' },
        code: { from: 'Item/@code' },
        amount: { from: 'Item/Total' },
      },
    });
    const xml = `<?xml version="1.0"?>\n<Invoices>\n<Invoice customer="0001"><Item code="antivirus"><Total>1.20</Total></Item></Invoice>\n<Invoice customer="0002"><Item code="antivirus"><Total>1,20</Total></Item></Invoice>\n</Invoices>\n`;
    expect(await readText(xml, s)).toEqual([
      { kind: 'line', ref: '0001', line: 3, modules: 'antivirus', amountMicros: 1_200_000n },
      expect.objectContaining({ kind: 'reject', line: 4, field: 'amount', value: '1,20' }),
    ]);
  });

  it('reads a fixed-width export', async () => {
    const s = reconciliationSchema.parse({
      format: {
        type: 'fixed-width',
        detail: {
          fields: {
            ref: { start: 1, length: 4 },
            code: { start: 5, length: 10 },
            amount: { start: 15, length: 8 },
          },
        },
      },
      fields: { customerRef: { from: 'ref' }, code: { from: 'code' }, amount: { from: 'amount' } },
    });
    const text = `${'0001'}${'antivirus'.padEnd(10)}${'1.20'.padStart(8)}\n0002${'backup'.padEnd(10)}${'12.50'.padStart(8)}\n`;
    expect(await readText(text, s)).toEqual([
      { kind: 'line', ref: '0001', line: 1, modules: 'antivirus', amountMicros: 1_200_000n },
      { kind: 'line', ref: '0002', line: 2, modules: 'backup', amountMicros: 12_500_000n },
    ]);
  });
});
