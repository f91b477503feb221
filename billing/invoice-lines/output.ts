/**
 * What every invoice-line writer shares: the byte sink (encode, hash, count, respect the
 * stream's backpressure) and the line loop (checks that the lines belong to this file and come
 * in strictly increasing lineId order, counts them and sums their amounts exactly).
 *
 * The strict order is what makes a doubled line impossible without holding every id in memory:
 * the subscription server streams rated lines in lineId order, so a repeat or a line out of
 * place means the stream is wrong, and the file is refused rather than written with a doubled
 * charge.
 */
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Decimal } from 'decimal.js';
import iconv from 'iconv-lite';
import { ConfigError, InternalError } from '../../platform/errors.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { type FileTotals, type InvoiceLinesContext, ValueError } from './values.js';

export type TextEncoding = 'utf-8' | 'iso-8859-1' | 'windows-1252';

/** What a writer reports once the last byte is flushed. */
export interface WriteResult {
  lines: number;
  charges: number;
  adjustments: number;
  /** Exact sum of the line amounts, e.g. "1234.56" or "-0.48". */
  totalAmount: string;
  bytes: number;
  /** Hex sha256 of the bytes written. */
  sha256: string;
}

/** Characters windows-1252 lacks: the C1 controls, and past Latin-1 all but its 27 extras. */
const NOT_WINDOWS_1252 =
  /[\u0080-\u009f]|(?![\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178])[\u0100-\u{10ffff}]/u;
const NOT_LATIN_1 = /[\u0100-\u{10ffff}]/u;
// The same tests without the u flag (surrogates count as past Latin-1): several times faster.
const PAST_LATIN_1 = /[\u0100-\uffff]/;
/** A UTF-16 surrogate without its other half: utf-8 would write U+FFFD in its place. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Per encoding: a cheap test run on each 64 KiB chunk, and the exact one run only when the
 * cheap one finds a candidate (French text in windows-1252 never reaches the second).
 */
const UNWRITABLE: Record<TextEncoding, { maybe: RegExp; exact: RegExp }> = {
  'utf-8': { maybe: /[\ud800-\udfff]/, exact: LONE_SURROGATE },
  'iso-8859-1': { maybe: PAST_LATIN_1, exact: NOT_LATIN_1 },
  'windows-1252': { maybe: /[\u0080-\u009f\u0100-\uffff]/, exact: NOT_WINDOWS_1252 },
};

/** Flush to the stream past this many characters: big writes, bounded memory. */
const FLUSH_CHARS = 1 << 16;

/**
 * Collects text, encodes it in chunks of about 64 KiB, hashes and counts the bytes, and waits
 * for `drain` when the stream asks: memory holds one chunk whatever the line count.
 */
export class ByteSink {
  private parts: string[] = [];
  /** The line each part belongs to, to name it when a character cannot be written. */
  private owners: (string | undefined)[] = [];
  private chars = 0;
  private bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private readonly unwritable: { maybe: RegExp; exact: RegExp };

  constructor(
    private readonly out: Writable,
    private readonly encoding: TextEncoding,
  ) {
    this.unwritable = UNWRITABLE[encoding];
  }

  /**
   * Adds the text of a line (or of the head or tail when `lineId` is undefined); returns a
   * promise only when the stream must drain (await it then).
   * @throws UnwritableTextError when the text holds a character the encoding cannot write:
   * iconv would silently write "?" instead.
   */
  push(text: string, lineId?: string): Promise<void> | undefined {
    this.parts.push(text);
    this.owners.push(lineId);
    this.chars += text.length;
    return this.chars >= FLUSH_CHARS ? this.flush() : undefined;
  }

  /** Writes the byte-order mark; counted and hashed like any byte. */
  pushBytes(bytes: Buffer): void {
    this.emit(bytes);
  }

  async finish(): Promise<{ bytes: number; sha256: string }> {
    await this.flush();
    this.out.end();
    await finished(this.out);
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }

  private check(text: string): void {
    const { maybe, exact } = this.unwritable;
    if (!maybe.test(text) || !exact.test(text)) return;
    const index = this.parts.findIndex((part) => exact.test(part));
    const part = this.parts[index] as string;
    const bad = exact.exec(part)?.[0] as string;
    const code = (bad.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0');
    const message = `character U+${code} cannot be written in ${this.encoding}`;
    throw new UnwritableTextError(message, this.owners[index]);
  }

  private emit(buf: Buffer): boolean {
    this.hash.update(buf);
    this.bytes += buf.length;
    return this.out.write(buf);
  }

  private async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const text = this.parts.join('');
    this.check(text);
    this.parts = [];
    this.owners = [];
    this.chars = 0;
    const buf =
      this.encoding === 'utf-8'
        ? Buffer.from(text, 'utf8')
        : this.encoding === 'iso-8859-1'
          ? Buffer.from(text, 'latin1')
          : // Past the check, text within Latin-1 is windows-1252 byte for byte (the C1 range
            // that differs was refused); only text with € and the like needs the codec.
            PAST_LATIN_1.test(text)
            ? iconv.encode(text, 'windows-1252')
            : Buffer.from(text, 'latin1');
    if (!this.emit(buf)) await once(this.out, 'drain');
  }
}

/** A character the encoding lacks, found when a chunk is flushed: names the line it is in. */
export class UnwritableTextError extends ValueError {
  constructor(
    message: string,
    readonly lineId: string | undefined,
  ) {
    super(message);
  }
}

const CENTS = /^-?\d{1,13}\.\d\d$/;
const CENTS_LIMIT = 2 ** 52;

/** Counts and the exact total of the lines written so far. */
export class LineTally {
  lines = 0;
  charges = 0;
  adjustments = 0;
  private sum = new Decimal(0);
  private cents = 0;
  private scale = 2;
  private lastId: string | undefined;

  constructor(private readonly ctx: InvoiceLinesContext) {}

  /** Checks a line belongs here and comes after the previous one, then counts it. */
  add(line: IspInvoiceLine): void {
    const { ctx } = this;
    if (line.period !== ctx.period || line.ispId !== ctx.ispId || line.currency !== ctx.currency) {
      throw new InternalError(
        'INTERNAL',
        `invoice line ${line.lineId} is for ${line.ispId} ${line.period} in ${line.currency}, not ${ctx.ispId} ${ctx.period} in ${ctx.currency}`,
        { lineId: line.lineId },
      );
    }
    if (this.lastId !== undefined && !(line.lineId > this.lastId)) {
      throw new InternalError(
        'INTERNAL',
        `invoice lines must come in strictly increasing lineId order: ${line.lineId} after ${this.lastId}`,
        { lineId: line.lineId, previous: this.lastId },
      );
    }
    this.lastId = line.lineId;
    this.lines++;
    if (line.kind === 'charge') this.charges++;
    else this.adjustments++;
    const { amount } = line;
    // Amounts come with two decimals: summed as integer cents, exact while under 2^53 cents.
    // Anything else (more decimals, a huge value) goes through decimal.js.
    if (CENTS.test(amount) && Math.abs(this.cents) < CENTS_LIMIT) {
      this.cents += Number(amount.replace('.', ''));
      return;
    }
    const dot = amount.indexOf('.');
    if (dot !== -1 && amount.length - dot - 1 > this.scale) this.scale = amount.length - dot - 1;
    this.sum = this.sum.plus(amount);
  }

  get totals(): FileTotals {
    const total = this.sum.plus(new Decimal(this.cents).div(100));
    return { count: this.lines, total: total.toFixed(this.scale) };
  }

  result(written: { bytes: number; sha256: string }): WriteResult {
    const { lines, charges, adjustments } = this;
    return { lines, charges, adjustments, totalAmount: this.totals.total, ...written };
  }
}

/** A value error of one line, as the error an operator reads. */
export function unwritableLine(err: unknown, lineId: string | undefined): unknown {
  if (!(err instanceof ValueError)) return err;
  const where = lineId === undefined ? 'invoice lines file' : `invoice line ${lineId}`;
  return new ConfigError('BILLING_LINE_UNWRITABLE', `${where}: ${err.message}`, { lineId });
}

/**
 * The loop every file writer runs: `head` before the first line, `body` per line, `tail` with
 * the totals. On any error the stream is destroyed with it, so a half-written file is never
 * taken for a whole one; the caller discards it.
 */
export async function writeLines(
  lines: AsyncIterable<IspInvoiceLine>,
  out: Writable,
  ctx: InvoiceLinesContext,
  encoding: TextEncoding,
  steps: {
    head?: (sink: ByteSink) => void;
    body: (line: IspInvoiceLine) => string;
    tail?: (totals: FileTotals) => string;
  },
): Promise<WriteResult> {
  const sink = new ByteSink(out, encoding);
  const tally = new LineTally(ctx);
  let current: string | undefined;
  try {
    steps.head?.(sink);
    for await (const line of lines) {
      current = line.lineId;
      tally.add(line);
      const pending = sink.push(steps.body(line), line.lineId);
      if (pending) await pending;
    }
    current = undefined;
    if (steps.tail) sink.push(steps.tail(tally.totals));
    return tally.result(await sink.finish());
  } catch (err) {
    const error = unwritableLine(err, err instanceof UnwritableTextError ? err.lineId : current);
    // Without the error: a stream nobody listens to for errors would crash the process; the
    // caller learns of it from the rejected promise.
    out.destroy();
    throw error;
  }
}
