/**
 * `billing.invoiceLines` refuses contradictions at config check, each with its path and reason,
 * and fills sensible defaults. One case goes through the real loader to show the file and line.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { invoiceLinesSchema } from '../../config/invoice-lines-schema.js';
import { loadConfigOrThrow, loadIspFile } from '../../config/load.js';
import { formatProblem } from '../../config/yaml-source.js';
import { packageRoot } from '../../platform/package-root.js';

function problems(value: unknown): string[] {
  const parsed = invoiceLinesSchema.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const CSV = { type: 'csv', columns: [{ field: 'customerRef' }, { field: 'amount' }] };
const XML = {
  type: 'xml',
  root: { element: 'Lignes' },
  line: { element: 'Ligne', fields: [{ path: '@id', field: 'lineId' }] },
};
const FIXED = {
  type: 'fixed-width',
  detail: { fields: { ref: { start: 1, length: 10, field: 'customerRef' } } },
};
const HTTP = {
  type: 'http',
  url: 'https://billing.example/api/lines',
  body: { type: 'json', fields: [{ name: 'key', field: 'idempotencyKey' }] },
};

describe('billing.invoiceLines defaults', () => {
  it('fills a csv with RFC 4180 defaults', () => {
    expect(invoiceLinesSchema.parse(CSV)).toMatchObject({
      fileName: 'invoice-lines-{isp}-{period}.csv',
      encoding: 'utf-8',
      delimiter: ',',
      quote: '"',
      quoting: 'needed',
      header: true,
      lineEnding: 'crlf',
      decimalSeparator: '.',
      dateFormat: 'yyyy-MM-dd',
    });
  });

  it('fills an http push with chunks of 500, a 30 s timeout and 5 retries', () => {
    expect(invoiceLinesSchema.parse(HTTP)).toMatchObject({
      method: 'POST',
      lineKey: 'hash',
      linesPerChunk: 500,
      timeoutMs: 30_000,
      retry: { retries: 5, initialDelayMs: 1_000, maxDelayMs: 60_000 },
      body: { linesKey: 'lines', envelope: [] },
    });
  });

  it('accepts the three shipped ISPs', () => {
    const config = loadConfigOrThrow({ file: join(packageRoot(), 'config/relais.yaml'), env: {} });
    const types = ['alpha-telecom', 'bretagne-net', 'demo-fai'].map(
      (id) => config.isps.get(id)?.billing?.invoiceLines?.type,
    );
    expect(types).toEqual(['xml', 'fixed-width', 'csv']);
  });
});

describe('billing.invoiceLines refuses', () => {
  it.each([
    [
      'a value with no source',
      { ...CSV, columns: [{ header: 'X' }] },
      'columns.0: give one of field, value or template',
    ],
    [
      'a value with two sources',
      { ...CSV, columns: [{ field: 'amount', value: '1' }] },
      'columns.0: give only one of field, value or template (found field and value)',
    ],
    [
      'an unknown line field',
      { ...CSV, columns: [{ field: 'email' }] },
      expect.stringMatching(/^columns\.0\.field: Invalid option: expected one of "lineId"\|"kind"/),
    ],
    [
      'an unknown template placeholder',
      { ...CSV, columns: [{ header: 'L', template: 'Licence {offer}' }] },
      expect.stringMatching(
        /^columns\.0\.template: unknown placeholder \{offer\}; known: lineId, /,
      ),
    ],
    [
      'an unbalanced template',
      { ...CSV, columns: [{ header: 'L', template: 'Licence {module' }] },
      'columns.0.template: unbalanced { or } in template',
    ],
    [
      'a map on a number',
      { ...CSV, columns: [{ field: 'amount', map: { '1.20': 'x' } }] },
      'columns.0.map: map translates a text field only',
    ],
    [
      'a map of kind missing adjustment',
      { ...CSV, columns: [{ field: 'kind', map: { charge: 'FAC' } }] },
      'columns.0.map: map of kind needs adjustment',
    ],
    [
      'a date pattern on text',
      { ...CSV, columns: [{ field: 'module', date: 'dd/MM/yyyy' }] },
      'columns.0.date: date formats a date or period field only',
    ],
    [
      'a day in a period pattern',
      { ...CSV, columns: [{ field: 'period', date: 'dd/MM/yyyy' }] },
      'columns.0.date: a period is a month: its pattern takes yyyy and MM only',
    ],
    [
      'a time on a day',
      { ...CSV, columns: [{ field: 'servicePeriodStart', date: 'yyyy-MM-dd HH:mm' }] },
      'columns.0.date: this value is a day: its pattern cannot hold HH, mm or ss',
    ],
    [
      'decimals on text',
      { ...CSV, columns: [{ field: 'module', decimals: 2 }] },
      'columns.0.decimals: decimals formats an amount, quantity, price or total only',
    ],
    [
      'a decimal comma with a comma delimiter',
      { ...CSV, decimalSeparator: ',' },
      'decimalSeparator: the delimiter and the decimal separator are both ",": every amount would need quotes; pick another delimiter',
    ],
    [
      'the quote as delimiter',
      { ...CSV, delimiter: '"' },
      'quote: quote and delimiter are the same',
    ],
    [
      'a BOM in windows-1252',
      { ...CSV, encoding: 'windows-1252', bom: true },
      'bom: a byte-order mark is for utf-8 files, not windows-1252',
    ],
    [
      'a constant column without a header name',
      { ...CSV, columns: [{ value: 'FAC' }] },
      'columns.0.header: a column with a value or template needs a header name',
    ],
    [
      'two columns with the same header',
      { ...CSV, columns: [{ field: 'amount' }, { header: 'amount', field: 'unitPrice' }] },
      'columns.1.header: header "amount" is already the name of column 1',
    ],
    [
      'a file name with a folder',
      { ...CSV, fileName: 'out/lines.csv' },
      'fileName: a file name, without folders',
    ],
    [
      'an unknown file name placeholder',
      { ...CSV, fileName: 'lines-{date}.csv' },
      'fileName: placeholders are {isp} and {period}',
    ],
  ])('csv: %s', (_, value, message) => {
    expect(problems(value)).toEqual([message]);
  });

  it.each([
    [
      'count on the root',
      { ...XML, root: { element: 'Lignes', fields: [{ path: '@n', field: 'count' }] } },
      'root.fields.0.field: count is only known after the last line: put it in the trailer',
    ],
    [
      'an undeclared prefix',
      { ...XML, line: { element: 'at:Ligne', fields: [] } },
      'line.element: prefix at is not declared in namespaces',
    ],
    [
      'an undeclared prefix in a path',
      { ...XML, line: { element: 'Ligne', fields: [{ path: 'x:Montant', field: 'amount' }] } },
      'line.fields.0.path: prefix x is not declared in namespaces',
    ],
    [
      'the same path twice',
      {
        ...XML,
        line: {
          element: 'Ligne',
          fields: [
            { path: '@id', field: 'lineId' },
            { path: '@id', field: 'licenceId' },
          ],
        },
      },
      'line.fields.1.path: @id is written twice',
    ],
    [
      'mixed content',
      {
        ...XML,
        line: {
          element: 'Ligne',
          fields: [
            { path: 'Client', field: 'customerRef' },
            { path: 'Client/Module', field: 'module' },
          ],
        },
      },
      'line.fields.0.path: Client holds a value and child elements; XML mixed content is not written',
    ],
    [
      'a malformed path',
      { ...XML, line: { element: 'Ligne', fields: [{ path: 'Client//@id', field: 'lineId' }] } },
      'line.fields.0.path: expected a path such as Montant, @id or Client/@ref',
    ],
    [
      'a trailer named like the line',
      { ...XML, trailer: { element: 'Ligne', fields: [] } },
      'trailer.element: the trailer element must differ from the line element',
    ],
  ])('xml: %s', (_, value, message) => {
    expect(problems(value)).toEqual([message]);
  });

  it.each([
    [
      'overlapping fields',
      {
        ...FIXED,
        detail: {
          fields: {
            ref: { start: 1, length: 10, field: 'customerRef' },
            montant: { start: 8, length: 6, field: 'amount' },
          },
        },
      },
      'detail.fields.montant.start: positions 8-13 overlap detail.fields.ref (1-10)',
    ],
    [
      'a field over the record type',
      {
        ...FIXED,
        recordType: { start: 1, length: 1 },
        detail: { code: 'D', fields: { ref: { start: 1, length: 10, field: 'customerRef' } } },
      },
      'detail.fields.ref.start: positions 1-10 overlap recordType (1-1)',
    ],
    [
      'a code without recordType',
      { ...FIXED, detail: { ...FIXED.detail, code: 'D' } },
      'detail.code: a record code needs recordType (where the code is written)',
    ],
    [
      'a record without a code when recordType is set',
      {
        ...FIXED,
        recordType: { start: 1, length: 1 },
        detail: { code: 'D', fields: { ref: { start: 2, length: 10, field: 'customerRef' } } },
        trailer: { fields: { n: { start: 2, length: 9, field: 'count' } } },
      },
      'trailer.code: every record needs a code when recordType is set',
    ],
    [
      'a code longer than recordType',
      {
        ...FIXED,
        recordType: { start: 1, length: 1 },
        detail: { code: 'DT', fields: { ref: { start: 3, length: 10, field: 'customerRef' } } },
      },
      'detail.code: code DT is 2 characters; recordType.length is 1',
    ],
    [
      'two records with the same code',
      {
        ...FIXED,
        recordType: { start: 1, length: 1 },
        detail: { code: 'D', fields: { ref: { start: 2, length: 10, field: 'customerRef' } } },
        trailer: { code: 'D', fields: { n: { start: 2, length: 9, field: 'count' } } },
      },
      "trailer.code: code D is already the detail's",
    ],
    [
      'the total in the header',
      { ...FIXED, header: { fields: { t: { start: 1, length: 9, field: 'total' } } } },
      'header.fields.t.field: total is only known after the last line: put it in the trailer',
    ],
    [
      'implied decimals without decimals',
      {
        ...FIXED,
        detail: { fields: { m: { start: 1, length: 9, field: 'amount', impliedDecimals: true } } },
      },
      'detail.fields.m.impliedDecimals: impliedDecimals needs a decimal field and decimals (how many are implied)',
    ],
    [
      'truncating a number',
      {
        ...FIXED,
        detail: { fields: { m: { start: 1, length: 9, field: 'amount', truncate: true } } },
      },
      'detail.fields.m.truncate: a number is never cut: widen the field instead',
    ],
    [
      'a field past recordLength',
      { ...FIXED, recordLength: 8 },
      'detail.fields.ref.length: ends at 10, past recordLength 8',
    ],
  ])('fixed-width: %s', (_, value, message) => {
    expect(problems(value)).toEqual([message]);
  });

  it.each([
    [
      'a body without the idempotency key',
      { ...HTTP, body: { type: 'json', fields: [{ name: 'ref', field: 'customerRef' }] } },
      'body.fields: each line must carry its idempotency key, or a retry could bill a customer twice: add a field with field: idempotencyKey',
    ],
    [
      'a JSON number of text',
      {
        ...HTTP,
        body: {
          type: 'json',
          fields: [
            { name: 'key', field: 'idempotencyKey' },
            { name: 'ref', field: 'customerRef', as: 'number' },
          ],
        },
      },
      'body.fields.1.as: as: number needs a number field (amount, quantity, days, count, ...)',
    ],
    [
      'a JSON property twice',
      {
        ...HTTP,
        body: {
          type: 'json',
          fields: [
            { name: 'key', field: 'idempotencyKey' },
            { name: 'key', field: 'lineId' },
          ],
        },
      },
      'body.fields.1.name: key is written twice',
    ],
    [
      'an ftp URL',
      { ...HTTP, url: 'ftp://billing.example/' },
      'url: expected an http:// or https:// URL',
    ],
    [
      'a cap below the first delay',
      { ...HTTP, retry: { initialDelayMs: 5_000, maxDelayMs: 1_000 } },
      'retry.maxDelayMs: maxDelayMs is below initialDelayMs',
    ],
    [
      '429 as the duplicate status',
      { ...HTTP, duplicateStatus: 429 },
      'duplicateStatus: 429 means try again, not already delivered',
    ],
    [
      'an empty credential',
      { ...HTTP, auth: { value: '' } },
      'auth.value: the credential is empty',
    ],
  ])('http: %s', (_, value, message) => {
    expect(problems(value)).toEqual([message]);
  });

  it('names the file, line and path through the real loader', () => {
    const shipped = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');
    const broken = shipped.replace(
      '    delimiter: ";"\n    decimalSeparator: ","',
      '    delimiter: ","\n    decimalSeparator: ","',
    );
    expect(broken).not.toBe(shipped);
    const dir = mkdtempSync(join(tmpdir(), 'relais-invoice-lines-'));
    const file = join(dir, 'demo-fai.yaml');
    writeFileSync(file, broken);
    const deployment = loadConfigOrThrow({
      file: join(packageRoot(), 'config/relais.yaml'),
      env: {},
    }).deployment;
    const { problems: found } = loadIspFile(file, deployment, { env: {}, cwd: dir });
    const line = broken.split('\n').findIndex((l) => l.includes('decimalSeparator: ","')) + 1;
    expect(found.map(formatProblem)).toEqual([
      `demo-fai.yaml:${line}:5 billing.invoiceLines.decimalSeparator: the delimiter and the decimal separator are both ",": every amount would need quotes; pick another delimiter`,
    ]);
  });
});
