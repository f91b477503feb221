/**
 * The fixed-width reader. Each line is one record; a code at `recordType` says whether it is
 * the header, a detail or the trailer. The trailer's count is the only defence against a file
 * cut short in transit (a truncated fixed-width file still parses), so a configured trailer
 * that is missing, misplaced or miscounting refuses the whole file, and every detail line
 * counts towards it, rejected or not, because the ISP counted lines it wrote.
 */
import type { Readable } from 'node:stream';
import { ConfigError } from '../../platform/errors.js';
import { feedError } from './feed-error.js';
import { type FixedWidthOptions, fixedWidthOptionsSchema } from './fixed-width.options.js';
import type { FeedFormat, FormatItem, ReadContext, SourceRecord } from './format.js';
import {
  decodeText,
  LineSplitter,
  REPLACEMENT_CHAR,
  type TextLine,
  undecodableReject,
} from './text-input.js';

/**
 * Longest line kept, in characters. Far above any record layout; it bounds memory when a file
 * has no line breaks at all. A longer line is rejected.
 */
export const MAX_FIXED_WIDTH_LINE_CHARS = 1_048_576;

/** Reads fixed-width exports; see the module comment. */
export const fixedWidthFormat: FeedFormat<FixedWidthOptions> = {
  type: 'fixed-width',
  optionsSchema: fixedWidthOptionsSchema,
  read: readFixedWidth,
};

async function* readFixedWidth(
  input: Readable,
  options: FixedWidthOptions,
  context: ReadContext,
): AsyncGenerator<FormatItem> {
  const lines = new FixedWidthLines(options, context);
  const splitter = new LineSplitter(MAX_FIXED_WIDTH_LINE_CHARS);
  for await (const text of decodeText(input, options.encoding, context.fileName)) {
    for (const line of splitter.push(text)) {
      const item = lines.read(line);
      if (item !== undefined) yield item;
    }
  }
  const last = splitter.end();
  const item = last === undefined ? undefined : lines.read(last);
  if (item !== undefined) yield item;
  lines.finish();
}

type LineKind = 'header' | 'detail' | 'trailer';

/** A wanted field with its 0-based slice bounds. */
interface FieldSlice {
  name: string;
  from: number;
  to: number;
}

/** The state of one read: what has been seen, and how each line is turned into an item. */
class FixedWidthLines {
  private readonly fields: FieldSlice[];
  private items = 0;
  private details = 0;
  private lastLine = 0;
  private hasContent = false;
  private trailerLine: number | undefined;

  constructor(
    private readonly options: FixedWidthOptions,
    private readonly context: ReadContext,
  ) {
    checkRecordTypes(options);
    this.fields = resolveFields(options, context);
  }

  /** The item for one line, or undefined for a blank line, the header or the trailer. */
  read(line: TextLine): FormatItem | undefined {
    this.lastLine = line.number;
    if (!line.isTooLong && isBlank(line.text)) return undefined;
    if (this.trailerLine !== undefined) {
      const message = `a record follows the trailer of line ${this.trailerLine}; the trailer must be the last line`;
      throw feedError('FEED_TRAILER_MISSING', this.at(line.number), message);
    }
    const isFirst = !this.hasContent;
    this.hasContent = true;
    if (line.isTooLong) {
      // Its record type was dropped with its text; only details run this long, so the trailer
      // count includes it.
      this.details++;
      return this.count({
        kind: 'reject',
        line: line.number,
        reason: `line is longer than ${MAX_FIXED_WIDTH_LINE_CHARS} characters`,
      });
    }
    const kind = this.kindOf(line.text);
    if (typeof kind !== 'string') {
      return this.count({ kind: 'reject', line: line.number, reason: kind.unknown });
    }
    if (kind === 'header') {
      if (isFirst) return undefined;
      return this.count({
        kind: 'reject',
        line: line.number,
        reason: 'header record not on the first line',
      });
    }
    if (kind === 'trailer') {
      this.checkTrailer(line);
      return undefined;
    }
    this.details++;
    return this.count(this.extract(line));
  }

  /** Checks what only the end of the file can tell: a missing trailer, or no record at all. */
  finish(): void {
    const { trailer } = this.options;
    if (trailer !== undefined && this.trailerLine === undefined) {
      const message = `the file ends on line ${this.lastLine} without its trailer record (code ${JSON.stringify(trailer.code)})`;
      throw feedError('FEED_TRAILER_MISSING', this.at(), message);
    }
    if (this.items === 0) {
      throw feedError('FEED_EMPTY', this.at(), 'the file holds no detail record');
    }
  }

  /** The kind of a line, or the reason it has none. */
  private kindOf(text: string): LineKind | { unknown: string } {
    const { recordType, header, detail, trailer } = this.options;
    if (recordType === undefined) return 'detail';
    const from = recordType.start - 1;
    const code = stripSpaces(text.slice(from, from + recordType.length));
    if (header !== undefined && code === header.code) return 'header';
    if (trailer !== undefined && code === trailer.code) return 'trailer';
    if (detail.code === undefined || code === detail.code) return 'detail';
    return { unknown: `unknown record type ${JSON.stringify(code)}` };
  }

  private extract(line: TextLine): FormatItem {
    const { text, number } = line;
    const record: SourceRecord = { kind: 'record', line: number, values: {} };
    for (const field of this.fields) {
      if (text.length < field.to) {
        const reason = `line is ${text.length} characters, field ${field.name} needs ${field.to}`;
        return { kind: 'reject', line: number, field: field.name, reason };
      }
      const raw = text.slice(field.from, field.to);
      if (raw.includes(REPLACEMENT_CHAR)) {
        return undecodableReject(number, field.name, this.options.encoding);
      }
      record.values[field.name] = this.options.trim ? stripSpaces(raw) : raw;
    }
    return record;
  }

  private checkTrailer(line: TextLine): void {
    const count = (this.options.trailer as NonNullable<FixedWidthOptions['trailer']>).count;
    const from = count.start - 1;
    const written = stripSpaces(line.text.slice(from, from + count.length));
    if (!/^\d+$/.test(written)) {
      const message = `the trailer count (positions ${count.start} to ${from + count.length}) is not a number`;
      throw feedError('FEED_TRAILER_MISMATCH', this.at(line.number), message);
    }
    if (Number(written) !== this.details) {
      const message = `the trailer counts ${Number(written)} detail records, the file holds ${this.details}`;
      throw feedError('FEED_TRAILER_MISMATCH', this.at(line.number), message);
    }
    this.trailerLine = line.number;
  }

  private count(item: FormatItem): FormatItem {
    this.items++;
    return item;
  }

  private at(line?: number) {
    return line === undefined
      ? { fileName: this.context.fileName }
      : { fileName: this.context.fileName, line };
  }
}

/** Header, trailer and detail codes can only be read at a configured `recordType` position. */
function checkRecordTypes(options: FixedWidthOptions): void {
  const { recordType, header, trailer, detail } = options;
  if (recordType !== undefined) return;
  if (header === undefined && trailer === undefined && detail.code === undefined) return;
  throw new ConfigError(
    'CONFIG_INVALID',
    'fixed-width header, trailer and detail codes need recordType, the position of the code',
  );
}

/** The wanted detail fields; a name the layout does not define refuses the read up front. */
function resolveFields(options: FixedWidthOptions, context: ReadContext): FieldSlice[] {
  const fields: FieldSlice[] = [];
  const missing: string[] = [];
  for (const source of context.wanted) {
    const name = String(source);
    const position = Object.hasOwn(options.detail.fields, name)
      ? options.detail.fields[name]
      : undefined;
    if (position === undefined) missing.push(JSON.stringify(name));
    else fields.push({ name, from: position.start - 1, to: position.start - 1 + position.length });
  }
  if (missing.length > 0) {
    const message = `the detail layout defines no field ${missing.join(', ')}`;
    throw feedError('FEED_COLUMNS_MISSING', { fileName: context.fileName }, message);
  }
  return fields;
}

/** Removes the padding spaces around a value (only spaces: a tab is data). */
function stripSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && value.charCodeAt(start) === 32) start++;
  while (end > start && value.charCodeAt(end - 1) === 32) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function isBlank(text: string): boolean {
  return stripSpaces(text).length === 0;
}
