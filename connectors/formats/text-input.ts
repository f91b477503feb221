/**
 * Bytes to text for every format: decoding, line splitting and the undecodable-byte check.
 * Decoding is chunk by chunk with an iconv-lite decoder (it carries a multi-byte character
 * split across two chunks), so no format ever holds more than a chunk and one line of text.
 * Lines end at LF; a CR right before it belongs to the line break, a CR anywhere else is text.
 */
import type { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import { feedError } from './feed-error.js';
import type { FormatItem, RecordReject } from './format.js';

/** The encodings an ISP config may name (see `config/fields.ts`). */
export type FeedEncoding = 'utf-8' | 'iso-8859-1' | 'windows-1252';

/** What a decoder puts where bytes are not valid in the encoding (U+FFFD). */
export const REPLACEMENT_CHAR = '\uFFFD';

/**
 * Decodes a byte stream chunk by chunk, without a BOM. Throws FEED_ZERO_BYTES for an input
 * of no byte at all: an export always has at least a header or a record.
 */
export async function* decodeText(
  input: Readable,
  encoding: FeedEncoding,
  fileName: string,
): AsyncGenerator<string> {
  const decoder = iconv.getDecoder(encoding, { stripBOM: true });
  let sizeBytes = 0;
  for await (const chunk of input) {
    const bytes: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    sizeBytes += bytes.length;
    const text = decoder.write(bytes);
    if (text.length > 0) yield text;
  }
  if (sizeBytes === 0) {
    throw feedError('FEED_ZERO_BYTES', { fileName }, 'the file is empty (0 bytes)');
  }
  const rest = decoder.end();
  if (rest !== undefined && rest.length > 0) yield rest;
}

/** Drops the first `count` lines of a text stream (a preamble before the header). */
export async function* dropLines(
  texts: AsyncIterable<string>,
  count: number,
): AsyncGenerator<string> {
  let left = count;
  for await (const text of texts) {
    let start = 0;
    while (left > 0 && start < text.length) {
      const end = text.indexOf('\n', start);
      if (end === -1) start = text.length;
      else {
        start = end + 1;
        left--;
      }
    }
    if (start < text.length) yield start === 0 ? text : text.slice(start);
  }
}

/** One physical line, without its line break. */
export interface TextLine {
  /** 1-based line number. */
  number: number;
  /** The line's text; empty when the line was too long to keep (see `lengthChars`). */
  text: string;
  /** Length of the line in characters, even when its text was dropped. */
  lengthChars: number;
  /** True when the line exceeded the splitter's limit and its text was not kept. */
  isTooLong: boolean;
}

/**
 * Cuts a stream of text chunks into lines. A line longer than `maxLineChars` is not kept (its
 * length still is), so a file without line breaks cannot grow memory without bound.
 */
export class LineSplitter {
  private carry = '';
  private carryChars = 0;
  private isCarryDropped = false;
  private nextNumber = 1;

  constructor(private readonly maxLineChars: number) {}

  /** The complete lines that `text` finishes, in order. */
  push(text: string): TextLine[] {
    const lines: TextLine[] = [];
    let start = 0;
    let end = text.indexOf('\n');
    while (end !== -1) {
      lines.push(this.finishLine(text.slice(start, end)));
      start = end + 1;
      end = text.indexOf('\n', start);
    }
    this.keep(text.slice(start));
    return lines;
  }

  /** The last line, when the text does not end with a line break. */
  end(): TextLine | undefined {
    if (this.carryChars === 0 && !this.isCarryDropped) return undefined;
    return this.finishLine('');
  }

  private keep(part: string): void {
    this.carryChars += part.length;
    if (this.isCarryDropped) return;
    if (this.carryChars > this.maxLineChars) {
      this.carry = '';
      this.isCarryDropped = true;
    } else if (part.length > 0) {
      this.carry = this.carry.length === 0 ? part : this.carry + part;
    }
  }

  private finishLine(tail: string): TextLine {
    this.keep(tail);
    const isTooLong = this.isCarryDropped;
    let text = this.carry;
    let lengthChars = this.carryChars;
    if (text.endsWith('\r')) {
      text = text.slice(0, -1);
      lengthChars--;
    }
    const line = { number: this.nextNumber++, text, lengthChars, isTooLong };
    this.carry = '';
    this.carryChars = 0;
    this.isCarryDropped = false;
    return line;
  }
}

/** The reject for a value the decoder could not read; names the encoding to check. */
export function undecodableReject(line: number, field: string, encoding: string): RecordReject {
  return {
    kind: 'reject',
    line,
    field,
    reason: `invalid ${encoding} bytes (is the encoding right?)`,
  };
}

/**
 * Turns a record whose values hold U+FFFD into a reject naming the first such source. A
 * U+FFFD in an export is always the trace of bytes that did not decode, here or upstream.
 */
export function checkDecoded(item: FormatItem, encoding: string): FormatItem {
  if (item.kind === 'reject') return item;
  for (const [field, value] of Object.entries(item.values)) {
    const isBad =
      typeof value === 'string'
        ? value.includes(REPLACEMENT_CHAR)
        : value.some((part) => part.includes(REPLACEMENT_CHAR));
    if (isBad) return undecodableReject(item.line, field, encoding);
  }
  return item;
}
