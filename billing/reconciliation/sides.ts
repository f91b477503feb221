/**
 * The three sides of a reconciliation as streams in customer-ref order, and their merge-join.
 * The export and the vendor's lines arrive in any order, so each is sorted by ref on disk
 * (`platform/external-sort.ts`); the subscriber map streams from the database already in ref
 * order (its primary key). Joining three ordered streams holds one ref's items at a time, so
 * memory does not grow with the file, which a Map of either side would.
 *
 * Order is JavaScript string order. The database's utf8mb4_bin order equals it for the refs the
 * intake admits (no characters outside the BMP), so the three streams agree.
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { subscriberStatusBatches } from '../../mappings/subscriber-store.js';
import type { Db } from '../../platform/db.js';
import { IspDataError } from '../../platform/errors.js';
import { ExternalSorter } from '../../platform/external-sort.js';
import { readLineBatches } from '../../platform/lines.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import type { IspSide, KnownSide, RefSides, VendorSide } from './classify.js';
import { cachedBigInt, cachedMicros, parseMicros } from './money.js';

/**
 * Sort entries are plain strings, `ref NUL field NUL field…`, compared as strings: no JSON on
 * the way to the run files and back, and a NUL after the ref sorts a ref before every longer
 * ref it prefixes, so string order is ref order. Refs never hold NUL or line breaks (the export
 * reader rejects them; the subscriber map never admits them).
 */
const SEP = '\u0000';
/** Width of the zero-padded line number, so that string order is line order. */
const LINE_DIGITS = 10;

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function identity(text: string): string {
  return text;
}

export interface SortOptions {
  scratchDir: string;
  /** Items sorted in memory before a run file is written (the sorter's default otherwise). */
  chunkSize?: number;
}

function textSorter(dir: string, options: SortOptions): ExternalSorter<string> {
  return new ExternalSorter<string>({
    dir,
    compare: byText,
    chunkSize: options.chunkSize,
    serialize: identity,
    deserialize: identity,
    linesAreItems: true,
  });
}

/**
 * The export's lines (and rejected rows whose ref was readable), sorted by ref, then line.
 * Most ISPs export in customer-number order: while the entries arrive in order they are only
 * spooled to a file and read back as they are, which saves the sort and the merge. The first
 * entry out of order moves the spool into an external sorter, and sorting takes over.
 */
export class ExportSide {
  private readonly sorter: ExternalSorter<string>;
  private readonly spoolPath: string;
  private spool: WriteStream | undefined;
  private spoolText = '';
  private last = '';
  private isInOrder = true;

  constructor(options: SortOptions) {
    const dir = join(options.scratchDir, 'export');
    this.sorter = textSorter(dir, options);
    this.spoolPath = join(dir, 'spool.txt');
    this.spool = createWriteStream(this.spoolPath);
  }

  /** Adds a line; `modules` joined with `+`. Await it: that is the backpressure. */
  pushLine(ref: string, line: number, modules: string, amountMicros: bigint): Promise<void> {
    const at = String(line).padStart(LINE_DIGITS, '0');
    return this.push(`${ref}${SEP}${at}${SEP}${amountMicros}${SEP}${modules}`);
  }

  /** A rejected row: the ref's ISP side is known to be incomplete. */
  pushRejected(ref: string, line: number): Promise<void> {
    return this.push(`${ref}${SEP}${String(line).padStart(LINE_DIGITS, '0')}${SEP}`);
  }

  private async push(entry: string): Promise<void> {
    if (!this.isInOrder) return this.sorter.push(entry);
    if (entry < this.last) {
      await this.sortFromNowOn();
      return this.sorter.push(entry);
    }
    this.last = entry;
    this.spoolText += `${entry}\n`;
    if (this.spoolText.length >= 1 << 16) await this.flushSpool();
  }

  private async flushSpool(): Promise<void> {
    const spool = this.spool as WriteStream;
    const text = this.spoolText;
    this.spoolText = '';
    if (!spool.write(text)) await once(spool, 'drain');
  }

  private async closeSpool(): Promise<void> {
    const spool = this.spool;
    if (!spool) return;
    this.spool = undefined;
    spool.end(this.spoolText);
    this.spoolText = '';
    await once(spool, 'finish');
  }

  private async sortFromNowOn(): Promise<void> {
    this.isInOrder = false;
    await this.closeSpool();
    for await (const entries of readLineBatches(this.spoolPath)) {
      for (const entry of entries) await this.sorter.push(entry);
    }
  }

  private async *entryBatches(): AsyncGenerator<string[]> {
    if (!this.isInOrder) {
      yield* this.sorter.sortedBatches();
      return;
    }
    await this.closeSpool();
    yield* readLineBatches(this.spoolPath);
  }

  /**
   * Each ref once, with its lines folded into an {@link IspSide}, in arrays (see
   * {@link joinByRef}). Call once, after the last push.
   */
  async *refs(): AsyncGenerator<Keyed<IspSide>[]> {
    let current: Keyed<IspSide> | undefined;
    for await (const entries of this.entryBatches()) {
      const done: Keyed<IspSide>[] = [];
      for (const entry of entries) {
        const [ref, , amount, modules] = entry.split(SEP) as [string, string, string, string?];
        if (current?.ref !== ref) {
          if (current) done.push(finishIsp(current));
          current = { ref, side: { modules: [], amountMicros: 0n, lines: 0, rejectedLines: 0 } };
        }
        const side = current.side;
        if (amount === '') {
          side.rejectedLines++;
          continue;
        }
        side.lines++;
        const micros = cachedBigInt(amount);
        side.amountMicros += micros;
        // A credit (negative line) lowers the amount but bills no module.
        if (micros >= 0n && modules) {
          if (modules.includes('+')) side.modules.push(...modules.split('+'));
          else side.modules.push(modules);
        }
      }
      if (done.length > 0) yield done;
    }
    if (current) yield [finishIsp(current)];
  }

  /** Whether every entry came in order, so nothing was sorted (for tests). */
  get wasInOrder(): boolean {
    return this.isInOrder;
  }

  dispose(): void {
    this.spool?.destroy();
    this.sorter.dispose();
  }
}

function finishIsp(entry: Keyed<IspSide>): Keyed<IspSide> {
  if (entry.side.modules.length > 1) entry.side.modules.sort();
  return entry;
}

/** What the vendor billed the ISP for the period, per ref, sorted by ref. */
export class VendorSideSorter {
  private readonly sorter: ExternalSorter<string>;
  private pending: { ref: string; amount: bigint; quantities: Map<string, bigint> } | undefined;
  /** Lines of another service period (adjustments of earlier periods), not compared. */
  otherPeriodLines = 0;
  lines = 0;

  constructor(
    options: SortOptions,
    private readonly period: string,
  ) {
    this.sorter = textSorter(join(options.scratchDir, 'vendor'), options);
  }

  /**
   * Adds every line of `lines`. Lines of one subscriber usually come together, so consecutive
   * lines of one ref are folded before sorting: fewer items to sort, same result.
   */
  async pushAll(lines: AsyncIterable<IspInvoiceLine>): Promise<void> {
    for await (const line of lines) {
      if (line.servicePeriod !== this.period) {
        this.otherPeriodLines++;
        continue;
      }
      this.lines++;
      const amount = vendorDecimal(line.amount, 'amount', line.lineId);
      const quantity = vendorDecimal(line.quantity, 'quantity', line.lineId);
      let pending = this.pending;
      if (pending?.ref !== line.customerRef) {
        await this.flush();
        if (UNSORTABLE.test(line.customerRef)) {
          throw new IspDataError(
            'BILLING_LINE_INVALID',
            `rated line ${line.lineId}: the customer ref holds a control character`,
            { lineId: line.lineId, field: 'customerRef' },
          );
        }
        pending = { ref: line.customerRef, amount: 0n, quantities: new Map() };
        this.pending = pending;
      }
      pending.amount += amount;
      pending.quantities.set(line.module, (pending.quantities.get(line.module) ?? 0n) + quantity);
    }
    await this.flush();
  }

  private async flush(): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    let entry = `${pending.ref}${SEP}${pending.amount}`;
    for (const [module, quantity] of pending.quantities)
      entry += `${SEP}${module}${SEP}${quantity}`;
    await this.sorter.push(entry);
  }

  /** Each ref once: modules with a positive net quantity, and the net amount; in arrays. */
  async *refs(): AsyncGenerator<Keyed<VendorSide>[]> {
    let current: { ref: string; amount: bigint; quantities: Map<string, bigint> } | undefined;
    const finish = (c: NonNullable<typeof current>): Keyed<VendorSide> => {
      const modules: string[] = [];
      for (const [module, quantity] of c.quantities) if (quantity > 0n) modules.push(module);
      if (modules.length > 1) modules.sort();
      return { ref: c.ref, side: { modules, amountMicros: c.amount } };
    };
    for await (const entries of this.sorter.sortedBatches()) {
      const done: Keyed<VendorSide>[] = [];
      for (const entry of entries) {
        const parts = entry.split(SEP);
        const ref = parts[0] as string;
        if (current?.ref !== ref) {
          if (current) done.push(finish(current));
          current = { ref, amount: 0n, quantities: new Map() };
        }
        current.amount += cachedBigInt(parts[1] as string);
        for (let i = 2; i < parts.length; i += 2) {
          const module = parts[i] as string;
          const quantity = cachedBigInt(parts[i + 1] as string);
          current.quantities.set(module, (current.quantities.get(module) ?? 0n) + quantity);
        }
      }
      if (done.length > 0) yield done;
    }
    if (current) yield [finish(current)];
  }

  dispose(): void {
    this.sorter.dispose();
  }
}

/** Characters a ref may not hold: they would break the sort entries (see {@link SEP}). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
export const UNSORTABLE = /[\u0000\n\r]/;

/** A rated line's decimal in micro-units; digits beyond the sixth decimal are dropped. */
function vendorDecimal(text: string, field: string, lineId: string): bigint {
  let micros = cachedMicros(text);
  if (micros === undefined) {
    const cut = /^(-?\d+)(\.\d{0,6})\d*$/.exec(text);
    if (cut) micros = parseMicros(`${cut[1]}${cut[2] === '.' ? '' : cut[2]}`);
  }
  if (micros === undefined) {
    throw new IspDataError(
      'BILLING_LINE_INVALID',
      `rated line ${lineId}: ${field} is not a decimal`,
      {
        lineId,
        field,
      },
    );
  }
  return micros;
}

/** The subscriber map of an ISP in ref order, in arrays as the database pages give them. */
export async function* knownRefs(db: Db, ispId: string): AsyncGenerator<Keyed<KnownSide>[]> {
  for await (const batch of subscriberStatusBatches(db, ispId)) {
    yield batch.map((s) => ({
      ref: s.customerRef,
      side: { status: s.status, modules: s.modules.length > 1 ? s.modules.sort() : s.modules },
    }));
  }
}

export interface Keyed<S> {
  ref: string;
  side: S;
}

/** Refs joined before a batch is handed on. */
const JOINED_BATCH = 1024;

/** One side of the join: its current array and position, refilled only when used up. */
class SideCursor<S> {
  private batch: Keyed<S>[] = [];
  private at = 0;
  done = false;

  constructor(private readonly source: AsyncIterator<Keyed<S>[]>) {}

  /** Whether the head must be loaded (an await) before {@link head} can answer. */
  get isEmpty(): boolean {
    return !this.done && this.at >= this.batch.length;
  }

  async fill(): Promise<void> {
    while (this.at >= this.batch.length) {
      const next = await this.source.next();
      if (next.done) {
        this.done = true;
        return;
      }
      this.batch = next.value;
      this.at = 0;
    }
  }

  /** The current item; undefined once the side is done. Call after {@link fill} if empty. */
  head(): Keyed<S> | undefined {
    return this.done ? undefined : this.batch[this.at];
  }

  advance(): void {
    this.at++;
  }

  async close(): Promise<void> {
    await this.source.return?.();
  }
}

/**
 * Merge-joins three streams that are each in ref order with each ref once, yielding every ref
 * present in any of them with the sides it has. Streams come and go in arrays, so that a
 * million refs cost an await per array, not three per ref.
 */
export async function* joinByRef(
  isp: AsyncIterable<Keyed<IspSide>[]>,
  known: AsyncIterable<Keyed<KnownSide>[]>,
  vendor: AsyncIterable<Keyed<VendorSide>[]>,
): AsyncGenerator<RefSides[]> {
  const a = new SideCursor(isp[Symbol.asyncIterator]());
  const b = new SideCursor(known[Symbol.asyncIterator]());
  const c = new SideCursor(vendor[Symbol.asyncIterator]());
  try {
    let out: RefSides[] = [];
    for (;;) {
      if (a.isEmpty) await a.fill();
      if (b.isEmpty) await b.fill();
      if (c.isEmpty) await c.fill();
      const ha = a.head();
      const hb = b.head();
      const hc = c.head();
      let ref = ha?.ref;
      if (hb !== undefined && (ref === undefined || hb.ref < ref)) ref = hb.ref;
      if (hc !== undefined && (ref === undefined || hc.ref < ref)) ref = hc.ref;
      if (ref === undefined) break;
      const sides: RefSides = { ref };
      if (ha?.ref === ref) {
        sides.isp = ha.side;
        a.advance();
      }
      if (hb?.ref === ref) {
        sides.known = hb.side;
        b.advance();
      }
      if (hc?.ref === ref) {
        sides.vendor = hc.side;
        c.advance();
      }
      out.push(sides);
      if (out.length >= JOINED_BATCH) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
}
