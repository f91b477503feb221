/**
 * The CSV reader. csv-parse splits records (quotes, escapes, delimiters and line breaks inside
 * quoted fields) in array mode, its fastest; this module numbers lines itself (csv-parse counts
 * a CRLF inside a quoted field twice), resolves the wanted columns to indices once from the
 * header, and turns each row into a record or a reject. csv-parse's errors are passed along
 * in the row stream, after the rows parsed before them, so that the line they name is exact.
 * csv-parse's record size counts field characters only, so a line of nothing but delimiters
 * would grow one row without bound; the parser here is fed in slices and counts fields too.
 */
import { pipeline, Readable, type TransformCallback } from 'node:stream';
import { CsvError, Parser } from 'csv-parse';
import iconv from 'iconv-lite';
import { isRelaisError } from '../../platform/errors.js';
import { type CsvOptions, csvOptionsSchema } from './csv.options.js';
import { feedError } from './feed-error.js';
import type { FeedFormat, FormatItem, ReadContext, SourceRecord } from './format.js';
import { decodeText, dropLines, REPLACEMENT_CHAR, undecodableReject } from './text-input.js';

/**
 * Longest record accepted, in characters. Far above any customer row; it bounds memory when
 * a quote never closes and the rest of the file would otherwise pile up in one field.
 */
export const MAX_CSV_RECORD_CHARS = 1_048_576;

/**
 * Most fields a record may have. Far above any export's column count; it bounds memory when a
 * line holds nothing but delimiters (csv-parse does not count them towards the record size).
 */
export const MAX_CSV_FIELDS = 10_000;

/** Bytes handed to csv-parse at a time, so that the field count is checked often enough. */
const SLICE_BYTES = 65_536;

/** Reads delimited text; see the module comment for how the work is split with csv-parse. */
export const csvFormat: FeedFormat<CsvOptions> = {
  type: 'csv',
  optionsSchema: csvOptionsSchema,
  read: readCsv,
};

async function* readCsv(
  input: Readable,
  options: CsvOptions,
  context: ReadContext,
): AsyncGenerator<FormatItem> {
  const rows = new CsvRows(options, context);
  const parser = new InBandErrorParser({
    delimiter: options.delimiter,
    quote: options.quote,
    escape: options.escape,
    record_delimiter: ['\r\n', '\n'],
    relax_column_count: true,
    max_record_size: MAX_CSV_RECORD_CHARS,
  });
  const text = dropLines(decodeText(input, options.encoding, context.fileName), options.skipLines);
  const parsed = pipeline(Readable.from(text), parser, () => {});

  let count = 0;
  try {
    for await (const row of parsed as AsyncIterable<string[] | Error>) {
      if (!Array.isArray(row)) throw rows.explain(row);
      const item = rows.toItem(row);
      if (item === null) continue;
      count++;
      yield item;
    }
  } finally {
    // The pipeline would release the input too, but only a few ticks later.
    input.destroy();
  }
  if (count === 0) throw rows.noRecordError();
}

/**
 * csv-parse's stream, except that a parse error is pushed as a row instead of destroying the
 * stream: a destroyed stream drops the rows still buffered, and with them the line count.
 */
class InBandErrorParser extends Parser {
  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback) {
    const state = parserState(this);
    // Stopped by an error: like csv-parse, take no more input (the reader is failing anyway).
    if (isStopped(state)) return;
    for (let start = 0; start < chunk.length; start += SLICE_BYTES) {
      const slice =
        chunk.length <= SLICE_BYTES ? chunk : chunk.subarray(start, start + SLICE_BYTES);
      let failed = false;
      super._transform(slice, encoding, (err) => {
        if (err) {
          this.push(err);
          failed = true;
        }
      });
      // After an error csv-parse stops, and calls nothing any more.
      if (failed || isStopped(state)) return callback();
      if ((state.record?.length ?? 0) > MAX_CSV_FIELDS) {
        state.stop = true;
        this.push(new TooManyFieldsError());
        return callback();
      }
    }
    callback();
  }

  override _flush(callback: TransformCallback) {
    super._flush(this.passErrorOn(callback));
  }

  private passErrorOn(callback: TransformCallback): TransformCallback {
    return (err) => {
      if (err) this.push(err);
      callback();
    };
  }
}

/**
 * The part of csv-parse's parser state read here: the fields of the record being read, and its
 * stop flag. Not in its typings (kept public "for backward compatibility"); the delimiter-bomb
 * test in csv.test.ts fails if an upgrade moves them.
 */
interface ParserState {
  record?: unknown[];
  stop?: boolean;
}

function parserState(parser: Parser): ParserState {
  return (parser as unknown as { state: ParserState }).state;
}

function isStopped(state: ParserState): boolean {
  return state.stop === true;
}

/** Pushed in the row stream when the record being read has more than MAX_CSV_FIELDS fields. */
class TooManyFieldsError extends Error {}

/** Where each wanted source sits in a row, resolved once. */
interface Layout {
  columnCount: number;
  keys: string[];
  indexes: number[];
}

/** Row-by-row state of one read: line numbers, the layout, and row-to-item conversion. */
class CsvRows {
  /** Line where the next row starts, counting the lines `skipLines` dropped. */
  private nextLine: number;
  private layout: Layout | undefined;

  constructor(
    private readonly options: CsvOptions,
    private readonly context: ReadContext,
  ) {
    this.nextLine = options.skipLines + 1;
  }

  /** The item for one parsed row, or null for a blank line or the header row. */
  toItem(fields: string[]): FormatItem | null {
    const line = this.nextLine;
    // A row that ends inside one slice escapes the parser's check: refuse it the same way.
    if (fields.length > MAX_CSV_FIELDS) throw this.explain(new TooManyFieldsError());
    this.nextLine += 1 + countLineBreaks(fields);
    if (isBlankRow(fields)) return null;
    if (this.layout === undefined) {
      this.layout = this.resolveLayout(fields, line);
      if (this.options.header) return null;
    }
    return this.extract(this.layout, fields, line);
  }

  /** The error to throw for a parse failure: csv-parse's become FEED_CSV_MALFORMED. */
  explain(err: Error): unknown {
    const at = { fileName: this.context.fileName, line: this.nextLine };
    if (err instanceof TooManyFieldsError) {
      const message = `the record starting on this line has more than ${MAX_CSV_FIELDS} fields (is the delimiter right?)`;
      return feedError('FEED_CSV_MALFORMED', at, message);
    }
    if (isRelaisError(err) || !(err instanceof CsvError)) return err;
    return feedError('FEED_CSV_MALFORMED', at, describeCsvError(err.code));
  }

  noRecordError(): unknown {
    const what = this.layout === undefined ? 'no row at all' : 'a header but no record';
    return feedError('FEED_EMPTY', { fileName: this.context.fileName }, `the file holds ${what}`);
  }

  private extract(layout: Layout, fields: string[], line: number): FormatItem {
    if (fields.length !== layout.columnCount) {
      const reason = `expected ${layout.columnCount} columns, found ${fields.length}`;
      return { kind: 'reject', line, reason };
    }
    const record: SourceRecord = { kind: 'record', line, values: {} };
    for (let i = 0; i < layout.keys.length; i++) {
      const key = layout.keys[i] as string;
      const value = fields[layout.indexes[i] as number] as string;
      if (value.includes(REPLACEMENT_CHAR)) {
        return undecodableReject(line, key, this.options.encoding);
      }
      record.values[key] = value;
    }
    return record;
  }

  private resolveLayout(firstRow: string[], line: number): Layout {
    const { header, columns } = this.options;
    const names = header ? firstRow.map((name) => name.trim()) : columns;
    const columnCount = header ? firstRow.length : (columns?.length ?? firstRow.length);
    const layout: Layout = { columnCount, keys: [], indexes: [] };
    const missing: string[] = [];
    for (const source of this.context.wanted) {
      const index = typeof source === 'number' ? source - 1 : (names?.indexOf(source) ?? -1);
      if (index < 0 || index >= columnCount) missing.push(JSON.stringify(String(source)));
      else {
        layout.keys.push(String(source));
        layout.indexes.push(index);
      }
    }
    if (missing.length > 0) throw this.missingColumnsError(missing, firstRow, line);
    return layout;
  }

  private missingColumnsError(missing: string[], firstRow: string[], line: number): unknown {
    const { header, columns, encoding } = this.options;
    const at = { fileName: this.context.fileName, line };
    let message = `the header lacks column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
    const hint = header ? encodingHint(firstRow, encoding) : undefined;
    if (hint) return feedError('FEED_ENCODING_INVALID', at, `${message}: ${hint}`);
    if (!header) {
      message = `no column ${missing.join(', ')}: the file has no header row and ${
        columns === undefined ? 'no columns are configured' : 'columns does not name them'
      }`;
    }
    return feedError('FEED_COLUMNS_MISSING', at, message);
  }
}

/**
 * Why a header may lack columns it seems to have: the file is not in the configured encoding.
 * Bytes that did not decode (U+FFFD) are the trace of a Latin-1 file read as UTF-8; a header
 * whose text, encoded back, is valid UTF-8 with non-ASCII characters ("Ã©" for "é") is a
 * UTF-8 file read as Latin-1. Names no header text: the message must hold nothing of the file.
 */
function encodingHint(names: string[], encoding: CsvOptions['encoding']): string | undefined {
  const setting = `intake.format.encoding is ${encoding}`;
  if (names.some((name) => name.includes(REPLACEMENT_CHAR))) {
    const likely =
      encoding === 'utf-8'
        ? `the file looks like iso-8859-1 or windows-1252 while ${setting}`
        : `check intake.format.encoding (${encoding}) against what the ISP sends`;
    return `the header holds bytes that are not valid ${encoding} (is the encoding right?); ${likely}`;
  }
  if (encoding === 'utf-8') return undefined;
  const bytes = iconv.encode(names.join(''), encoding);
  if (bytes.some((byte) => byte >= 0x80) && !bytes.toString('utf8').includes(REPLACEMENT_CHAR)) {
    return `the header reads like utf-8 decoded as ${encoding} ("é" as "Ã©"); the file looks like utf-8 while ${setting}`;
  }
  return undefined;
}

/** Line breaks inside the fields of one row (quoted fields only can hold them). */
function countLineBreaks(fields: string[]): number {
  let count = 0;
  for (const field of fields) {
    let at = field.indexOf('\n');
    while (at !== -1) {
      count++;
      at = field.indexOf('\n', at + 1);
    }
  }
  return count;
}

/** An empty or spaces-only line: one field holding nothing but whitespace. */
function isBlankRow(fields: string[]): boolean {
  return fields.length === 1 && (fields[0] as string).trim().length === 0;
}

/** Our words for csv-parse's error codes; its own messages may quote a field's value. */
function describeCsvError(code: string): string {
  switch (code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field in the record starting on this line never closes';
    case 'CSV_MAX_RECORD_SIZE':
      return `the record starting on this line is longer than ${MAX_CSV_RECORD_CHARS} characters (a quote that never closes?)`;
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'in the record starting on this line, a closing quote is followed by something other than a delimiter or a line break';
    case 'INVALID_OPENING_QUOTE':
      return 'in the record starting on this line, a quote appears inside an unquoted field';
    default:
      return `the record starting on this line cannot be read (csv-parse ${code})`;
  }
}
