import { describe, expect, it } from 'vitest';
import { fixedWidthFormat, MAX_FIXED_WIDTH_LINE_CHARS } from './fixed-width.js';
import { type FixedWidthOptions, fixedWidthOptionsSchema } from './fixed-width.options.js';
import type { FormatItem } from './format.js';
import { bytesStream, type Customer, customers, feedStream, readAll } from './test-feeds.js';

/** Header `01`, details `02` (ref 3-10, offer 11-24, name 25-54), trailer `99` (count 3-8). */
const LAYOUT = {
  type: 'fixed-width',
  recordType: { start: 1, length: 2 },
  header: { code: '01' },
  detail: {
    code: '02',
    fields: {
      ref: { start: 3, length: 8 },
      offer: { start: 11, length: 14 },
      name: { start: 25, length: 30 },
    },
  },
  trailer: { code: '99', count: { start: 3, length: 6 } },
};

function options(overrides: Record<string, unknown> = {}): FixedWidthOptions {
  return fixedWidthOptionsSchema.parse({ ...LAYOUT, ...overrides });
}

const WANTED = ['ref', 'offer', 'name'];

function read(text: string | Buffer, overrides: Record<string, unknown> = {}, wanted = WANTED) {
  const input = typeof text === 'string' ? feedStream([text]) : bytesStream(text);
  return fixedWidthFormat.read(input, options(overrides), { fileName: 'export.txt', wanted });
}

const detail = (c: Customer) => `02${c.ref}${c.offer.padEnd(14)}${c.name.padEnd(30)}`;
const trailer = (count: number | string) => `99${String(count).padStart(6, '0')}`;

function file(lines: string[], eol = '\n'): string {
  return lines.map((line) => `${line}${eol}`).join('');
}

const record = (line: number, c: Customer): FormatItem => ({
  kind: 'record',
  line,
  values: { ref: c.ref, offer: c.offer, name: c.name },
});

describe('fixedWidthFormat', () => {
  const list = customers(4);

  it('reads the details between a header and a trailer whose count matches', async () => {
    const text = file(['0120260101 export', ...list.map(detail), trailer(4)], '\r\n');
    expect(await readAll(read(text))).toEqual(list.map((c, i) => record(i + 2, c)));
  });

  it('keeps the padding when trim is off', async () => {
    const text = file([detail(list[0] as Customer), trailer(1)]);
    const [item] = await readAll(read(text, { trim: false }, ['offer']));
    expect(item).toEqual({ kind: 'record', line: 1, values: { offer: 'SECU_ESSENTIEL' } });
    const [padded] = await readAll(read(text, { trim: false }, ['name']));
    expect(padded).toMatchObject({ values: { name: `${list[0]?.name.padEnd(30)}` } });
  });

  it('needs no header even when one is configured', async () => {
    const text = file([...list.map(detail), trailer(4)]);
    expect(await readAll(read(text))).toHaveLength(4);
  });

  it('skips blank lines, still counting them', async () => {
    const text = file(['01 header', '', detail(list[0] as Customer), '   ', trailer(1), '']);
    expect(await readAll(read(text))).toEqual([record(3, list[0] as Customer)]);
  });

  it('counts rejected detail lines in the trailer count', async () => {
    const text = file(['01', detail(list[0] as Customer), '02 short', trailer(2)]);
    const items = await readAll(read(text));
    expect(items.map((item) => item.kind)).toEqual(['record', 'reject']);
  });

  it('rejects a detail line too short for a wanted field, naming it', async () => {
    const short = detail(list[1] as Customer).slice(0, 40);
    const text = file(['01', detail(list[0] as Customer), short, trailer(2)]);
    const items = await readAll(read(text));
    expect(items[1]).toEqual({
      kind: 'reject',
      line: 3,
      field: 'name',
      reason: 'line is 40 characters, field name needs 54',
    });
  });

  it('rejects a line of unknown record type and reads on', async () => {
    const text = file(['01', '07 something else', detail(list[0] as Customer), trailer(1)]);
    expect(await readAll(read(text))).toEqual([
      { kind: 'reject', line: 2, reason: 'unknown record type "07"' },
      record(3, list[0] as Customer),
    ]);
  });

  it('rejects a second header', async () => {
    const text = file(['01', detail(list[0] as Customer), '01 again', trailer(1)]);
    expect((await readAll(read(text)))[1]).toEqual({
      kind: 'reject',
      line: 3,
      reason: 'header record not on the first line',
    });
  });

  it('rejects a line too long to keep, in bounded memory', async () => {
    const long = `02${'x'.repeat(MAX_FIXED_WIDTH_LINE_CHARS)}`;
    const text = file(['01', long, detail(list[0] as Customer), trailer(2)]);
    expect(await readAll(read(text))).toEqual([
      {
        kind: 'reject',
        line: 2,
        reason: `line is longer than ${MAX_FIXED_WIDTH_LINE_CHARS} characters`,
      },
      record(3, list[0] as Customer),
    ]);
  });

  it('reads every line as a detail when no record type is configured', async () => {
    const lines = list.map((c) => detail(c).slice(2));
    const fields = { ref: { start: 1, length: 8 }, name: { start: 23, length: 30 } };
    const overrides = { recordType: undefined, header: undefined, trailer: undefined };
    const items = await readAll(
      read(file(lines), { ...overrides, detail: { fields } }, ['ref', 'name']),
    );
    expect(items).toEqual(
      list.map((c, i) => ({ kind: 'record', line: i + 1, values: { ref: c.ref, name: c.name } })),
    );
  });

  it('refuses a trailer whose count differs from the details, with both numbers', async () => {
    const text = file(['01', ...list.map(detail), trailer(5)]);
    await expect(readAll(read(text))).rejects.toMatchObject({
      code: 'FEED_TRAILER_MISMATCH',
      message: 'export.txt:6: the trailer counts 5 detail records, the file holds 4',
      context: { line: 6 },
    });
  });

  it.each([
    ['letters', 'abcdef'],
    ['nothing', ''],
    ['a sign', '    -4'],
  ])('refuses a trailer whose count is %s', async (_case, count) => {
    const text = file(['01', ...list.map(detail), `99${count}`]);
    await expect(readAll(read(text))).rejects.toMatchObject({
      code: 'FEED_TRAILER_MISMATCH',
      message: expect.stringContaining('is not a number'),
    });
  });

  it.each([
    ['at a line break', (text: string) => text.slice(0, text.indexOf('\n02', 60) + 1)],
    ['inside a line', (text: string) => text.slice(0, text.length - 30)],
  ])('refuses a file cut %s, before its trailer', async (_case, cut) => {
    const whole = file(['01', ...list.map(detail), trailer(4)]);
    await expect(readAll(read(cut(whole)))).rejects.toMatchObject({
      code: 'FEED_TRAILER_MISSING',
      message: expect.stringContaining('without its trailer record (code "99")'),
    });
  });

  it('refuses a record after the trailer', async () => {
    const text = file(['01', detail(list[0] as Customer), trailer(1), detail(list[1] as Customer)]);
    await expect(readAll(read(text))).rejects.toMatchObject({
      code: 'FEED_TRAILER_MISSING',
      context: { line: 4 },
    });
  });

  it('refuses a file with a header and a zero trailer only', async () => {
    await expect(readAll(read(file(['01', trailer(0)])))).rejects.toMatchObject({
      code: 'FEED_EMPTY',
    });
  });

  it('refuses wanted fields the layout does not define, before reading', async () => {
    const failure = readAll(read(Buffer.alloc(0), {}, ['ref', 'email', 'phone']));
    await expect(failure).rejects.toMatchObject({
      code: 'FEED_COLUMNS_MISSING',
      message: 'export.txt: the detail layout defines no field "email", "phone"',
    });
  });

  it('refuses header, detail or trailer codes without a recordType position', async () => {
    const failure = readAll(read(file([detail(list[0] as Customer)]), { recordType: undefined }));
    await expect(failure).rejects.toMatchObject({ name: 'ConfigError', code: 'CONFIG_INVALID' });
  });
});
