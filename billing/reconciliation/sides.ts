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
import { subscriberBatches } from '../../mappings/subscriber-store.js';
import type { Db } from '../../platform/db.js';
import { IspDataError } from '../../platform/errors.js';
import { ExternalSorter } from '../../platform/external-sort.js';
import { readLines } from '../../platform/lines.js';
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
    for await (const entry of readLines(this.spoolPath)) await this.sorter.push(entry);
  }

  private async *entries(): AsyncGenerator<string> {
    if (!this.isInOrder) {
      yield* this.sorter.sorted();
      return;
    }
    await this.closeSpool();
    yield* readLines(this.spoolPath);
  }

  /** Each ref once, with its lines folded into an {@link IspSide}. Call once, after the last push. */
  async *refs(): AsyncGenerator<{ ref: string; side: IspSide }> {
    let current: { ref: string; side: IspSide } | undefined;
    for await (const entry of this.entries()) {
      const [ref, , amount, modules] = entry.split(SEP) as [string, string, string, string?];
      if (current?.ref !== ref) {
        if (current) yield finishIsp(current);
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
    if (current) yield finishIsp(current);
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

function finishIsp(entry: { ref: string; side: IspSide }) {
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

  /** Each ref once: modules with a positive net quantity, and the net amount. */
  async *refs(): AsyncGenerator<{ ref: string; side: VendorSide }> {
    let current: { ref: string; amount: bigint; quantities: Map<string, bigint> } | undefined;
    const finish = (c: NonNullable<typeof current>) => {
      const modules: string[] = [];
      for (const [module, quantity] of c.quantities) if (quantity > 0n) modules.push(module);
      if (modules.length > 1) modules.sort();
      return { ref: c.ref, side: { modules, amountMicros: c.amount } };
    };
    for await (const entry of this.sorter.sorted()) {
      const parts = entry.split(SEP);
      const ref = parts[0] as string;
      if (current?.ref !== ref) {
        if (current) yield finish(current);
        current = { ref, amount: 0n, quantities: new Map() };
      }
      current.amount += cachedBigInt(parts[1] as string);
      for (let i = 2; i < parts.length; i += 2) {
        const module = parts[i] as string;
        const quantity = cachedBigInt(parts[i + 1] as string);
        current.quantities.set(module, (current.quantities.get(module) ?? 0n) + quantity);
      }
    }
    if (current) yield finish(current);
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

/** The subscriber map of an ISP, one ref at a time, in ref order. */
export async function* knownRefs(
  db: Db,
  ispId: string,
): AsyncGenerator<{ ref: string; side: KnownSide }> {
  for await (const batch of subscriberBatches(db, ispId)) {
    for (const s of batch) {
      yield { ref: s.customerRef, side: { status: s.status, modules: [...s.modules].sort() } };
    }
  }
}

interface Keyed<S> {
  ref: string;
  side: S;
}

/**
 * Merge-joins three streams that are each in ref order with each ref once, yielding every ref
 * present in any of them with the sides it has.
 */
export async function* joinByRef(
  isp: AsyncIterable<Keyed<IspSide>>,
  known: AsyncIterable<Keyed<KnownSide>>,
  vendor: AsyncIterable<Keyed<VendorSide>>,
): AsyncGenerator<RefSides> {
  const a = isp[Symbol.asyncIterator]();
  const b = known[Symbol.asyncIterator]();
  const c = vendor[Symbol.asyncIterator]();
  let ha = await a.next();
  let hb = await b.next();
  let hc = await c.next();
  try {
    while (!ha.done || !hb.done || !hc.done) {
      let ref: string | undefined;
      for (const head of [ha, hb, hc]) {
        if (!head.done && (ref === undefined || head.value.ref < ref)) ref = head.value.ref;
      }
      const sides: RefSides = { ref: ref as string };
      if (!ha.done && ha.value.ref === ref) {
        sides.isp = ha.value.side;
        ha = await a.next();
      }
      if (!hb.done && hb.value.ref === ref) {
        sides.known = hb.value.side;
        hb = await b.next();
      }
      if (!hc.done && hc.value.ref === ref) {
        sides.vendor = hc.value.side;
        hc = await c.next();
      }
      yield sides;
    }
  } finally {
    await Promise.all([a.return?.(), b.return?.(), c.return?.()]);
  }
}
