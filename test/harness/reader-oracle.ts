/**
 * An oracle for the format readers (connectors/formats), for the property tests and the fuzz run
 * of issue 7. Whatever the bytes, a read may only end in two ways: records and rejects, or a
 * refusal of the whole file. A refusal is an IspDataError with a FEED_* code whose message
 * starts with the file name and gives a reason; anything else (a TypeError, a RangeError, a hang)
 * is a crash. Every record and reject points at a line of the file, holds only what was asked
 * for, and no message repeats a personal value of the export.
 *
 * Checks return the list of what is wrong, empty when all is well.
 */
import { Readable } from 'node:stream';
import type { FeedFormat, FormatItem } from '../../connectors/formats/format.js';
import type { FormatOptions } from '../../connectors/formats/registry.js';
import { REPLACEMENT_CHAR } from '../../connectors/formats/text-input.js';
import { IspDataError, isRelaisError } from '../../platform/errors.js';

/** What one read gave: its items until it ended, and the error it ended with, if any. */
export interface ReadOutcome {
  items: FormatItem[];
  error: unknown;
}

export interface ReadSubject {
  bytes: Buffer;
  fileName: string;
  wanted: readonly (string | number)[];
  /** Values no message may repeat. */
  personal: readonly string[];
  /** XML lines may hold several records; CSV and fixed-width lines one at most. */
  isOneRecordPerLine: boolean;
}

/** A stream of `bytes` handed out in chunks of the given sizes, used in turn. */
export function chunkedStream(bytes: Buffer, sizes: readonly number[]): Readable {
  function* chunks(): Generator<Buffer> {
    let start = 0;
    for (let i = 0; start < bytes.length; i++) {
      const size = Math.max(1, sizes[i % sizes.length] ?? bytes.length);
      yield bytes.subarray(start, start + size);
      start += size;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** Reads `bytes` through `format` to the end, catching what it throws. */
export async function readOutcome(
  format: FeedFormat<FormatOptions>,
  options: FormatOptions,
  subject: Pick<ReadSubject, 'bytes' | 'fileName' | 'wanted'>,
  chunkSizes: readonly number[],
): Promise<ReadOutcome> {
  const items: FormatItem[] = [];
  const input = chunkedStream(subject.bytes, chunkSizes);
  try {
    const context = { fileName: subject.fileName, wanted: subject.wanted };
    for await (const item of format.read(input, options, context)) items.push(item);
  } catch (error) {
    return { items, error };
  }
  return { items, error: undefined };
}

/** Line breaks a reader may count: LF, CR and CRLF (XML counts a lone CR as a line end). */
function maxLineOf(bytes: Buffer): number {
  let lines = 1;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a || (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a)) lines++;
  }
  return lines;
}

/** Everything wrong with how a read ended. */
export function readViolations(outcome: ReadOutcome, subject: ReadSubject): string[] {
  const found: string[] = [];
  const maxLine = maxLineOf(subject.bytes);
  if (outcome.error !== undefined)
    found.push(...refusalViolations(outcome.error, subject, maxLine));
  const wanted = new Set(subject.wanted.map(String));
  let previousLine = 0;
  for (const item of outcome.items) {
    const where = `${item.kind} of line ${item.line}`;
    if (!Number.isInteger(item.line) || item.line < 1 || item.line > maxLine) {
      found.push(`${where}: outside the file's ${maxLine} lines`);
    }
    const isInOrder = subject.isOneRecordPerLine
      ? item.line > previousLine
      : item.line >= previousLine;
    if (!isInOrder) found.push(`${where}: after line ${previousLine}`);
    previousLine = item.line;
    if (item.kind === 'reject') found.push(...formatRejectViolations(item, wanted, subject, where));
    else found.push(...valueViolations(item.values, wanted, where));
  }
  return found;
}

function formatRejectViolations(
  item: Extract<FormatItem, { kind: 'reject' }>,
  wanted: Set<string>,
  subject: ReadSubject,
  where: string,
): string[] {
  const found: string[] = [];
  if (typeof item.reason !== 'string' || item.reason.trim() === '')
    found.push(`${where}: no reason`);
  if (item.field !== undefined && !wanted.has(item.field)) {
    found.push(`${where}: field ${JSON.stringify(item.field)} was not asked for`);
  }
  const leaked = subject.personal.find((value) => item.reason.includes(value));
  if (leaked !== undefined) found.push(`${where}: reason repeats a personal value`);
  return found;
}

function valueViolations(
  values: Record<string, unknown>,
  wanted: Set<string>,
  where: string,
): string[] {
  const found: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (!wanted.has(key)) found.push(`${where}: value ${JSON.stringify(key)} was not asked for`);
    const parts = Array.isArray(value) ? value : [value];
    if (parts.some((part) => typeof part !== 'string')) found.push(`${where}: ${key} not text`);
    else if (parts.some((part) => (part as string).includes(REPLACEMENT_CHAR))) {
      found.push(`${where}: ${key} holds bytes that did not decode`);
    }
  }
  return found;
}

/** A refusal: an IspDataError with a FEED_* code, naming the file and, if any, a real line. */
export function refusalViolations(error: unknown, subject: ReadSubject, maxLine: number): string[] {
  if (!(error instanceof IspDataError) || !isRelaisError(error)) {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    return [`crashed instead of refusing: ${text}`];
  }
  const found: string[] = [];
  if (!error.code.startsWith('FEED_')) found.push(`refusal code ${error.code}`);
  if (error.retryable) found.push('a refusal of the data is marked retryable');
  const prefix = `${subject.fileName}:`;
  if (!error.message.startsWith(prefix))
    found.push(`message does not name the file: ${error.message}`);
  const reason = error.message.replace(/^[^ ]*: /, '');
  if (reason.trim().length < 8) found.push(`message gives no reason: ${error.message}`);
  if (error.context.fileName !== subject.fileName) found.push('context does not name the file');
  const line = error.context.line;
  if (
    line !== undefined &&
    (!Number.isInteger(line) || (line as number) < 1 || (line as number) > maxLine + 1)
  ) {
    found.push(`refusal names line ${String(line)} of ${maxLine}`);
  }
  if (subject.personal.some((value) => error.message.includes(value))) {
    found.push('refusal message repeats a personal value');
  }
  return found;
}

/**
 * saxes reports a well-formedness error where it noticed it, and which of two it notices first
 * can depend on where a chunk ended (text outside the root is noticed at the next `<` or at the
 * end of a chunk). Such a refusal is compared by its code only.
 */
function isNoticedLate(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === 'FEED_XML_MALFORMED';
}

function describeEnding(outcome: ReadOutcome): string {
  const { error } = outcome;
  if (error === undefined) return 'no error';
  const { code } = error as { code?: string };
  if (isNoticedLate(error)) return `${code}`;
  return `${code}: ${error instanceof Error ? error.message : String(error)}`;
}

/** Differences between two reads of the same bytes (chunking must not matter). */
export function outcomeDifferences(a: ReadOutcome, b: ReadOutcome): string[] {
  const found: string[] = [];
  const describe = describeEnding;
  if (describe(a) !== describe(b)) found.push(`ended differently: ${describe(a)} / ${describe(b)}`);
  // Before a refusal a reader may have yielded more or fewer items, depending on where chunks
  // ended; those of the shorter read are then the first of the longer.
  const isRefused = a.error !== undefined || b.error !== undefined;
  const count = isRefused ? Math.min(a.items.length, b.items.length) : undefined;
  const itemsA = JSON.stringify(a.items.slice(0, count));
  const itemsB = JSON.stringify(b.items.slice(0, count));
  if (itemsA !== itemsB)
    found.push(`items differ: ${itemsA.slice(0, 500)} / ${itemsB.slice(0, 500)}`);
  return found;
}
