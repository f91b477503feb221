/**
 * The invoice-line writers: quoting, escaping, layout, exact numbers, refusals that name the
 * line, order checks, and bounded memory on half a million lines.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { type InvoiceFileSettings, invoiceLinesSchema } from '../../config/invoice-lines-schema.js';
import { loadConfigOrThrow } from '../../config/load.js';
import { csvFormat } from '../../connectors/formats/csv.js';
import { csvOptionsSchema } from '../../connectors/formats/csv.options.js';
import type { FormatItem } from '../../connectors/formats/format.js';
import { packageRoot } from '../../platform/package-root.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { invoiceLinesFileName, writeInvoiceLines } from './registry.js';
import { GOLDEN_PERIOD, goldenLines, streamOf } from './test-lines.js';

const CTX = { ispId: 'test-isp', period: GOLDEN_PERIOD, timeZone: 'Europe/Paris', currency: 'EUR' };
const LINES = goldenLines('test-isp');
const LINE = LINES.find((l) => l.module === 'parental-control') as IspInvoiceLine;

function settings(value: unknown): InvoiceFileSettings {
  return invoiceLinesSchema.parse(value) as InvoiceFileSettings;
}

async function write(config: unknown, lines: IspInvoiceLine[] = LINES) {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const result = await writeInvoiceLines(settings(config), streamOf(lines), out, CTX);
  return { bytes: Buffer.concat(chunks), result };
}

async function text(config: unknown, lines: IspInvoiceLine[] = LINES): Promise<string> {
  return (await write(config, lines)).bytes.toString('utf8');
}

const csv = (columns: unknown[], extra: Record<string, unknown> = {}) => ({
  type: 'csv',
  lineEnding: 'lf',
  columns,
  ...extra,
});

describe('csv writer', () => {
  it('quotes a field holding the delimiter, the quote or a line break, doubling quotes', async () => {
    const out = await text(
      csv(
        [
          { header: 'a;b', value: 'x' },
          { header: 'q', template: 'say "hi"' },
          { header: 'n', value: 'two\nlines' },
          { header: 'plain', field: 'module' },
        ],
        { delimiter: ';' },
      ),
      [LINE],
    );
    expect(out).toBe('"a;b";q;n;plain\nx;"say ""hi""";"two\nlines";parental-control\n');
  });

  it('quotes every field with quoting: all, and ends rows with crlf by default', async () => {
    const out = await text({ type: 'csv', quoting: 'all', columns: [{ field: 'days' }] }, [LINE]);
    expect(out).toBe('"days"\r\n"17"\r\n');
  });

  it('writes no header row with header: false, and a BOM when asked', async () => {
    const { bytes } = await write(csv([{ field: 'customerRef' }], { header: false, bom: true }), [
      LINE,
    ]);
    expect(bytes.equals(Buffer.from('\ufeff00000042\n', 'utf8'))).toBe(true);
  });

  it('pads decimals with zeros and writes the decimal comma', async () => {
    const out = await text(
      csv([{ field: 'quantity', decimals: 6 }, { field: 'amount' }], {
        decimalSeparator: ',',
        delimiter: ';',
      }),
      [LINE],
    );
    expect(out).toBe('quantity;amount\n0,548400;0,49\n');
  });

  it('writes activatedAt in the ISP time zone, across midnight and summer time', async () => {
    const out = await text(
      csv([{ field: 'activatedAt', date: 'dd/MM/yyyy HH:mm:ss' }], { header: false }),
    );
    expect(out.trim().split('\n')).toEqual([
      '14/02/2026 10:30:00',
      '01/02/2026 09:00:00',
      '14/02/2026 10:30:00',
      '14/02/2026 10:30:00',
      '15/03/2026 00:30:00',
      '31/03/2026 23:59:59',
    ]);
  });

  it('is read back by the intake CSV reader: refs keep their leading zeros', async () => {
    const golden = readFileSync(join(packageRoot(), 'billing/invoice-lines/golden/demo-fai.csv'));
    const options = csvOptionsSchema.parse({
      type: 'csv',
      delimiter: ';',
      encoding: 'windows-1252',
    });
    const wanted = ['N° client', 'Montant HT (€)', 'Libellé'];
    const items: FormatItem[] = [];
    const read = csvFormat.read(Readable.from([golden]), options, { fileName: 'x.csv', wanted });
    for await (const item of read) items.push(item);
    expect(items.map((i) => (i.kind === 'record' ? Object.values(i.values) : i))).toEqual([
      ['00012345', '-1,50', 'Sécurité backup 2026-02'],
      ['00000042', '1,20', 'Sécurité antivirus 2026-02'],
      ['00012345', '1,20', 'Sécurité antivirus 2026-03'],
      ['00012345', '0,80', 'Sécurité firewall 2026-03'],
      ['00000042', '0,49', 'Sécurité parental-control 2026-03'],
      ['98765432', '0,05', 'Sécurité backup 2026-03'],
    ]);
  });
});

describe('xml writer', () => {
  const xml = {
    type: 'xml',
    defaultNamespace: 'urn:test:default',
    namespaces: { t: 'urn:test:t' },
    root: { element: 'Lignes', fields: [{ path: 't:Periode/@mois', field: 'period' }] },
    line: {
      element: 't:Ligne',
      fields: [
        { path: '@id', field: 'lineId' },
        { path: 'Libelle', template: 'A & B <"{module}">' },
        { path: 'Client/@ref', field: 'customerRef' },
        { path: 'Client/@note', value: 'tab\tquote" lt<' },
        { path: 'Montant', field: 'amount' },
      ],
    },
    trailer: {
      element: 'Totaux',
      fields: [
        { path: '@n', field: 'count' },
        { path: 'Total', field: 'total' },
      ],
    },
  };

  it('writes well-formed, escaped, namespaced XML that a parser reads back', async () => {
    const out = await text(xml);
    expect(XMLValidator.validate(out)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(out);
    const root = doc.Lignes;
    expect(root['@xmlns']).toBe('urn:test:default');
    expect(root['t:Periode']['@mois']).toBe('2026-03');
    const third = root['t:Ligne'][2];
    expect(third.Libelle).toBe('A & B <"antivirus">');
    expect(out).toContain('<Libelle>A &amp; B &lt;"antivirus"&gt;</Libelle>');
    expect(third.Client['@ref']).toBe('00012345');
    expect(root.Totaux).toEqual({ '@n': '6', Total: 2.24 });
    expect(out).toContain('<Totaux n="6">\n    <Total>2.24</Total>\n  </Totaux>');
    expect(out).toContain('note="tab&#9;quote&quot; lt&lt;"');
  });

  it('writes one line per document without indent', async () => {
    const out = await text({ ...xml, indent: 0 }, [LINE]);
    expect(out.split('\n')).toHaveLength(3);
    expect(out).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<Lignes xmlns=/);
  });

  it('refuses a control character XML cannot hold, naming the line', async () => {
    const bad = { ...LINE, module: 'anti\u0001virus' };
    await expect(write(xml, [bad])).rejects.toMatchObject({
      code: 'BILLING_LINE_UNWRITABLE',
      message: `invoice line ${LINE.lineId}: character U+0001 cannot be written in XML`,
    });
  });

  it('declares its encoding and writes it', async () => {
    const { bytes } = await write(
      {
        ...xml,
        encoding: 'iso-8859-1',
        root: { element: 'Lignes', fields: [{ path: '@e', value: 'Émis' }] },
      },
      [LINE],
    );
    const decoded = iconv.decode(bytes, 'iso-8859-1');
    expect(decoded).toMatch(/^<\?xml version="1.0" encoding="ISO-8859-1"\?>/);
    expect(decoded).toContain('e="Émis"');
    expect(bytes.includes(Buffer.from([0xc9]))).toBe(true);
  });
});

describe('fixed-width writer', () => {
  const fixed = (fields: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    type: 'fixed-width',
    lineEnding: 'lf',
    detail: { fields },
    ...extra,
  });

  it.each([
    ['leading', '-1.50', '-0000150'],
    ['leading', '1.50', '00000150'],
    ['leading-always', '1.50', '+0000150'],
    ['trailing-always', '-1.50', '0000150-'],
    ['trailing-always', '0.05', '0000005+'],
  ])('writes %s sign for %s as %s', async (sign, amount, expected) => {
    const config = fixed({
      m: { start: 1, length: 8, field: 'amount', decimals: 2, impliedDecimals: true, sign },
    });
    expect(await text(config, [{ ...LINE, amount }])).toBe(`${expected}\n`);
  });

  it('pads with spaces and keeps the decimal mark without implied decimals', async () => {
    const config = fixed(
      { m: { start: 1, length: 8, field: 'amount', pad: ' ', decimalSeparator: ',' } },
      { decimalSeparator: ',' },
    );
    await expect(text(config, [{ ...LINE, amount: '-1.50' }])).rejects.toThrow();
    const ok = fixed(
      { m: { start: 1, length: 8, field: 'amount', pad: ' ' } },
      { decimalSeparator: ',' },
    );
    expect(await text(ok, [{ ...LINE, amount: '-1.50' }])).toBe('   -1,50\n');
  });

  it('fills gaps and pads every record to the same width', async () => {
    const config = fixed(
      {
        ref: { start: 2, length: 10, field: 'customerRef' },
        d: { start: 15, length: 2, field: 'days' },
      },
      {
        recordType: { start: 1, length: 1 },
        detail: {
          code: 'D',
          fields: {
            ref: { start: 2, length: 10, field: 'customerRef' },
            d: { start: 15, length: 2, field: 'days' },
          },
        },
        header: {
          code: 'H',
          fields: { p: { start: 2, length: 6, field: 'period', date: 'yyyyMM' } },
        },
        trailer: { code: 'T', fields: { n: { start: 2, length: 20, field: 'count' } } },
      },
    );
    const out = await text(config, [LINE]);
    expect(out).toBe(
      ['H202603              ', 'D00000042     17     ', 'T00000000000000000001', ''].join('\n'),
    );
  });

  it('stops on a value wider than its field, naming line and field, unless truncate', async () => {
    const narrow = fixed({ ref: { start: 1, length: 5, field: 'customerRef' } });
    await expect(write(narrow, [LINE])).rejects.toMatchObject({
      code: 'BILLING_LINE_UNWRITABLE',
      message: `invoice line ${LINE.lineId}: billing.invoiceLines.detail.fields.ref: the value is 8 characters, the field has 5`,
    });
    const cut = fixed({ ref: { start: 1, length: 5, field: 'customerRef', truncate: true } });
    expect(await text(cut, [LINE])).toBe('00000\n');
  });

  it('stops on an amount wider than its field', async () => {
    const config = fixed({
      m: { start: 1, length: 3, field: 'amount', decimals: 2, impliedDecimals: true },
    });
    await expect(write(config, [{ ...LINE, amount: '-1.50' }])).rejects.toMatchObject({
      message: `invoice line ${LINE.lineId}: billing.invoiceLines.detail.fields.m: -150 needs 4 characters, the field has 3`,
    });
  });
});

describe('writers refuse', () => {
  it('a module missing from a map', async () => {
    const config = csv([{ field: 'module', map: { antivirus: 'AV' } }]);
    await expect(write(config, [LINE])).rejects.toMatchObject({
      code: 'BILLING_LINE_UNWRITABLE',
      message: `invoice line ${LINE.lineId}: billing.invoiceLines.columns.0: module "parental-control" is not in map`,
    });
  });

  it('a customer ref missing from a map, without writing the ref', async () => {
    const config = csv([{ field: 'customerRef', map: { x: 'y' } }]);
    await expect(write(config, [LINE])).rejects.toThrow(/customerRef a value is not in map$/);
  });

  it('an amount with more decimals than declared, rather than round it', async () => {
    const config = csv([{ field: 'quantity', decimals: 2 }]);
    await expect(write(config, [LINE])).rejects.toMatchObject({
      message: `invoice line ${LINE.lineId}: billing.invoiceLines.columns.0 (quantity): 0.5484 has more than 2 decimals; raise decimals rather than round money`,
    });
  });

  it.each([
    ['iso-8859-1', '€', 'U+20AC'],
    ['windows-1252', 'Ω', 'U+03A9'],
    ['utf-8', '\ud800', 'U+D800'],
  ])('a character %s cannot hold (%s)', async (encoding, char, code) => {
    const config = csv([{ header: 'x', template: `{module} ${char}` }], {
      encoding,
      header: false,
    });
    await expect(write(config, [LINE])).rejects.toMatchObject({
      message: `invoice line ${LINE.lineId}: character ${code} cannot be written in ${encoding}`,
    });
  });

  it('writes the euro sign in windows-1252 as byte 0x80', async () => {
    const config = csv([{ header: 'x', value: '€' }], { encoding: 'windows-1252', header: false });
    expect((await write(config, [LINE])).bytes.equals(Buffer.from([0x80, 0x0a]))).toBe(true);
  });

  it('a repeated line (it would bill twice) and destroys the stream', async () => {
    const out = new PassThrough();
    out.resume();
    const config = settings(csv([{ field: 'lineId' }]));
    await expect(writeInvoiceLines(config, streamOf([LINE, LINE]), out, CTX)).rejects.toMatchObject(
      {
        code: 'INTERNAL',
        message: `invoice lines must come in strictly increasing lineId order: ${LINE.lineId} after ${LINE.lineId}`,
      },
    );
    expect(out.destroyed).toBe(true);
  });

  it('a line of another period', async () => {
    await expect(
      write(csv([{ field: 'lineId' }]), [{ ...LINE, period: '2026-04' }]),
    ).rejects.toThrow(
      `invoice line ${LINE.lineId} is for test-isp 2026-04 in EUR, not test-isp 2026-03 in EUR`,
    );
  });
});

describe('file names and results', () => {
  it('replaces {isp} and {period}', () => {
    const config = settings({ ...csv([{ field: 'lineId' }]), fileName: 'FAC_{isp}_{period}.csv' });
    expect(invoiceLinesFileName(config, CTX)).toBe('FAC_test-isp_2026-03.csv');
  });

  it('reports counts, the exact total, the size and the sha256 of what it wrote', async () => {
    const { bytes, result } = await write(csv([{ field: 'amount' }]));
    expect(result).toEqual({
      lines: 6,
      charges: 4,
      adjustments: 2,
      totalAmount: '2.24',
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
  });

  it('writes an empty period as a header and a trailer with zero', async () => {
    const config = {
      type: 'xml',
      root: { element: 'L' },
      line: { element: 'Ligne', fields: [{ path: '@id', field: 'lineId' }] },
      trailer: {
        element: 'T',
        fields: [
          { path: '@n', field: 'count' },
          { path: '@total', field: 'total' },
        ],
      },
    };
    expect(await text(config, [])).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<L>\n  <T n="0" total="0.00"/>\n</L>\n',
    );
  });
});

/** 2,000,000 distinct lines in lineId order, built lazily: nothing is held. */
const stamps = Array.from({ length: 5000 }, (_, k) =>
  new Date(Date.UTC(2026, 1, 1) + k * 517_000).toISOString(),
);

async function* manyLines(count: number): AsyncGenerator<IspInvoiceLine> {
  const base = LINE;
  for (let i = 0; i < count; i++) {
    const n = String(i).padStart(8, '0');
    yield {
      ...base,
      lineId: `2026-03/lic_${n}/antivirus`,
      customerRef: n,
      amount: i % 10 === 0 ? '-1.50' : '1.20',
      activatedAt: stamps[Math.floor(i / 1000) % stamps.length] as string,
    };
  }
}

/** Hashes and drops what it is given, a little slowly, so backpressure is exercised. */
function sinkStream(): Writable & { received: number } {
  const stream = new Writable({
    highWaterMark: 1 << 16,
    write(chunk: Buffer, _encoding, done) {
      stream.received += chunk.length;
      setImmediate(done);
    },
  }) as Writable & { received: number };
  stream.received = 0;
  return stream;
}

describe('half a million lines', () => {
  it.each(['demo-fai', 'alpha-telecom', 'bretagne-net'])(
    "%s's format writes them in bounded memory (speed is measured by npm run bench:billing)",
    async (ispId) => {
      const isp = loadConfigOrThrow({
        file: join(packageRoot(), 'config/relais.yaml'),
        env: {},
      }).isps.get(ispId);
      const declared = isp?.billing?.invoiceLines as InvoiceFileSettings;
      const count = 500_000;
      const out = sinkStream();
      global.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      let heapPeak = heapBefore;
      const timer = setInterval(() => {
        heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
      }, 50);
      const ctx = { ...CTX, ispId: LINE.ispId };
      const result = await writeInvoiceLines(declared, manyLines(count), out, ctx);
      clearInterval(timer);
      expect(result.lines).toBe(count);
      expect(result.totalAmount).toBe('465000.00');
      expect(out.received).toBe(result.bytes);
      // Holding half a million lines would take some 300 MB; garbage not yet collected is the rest.
      expect(heapPeak - heapBefore).toBeLessThan(96 * 1024 * 1024);
    },
    120_000,
  );
});
