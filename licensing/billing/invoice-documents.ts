/**
 * Turns a period's frozen rated lines into the vendor's documents for one ISP: one invoice
 * (charges and positive adjustments) and, when some adjustments are negative, one credit note.
 * Pure: no database, no files. The lines arrive as a stream and only one running total per
 * document line is kept, so a million rated lines cost a few dozen map entries.
 *
 * Why the document lines are exact: rated lines are grouped by (kind, service period, module,
 * unit price, per-line amount, days). Every rated line of a group has the same rounded amount,
 * so the document line's unit price is that amount and its quantity the number of rated lines:
 * quantity × unit price equals the sum of the rated amounts to the cent, with no rounding slack
 * (EN 16931 R120 allows 0.02; we need none). VAT is then computed once per category on the sum
 * of line amounts, rounded half-up to cents (BT-117), as EN 16931 expects.
 */
import { Decimal } from 'decimal.js';
import type { PaymentMeans } from '../../config/vendor-billing-schema.js';
import { InternalError } from '../../platform/errors.js';
import type { InvoiceDocument, InvoiceDocumentLine, VatTerms } from './invoice-model.js';
import type { RatedLine } from './rated-line.js';

/** Decimal.js configured for money: plenty of digits, half-up when we round on purpose. */
export const Money = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP });
type Money = InstanceType<typeof Money>;

/** What one document line is made of: every rated line with the same key lands in it. */
export interface GroupKey {
  kind: RatedLine['kind'];
  servicePeriod: string;
  module: string;
  /** The rated line's unit price (price of a whole licence-month). */
  unitPrice: string;
  /** The absolute rounded amount of one rated line: the document line's unit price. */
  lineAmount: string;
  days: number;
  daysInPeriod: number;
}

export interface LineGroup extends GroupKey {
  /** Which document: charges and non-negative adjustments invoice, negative ones credit. */
  document: 'invoice' | 'credit-note';
  /** How many rated lines fell into the group. */
  count: number;
  /** Sum of the absolute amounts, kept only to check the exactness promise. */
  total: Money;
}

export interface AggregatedPeriod {
  ispId: string;
  period: string;
  currency: string;
  /** Rated lines read. */
  ratedLines: number;
  /** Document lines of the invoice, in document order; empty when nothing is billable. */
  invoice: LineGroup[];
  /** Document lines of the credit note, in document order; empty when no negative adjustment. */
  creditNote: LineGroup[];
}

/** The payment part of a document: not in the invoice model, frozen with it all the same. */
export interface PaymentDetails {
  /** YYYY-MM-DD (BT-9); absent on a credit note. */
  dueDate?: string;
  /** BT-20. */
  terms: string;
  means?: PaymentMeans;
}

/** A document as stored and rendered: the model plus its payment details. */
export interface VendorDocument {
  model: InvoiceDocument;
  payment: PaymentDetails;
}

/** The map key of a group of rated lines on one document. */
export function groupKeyString(document: LineGroup['document'], g: GroupKey): string {
  return [
    document,
    g.kind,
    g.servicePeriod,
    g.module,
    g.unitPrice,
    g.lineAmount,
    g.days,
    g.daysInPeriod,
  ].join('|');
}

/** Which group (and so which document line) a rated line belongs to. */
export function groupKeyOf(line: RatedLine): { key: string; group: GroupKey; negative: boolean } {
  const amount = new Money(line.amount);
  const group: GroupKey = {
    kind: line.kind,
    servicePeriod: line.servicePeriod,
    module: line.module,
    unitPrice: line.unitPrice,
    lineAmount: amount.abs().toFixed(2),
    days: line.days,
    daysInPeriod: line.daysInPeriod,
  };
  const negative = amount.isNegative() && !amount.isZero();
  const key = groupKeyString(negative ? 'credit-note' : 'invoice', group);
  return { key, group, negative };
}

/**
 * Reads every rated line of one ISP and period and groups them. Lines of another ISP, period or
 * currency are a bug upstream (the reader of frozen lines filters by ISP and period), so they
 * stop the run instead of landing on the wrong invoice.
 */
export async function aggregateRatedLines(
  lines: AsyncIterable<RatedLine>,
  expect: { ispId: string; period: string; currency: string },
): Promise<AggregatedPeriod> {
  const groups = new Map<string, LineGroup>();
  let ratedLines = 0;
  for await (const line of lines) {
    ratedLines++;
    if (line.ispId !== expect.ispId || line.period !== expect.period) {
      throw new InternalError(
        'INTERNAL',
        `rated line ${line.lineId} belongs to ${line.ispId} ${line.period}, not ${expect.ispId} ${expect.period}`,
        { lineId: line.lineId },
      );
    }
    if (line.currency !== expect.currency) {
      throw new InternalError(
        'INTERNAL',
        `rated line ${line.lineId} is in ${line.currency}, the invoice of ${expect.ispId} in ${expect.currency}`,
        { lineId: line.lineId },
      );
    }
    const { key, group, negative } = groupKeyOf(line);
    const found = groups.get(key);
    if (found) {
      found.count++;
      found.total = found.total.plus(group.lineAmount);
    } else {
      groups.set(key, {
        ...group,
        document: negative ? 'credit-note' : 'invoice',
        count: 1,
        total: new Money(group.lineAmount),
      });
    }
  }

  const sorted = [...groups.values()].sort(compareGroups);
  for (const g of sorted) {
    // The promise the whole design rests on; cheap to check, fatal if ever broken.
    if (!g.total.equals(new Money(g.lineAmount).times(g.count))) {
      throw new InternalError('INTERNAL', 'a document line does not equal quantity × price', {
        group: g,
      });
    }
  }
  return {
    ...expect,
    ratedLines,
    invoice: sorted.filter((g) => g.document === 'invoice'),
    creditNote: sorted.filter((g) => g.document === 'credit-note'),
  };
}

const KIND_RANK: Record<RatedLine['kind'], number> = { charge: 0, adjustment: 1 };

/** Charges first, then adjustments; by service period, module, more days first, price. */
function compareGroups(a: LineGroup, b: LineGroup): number {
  return (
    KIND_RANK[a.kind] - KIND_RANK[b.kind] ||
    cmp(a.servicePeriod, b.servicePeriod) ||
    cmp(a.module, b.module) ||
    b.days - a.days ||
    new Money(b.unitPrice).comparedTo(a.unitPrice) ||
    new Money(b.lineAmount).comparedTo(a.lineAmount)
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** First and last day of a YYYY-MM period. */
export function periodDays(period: string): { start: string; end: string } {
  const year = Number(period.slice(0, 4));
  const month = Number(period.slice(5, 7));
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return { start: `${period}-01`, end: `${period}-${String(last).padStart(2, '0')}` };
}

/** "antivirus, 2026-11, 12/30 days" or "antivirus, adjustment for 2026-10". */
export function lineName(g: GroupKey): string {
  const what = g.kind === 'adjustment' ? `adjustment for ${g.servicePeriod}` : g.servicePeriod;
  const days = g.days < g.daysInPeriod ? `, ${g.days}/${g.daysInPeriod} days` : '';
  return `${g.module}, ${what}${days}`;
}

/** The document lines of a list of groups, numbered 1, 2, 3 in their order. */
export function documentLines(groups: LineGroup[], vat: VatTerms): InvoiceDocumentLine[] {
  return groups.map((g, i) => ({
    id: String(i + 1),
    module: g.module,
    name: lineName(g),
    quantity: String(g.count),
    unitCode: 'C62',
    unitPrice: g.lineAmount,
    amount: g.total.toFixed(2),
    servicePeriod: periodDays(g.servicePeriod),
    vat: { category: vat.category, rate: vatRate(vat) },
  }));
}

/** The rate as written on the document: zero for every category that is not taxed. */
function vatRate(vat: VatTerms): string {
  return TAXED_CATEGORIES.has(vat.category) ? new Money(vat.rate).toString() : '0';
}

/** UNCL5305 categories that carry a positive rate; the others are 0 % by EN 16931. */
export const TAXED_CATEGORIES = new Set(['S', 'L', 'M']);

/**
 * The invoice period (BG-14) of a document: the period closed, widened to the earliest service
 * month of its lines so every line period lies within it (PEPPOL R110/R111). A credit note made
 * only of last month's adjustments covers just its lines.
 */
export function invoicePeriodOf(
  period: string,
  lines: InvoiceDocumentLine[],
  type: InvoiceDocument['type'],
): { start: string; end: string } {
  const own = periodDays(period);
  const starts = lines.map((l) => l.servicePeriod.start);
  const ends = lines.map((l) => l.servicePeriod.end);
  if (type === 'credit-note' && lines.length > 0) {
    return { start: starts.sort()[0] as string, end: ends.sort().at(-1) as string };
  }
  return { start: [own.start, ...starts].sort()[0] as string, end: own.end };
}

export interface VatBreakdown {
  category: string;
  rate: string;
  /** BT-116: sum of the line amounts in this category. */
  taxable: string;
  /** BT-117: taxable × rate, rounded half-up to cents once, here. */
  tax: string;
}

export interface DocumentTotals {
  /** BT-106: sum of line net amounts. */
  lineTotal: string;
  /** BT-109: total without VAT (no document-level allowances or charges). */
  taxExclusive: string;
  /** BT-110: total VAT. */
  tax: string;
  /** BT-112: total with VAT. */
  taxInclusive: string;
  /** BT-115: amount due. */
  payable: string;
  vat: VatBreakdown[];
}

/** Every total of a document, from its lines, in exact decimals (the renderers only print). */
export function documentTotals(doc: InvoiceDocument): DocumentTotals {
  const byCategory = new Map<string, { category: string; rate: string; taxable: Money }>();
  let lineTotal = new Money(0);
  for (const line of doc.lines) {
    lineTotal = lineTotal.plus(line.amount);
    const key = `${line.vat.category}|${new Money(line.vat.rate).toString()}`;
    const entry = byCategory.get(key) ?? {
      category: line.vat.category,
      rate: new Money(line.vat.rate).toString(),
      taxable: new Money(0),
    };
    entry.taxable = entry.taxable.plus(line.amount);
    byCategory.set(key, entry);
  }
  const vat = [...byCategory.values()]
    .sort((a, b) => cmp(a.category, b.category) || new Money(a.rate).comparedTo(b.rate))
    .map((e) => ({
      category: e.category,
      rate: e.rate,
      taxable: e.taxable.toFixed(2),
      tax: e.taxable
        .times(e.rate)
        .dividedBy(100)
        .toDecimalPlaces(2, Decimal.ROUND_HALF_UP)
        .toFixed(2),
    }));
  const tax = vat.reduce((sum, v) => sum.plus(v.tax), new Money(0));
  const inclusive = lineTotal.plus(tax);
  return {
    lineTotal: lineTotal.toFixed(2),
    taxExclusive: lineTotal.toFixed(2),
    tax: tax.toFixed(2),
    taxInclusive: inclusive.toFixed(2),
    payable: inclusive.toFixed(2),
    vat,
  };
}

/** `issueDate` plus `days` calendar days, YYYY-MM-DD. */
export function addDays(day: string, days: number): string {
  const t = Date.parse(`${day}T00:00:00Z`) + days * 86_400_000;
  return new Date(t).toISOString().slice(0, 10);
}
