import { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { csvFormat, MAX_CSV_FIELDS, MAX_CSV_RECORD_CHARS } from './csv.js';
import { type CsvOptions, csvOptionsSchema } from './csv.options.js';
import type { FormatItem } from './format.js';
import {
  bytesStream,
  customers,
  encodeWithBytes,
  feedStream,
  readAll,
  readUntilFailure,
} from './test-feeds.js';

type Wanted = readonly (string | number)[];

function options(overrides: Partial<CsvOptions> = {}): CsvOptions {
  return csvOptionsSchema.parse({ type: 'csv', ...overrides });
}

function read(text: string | Buffer, wanted: Wanted, overrides: Partial<CsvOptions> = {}) {
  const input = typeof text === 'string' ? feedStream([text]) : bytesStream(text);
  return csvFormat.read(input, options(overrides), { fileName: 'abonnes.csv', wanted });
}

const record = (line: number, values: Record<string, string>): FormatItem => ({
  kind: 'record',
  line,
  values,
});

/** One field written the way a dialect quotes it. */
function quoted(value: string, quote: string, escapeChar: string): string {
  return `${quote}${value.replaceAll(quote, `${escapeChar}${quote}`)}${quote}`;
}

describe('csvFormat', () => {
  it.each([
    { delimiter: ',', quote: '"', escape: '"' },
    { delimiter: ';', quote: "'", escape: "'" },
    { delimiter: '\t', quote: '"', escape: '\\' },
    { delimiter: '|', quote: '"', escape: '"' },
  ])('reads the $delimiter dialect with quote $quote and escape $escape', async (dialect) => {
    const { delimiter: d, quote: q, escape: e } = dialect;
    const tricky = `Dupont${d} ${q}Jean${q}\nsecond line`;
    const text = [
      `ref${d}name${d}offer`,
      `001${d}${quoted(tricky, q, e)}${d}BASIC`,
      `002${d}plain${d}${quoted('PRO', q, e)}`,
      '',
    ].join('\n');
    const items = await readAll(read(text, ['ref', 'name', 'offer'], dialect));
    expect(items).toEqual([
      record(2, { ref: '001', name: tricky, offer: 'BASIC' }),
      record(4, { ref: '002', name: 'plain', offer: 'PRO' }),
    ]);
  });

  it.each(['\n', '\r\n'])('gives each record the line it starts on (%j)', async (eol) => {
    const text = [
      'ref,name,note',
      '1,"two',
      'lines",x',
      '2,"three',
      '',
      'lines",y',
      '3,one line,"also, ""quoted"""',
      '',
    ].join(eol);
    const items = await readAll(read(text, ['ref', 'name']));
    expect(items).toEqual([
      record(2, { ref: '1', name: `two${eol}lines` }),
      record(4, { ref: '2', name: `three${eol}${eol}lines` }),
      record(7, { ref: '3', name: 'one line' }),
    ]);
  });

  it('skips blank and space-only lines, still counting them', async () => {
    const text = 'ref,name\n\n1,a\n   \n\r\n2,b\n\n';
    expect(await readAll(read(text, ['ref']))).toEqual([
      record(3, { ref: '1' }),
      record(6, { ref: '2' }),
    ]);
  });

  it('skips the lines before the header that skipLines names, unparsed', async () => {
    const text = 'Export "du 2026\nsociété: FAI\nref;name\n1;a\n';
    const items = await readAll(read(text, ['ref'], { delimiter: ';', skipLines: 2 }));
    expect(items).toEqual([record(4, { ref: '1' })]);
  });

  it('keeps values raw: surrounding spaces and leading zeros stay', async () => {
    const text = 'ref,name\n007, Jean \n';
    expect(await readAll(read(text, ['ref', 'name']))).toEqual([
      record(2, { ref: '007', name: ' Jean ' }),
    ]);
  });

  it('matches header names without their surrounding spaces', async () => {
    const text = ' ref ,N° client\n1,2\n';
    expect(await readAll(read(text, ['ref', 'N° client']))).toEqual([
      record(2, { ref: '1', 'N° client': '2' }),
    ]);
  });

  it('reads by 1-based position, with or without a header', async () => {
    const text = '1,a,x\n2,b,y\n';
    expect(await readAll(read(text, [1, 3], { header: false }))).toEqual([
      record(1, { '1': '1', '3': 'x' }),
      record(2, { '1': '2', '3': 'y' }),
    ]);
    expect(await readAll(read(text, [2]))).toEqual([record(2, { '2': 'b' })]);
  });

  it('reads a file without a header by the configured column names', async () => {
    const text = '1,a\n2,b\n';
    const items = await readAll(read(text, ['name'], { header: false, columns: ['ref', 'name'] }));
    expect(items).toEqual([record(1, { name: 'a' }), record(2, { name: 'b' })]);
  });

  it('lists every wanted column the header lacks', async () => {
    const failure = readAll(read('ref,nom\n1,a\n', ['ref', 'name', 'offer', 4]));
    await expect(failure).rejects.toMatchObject({
      code: 'FEED_COLUMNS_MISSING',
      message: 'abonnes.csv:1: the header lacks columns "name", "offer", "4"',
      context: { fileName: 'abonnes.csv', line: 1 },
    });
  });

  it('hints at the encoding when a header with missing columns did not decode', async () => {
    const bytes = encodeWithBytes('ref;Pr~nom\n1;a\n', '~', [0xe9]);
    await expect(readAll(read(bytes, ['Prénom'], { delimiter: ';' }))).rejects.toMatchObject({
      code: 'FEED_ENCODING_INVALID',
      message: expect.stringContaining('not valid utf-8 (is the encoding right?)'),
    });
  });

  it('says a Latin-1 header read as utf-8 looks like iso-8859-1 or windows-1252', async () => {
    const bytes = encodeWithBytes('N~ client;Pr~nom\n1;a\n', '~', [0xb0]);
    await expect(readAll(read(bytes, ['N° client'], { delimiter: ';' }))).rejects.toMatchObject({
      code: 'FEED_ENCODING_INVALID',
      message:
        'abonnes.csv:1: the header lacks column "N° client": the header holds bytes that are not valid utf-8 (is the encoding right?); the file looks like iso-8859-1 or windows-1252 while intake.format.encoding is utf-8',
    });
  });

  it('names the setting to check when a header holds bytes windows-1252 leaves undefined', async () => {
    const bytes = encodeWithBytes('ref;n~m\n1;a\n', '~', [0x81]);
    const failure = readAll(read(bytes, ['nom'], { delimiter: ';', encoding: 'windows-1252' }));
    await expect(failure).rejects.toMatchObject({
      code: 'FEED_ENCODING_INVALID',
      message: expect.stringContaining(
        'not valid windows-1252 (is the encoding right?); check intake.format.encoding (windows-1252) against what the ISP sends',
      ),
    });
  });

  it.each([
    ['windows-1252', 'N° client;Prénom;Date effet'],
    ['iso-8859-1', 'N° client;Prénom;Date effet'],
    ['windows-1252', 'Réf.;Élément;Œuvre;€'],
    ['iso-8859-1', 'Réf.;Élément'],
  ] as const)('says a utf-8 header read as %s looks like utf-8 (%s)', async (encoding, header) => {
    const bytes = Buffer.from(`${header}\n1;a;b;c\n`, 'utf8');
    const wanted = header.split(';').slice(0, 1);
    await expect(readAll(read(bytes, wanted, { delimiter: ';', encoding }))).rejects.toMatchObject({
      code: 'FEED_ENCODING_INVALID',
      message: `abonnes.csv:1: the header lacks column "${wanted[0]}": the header reads like utf-8 decoded as ${encoding} ("é" as "Ã©"); the file looks like utf-8 while intake.format.encoding is ${encoding}`,
    });
  });

  it.each([
    ['a Latin-1 header in the configured encoding', 'N° client;Prénom', 'windows-1252'],
    ['an ascii utf-8 header under windows-1252', 'ref;name', 'utf-8'],
  ] as const)('gives no encoding hint for %s', async (_case, header, fileEncoding) => {
    const bytes = iconv.encode(`${header}\n1;a\n`, fileEncoding);
    const failure = readAll(read(bytes, ['Offre'], { delimiter: ';', encoding: 'windows-1252' }));
    await expect(failure).rejects.toMatchObject({
      code: 'FEED_COLUMNS_MISSING',
      message: 'abonnes.csv:1: the header lacks column "Offre"',
    });
  });

  it('refuses column names for a file without header or configured columns', async () => {
    await expect(readAll(read('1,a\n', ['ref'], { header: false }))).rejects.toMatchObject({
      code: 'FEED_COLUMNS_MISSING',
      message: expect.stringContaining('no header row and no columns are configured'),
    });
  });

  it.each([
    ['a short row', 'ref,name,offer\n1,a,B\n2,b\n3,c,D\n', 'expected 3 columns, found 2'],
    ['a long row', 'ref,name,offer\n1,a,B\n2,b,C,x\n3,c,D\n', 'expected 3 columns, found 4'],
    ['a row after a headerless first row', '1,a,B\n2,b\n3,c,D\n', 'expected 3 columns, found 2'],
  ])('rejects %s and reads on', async (_case, text, reason) => {
    const header = !text.startsWith('1,');
    const items = await readAll(read(text, [1], { header }));
    const line = header ? 3 : 2;
    expect(items).toHaveLength(3);
    expect(items[1]).toEqual({ kind: 'reject', line, reason });
  });

  it.each([
    ['an unclosed quote', 'ref,name\n1,a\n2,"Dupont\n3,c\n', 3],
    ['an unclosed quote after CRLF records', 'ref,name\r\n1,"a\r\nb"\r\n2,"Dupont\r\n', 4],
    ['a quote inside an unquoted field', 'ref,name\n1,a\n2,Du"pont\n', 3],
    ['text after a closing quote', 'ref,name\n1,"Dupont"x\n', 2],
    [
      'a record over the size limit',
      `ref,name\n1,"${'Dupont'.repeat(MAX_CSV_RECORD_CHARS / 5)}`,
      2,
    ],
  ])('refuses %s with the line of the broken record', async (_case, text, line) => {
    const { error } = await readUntilFailure(read(text, ['ref', 'name']));
    expect(error).toMatchObject({ code: 'FEED_CSV_MALFORMED', context: { line } });
    expect((error as Error).message).toMatch(new RegExp(`^abonnes\\.csv:${line}: `));
    expect((error as Error).message).not.toContain('Dupont');
  });

  it.each([
    ['in one chunk', 1_048_576],
    ['in small chunks', 1_000],
  ])('refuses a row of more than MAX_CSV_FIELDS fields, %s', async (_case, chunkBytes) => {
    const text = `ref,name\n1,a\n${','.repeat(MAX_CSV_FIELDS)}\n2,b\n`;
    const input = bytesStream(Buffer.from(text), chunkBytes);
    const context = { fileName: 'abonnes.csv', wanted: ['ref'] };
    const { items, error } = await readUntilFailure(csvFormat.read(input, options(), context));
    expect(items).toEqual([record(2, { ref: '1' })]);
    expect(error).toMatchObject({ code: 'FEED_CSV_MALFORMED', context: { line: 3 } });
    expect((error as Error).message).toBe(
      `abonnes.csv:3: the record starting on this line has more than ${MAX_CSV_FIELDS} fields (is the delimiter right?)`,
    );
  });

  // csv-parse counts field characters towards max_record_size, not delimiters: before the field
  // count, 100 MB of commas held 100 million fields and 4 GB of memory.
  it('refuses a 2 GB line of nothing but delimiters after reading a few hundred kilobytes', async () => {
    const totalBytes = 2 * 1024 ** 3;
    const chunk = Buffer.alloc(64 * 1024, ',');
    let pulledBytes = 0;
    function* huge() {
      yield Buffer.from('ref,name\n1,a\n');
      for (let sent = 0; sent < totalBytes; sent += chunk.length) {
        pulledBytes += chunk.length;
        yield chunk;
      }
    }
    const input = Readable.from(huge(), { objectMode: false });
    const context = { fileName: 'abonnes.csv', wanted: ['ref'] };
    const failure = readAll(csvFormat.read(input, options(), context));
    await expect(failure).rejects.toMatchObject({
      code: 'FEED_CSV_MALFORMED',
      context: { line: 3 },
    });
    expect(pulledBytes).toBeLessThan(1024 * 1024);
  });

  it.each([
    ['a header only', 'ref,name\n'],
    ['a header and blank lines', 'ref,name\n\n   \n'],
    ['blank lines only', '\n\r\n\n'],
  ])('refuses a file with %s', async (_case, text) => {
    await expect(readAll(read(text, ['ref']))).rejects.toMatchObject({ code: 'FEED_EMPTY' });
  });

  it('rejects undecodable bytes in wanted columns only', async () => {
    const bytes = encodeWithBytes('ref,name,note\n1,a~,ok\n2,b,x~\n', '~', [0xc3, 0x28]);
    expect(await readAll(read(bytes, ['ref', 'name']))).toEqual([
      {
        kind: 'reject',
        line: 2,
        field: 'name',
        reason: 'invalid utf-8 bytes (is the encoding right?)',
      },
      record(3, { ref: '2', name: 'b' }),
    ]);
  });

  it('rejects bytes that windows-1252 leaves undefined', async () => {
    const bytes = encodeWithBytes('ref,name\n1,a~\n', '~', [0x81]);
    expect(await readAll(read(bytes, ['name'], { encoding: 'windows-1252' }))).toEqual([
      {
        kind: 'reject',
        line: 2,
        field: 'name',
        reason: 'invalid windows-1252 bytes (is the encoding right?)',
      },
    ]);
  });

  it('reads generated customers in small chunks across multi-byte characters', async () => {
    const list = customers(40);
    const lines = ['ref;name', ...list.map((c) => `${c.ref};${c.name}`), ''];
    const input = feedStream([lines.join('\r\n')], { chunkBytes: 3 });
    const context = { fileName: 'abonnes.csv', wanted: ['name'] };
    const items = await readAll(csvFormat.read(input, options({ delimiter: ';' }), context));
    expect(items).toEqual(list.map((c, i) => record(i + 2, { name: c.name })));
  });
});
