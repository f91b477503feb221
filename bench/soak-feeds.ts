/**
 * The three ISPs' side of the soak bench (bench/soak.ts): each one's customer list, changing
 * from one export to the next, rendered the way that ISP sends it. Demo FAI pushes its whole
 * list as CSV, Bretagne Net pushes the day's operations as fixed-width lines, Alpha Télécom
 * drops its whole list as XML in its inbox. Every export changes something (offers, a few
 * suspensions, resumptions and departures, a few new customers), so each one provisions.
 *
 * Customer i with i % CHURN_EVERY === 0 is a "churner": only churners are ever suspended or
 * leave. Every other customer stays active, so the load generator can activate and check in
 * with their keys and always expect a success. Seeded, like the generators it builds on.
 */
import {
  type Customer,
  encode,
  type FixedOperation,
  makeCustomer,
  refOf,
  renderCsv,
  renderFixedWidth,
  renderXml,
  seededRandom,
} from '../test/generators/isp-exports.js';

export const CHURN_EVERY = 10;
const OFFERS = ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_INTEGRAL'] as const;

type Day = Customer['since'];

/** The customer number of a generated ref (refOf's inverse). */
export function indexOfRef(ref: string): number {
  return Number(ref) - Number(refOf(0));
}

/** Whether the customer behind `ref` may be suspended or leave (never activated by the bench). */
export function isChurner(ref: string): boolean {
  return indexOfRef(ref) % CHURN_EVERY === 0;
}

/** Today in Paris, where the three ISPs are. */
export function parisToday(now = new Date()): Day {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: 'Europe/Paris',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).formatToParts(now);
  const part = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return { y: part('year'), m: part('month'), d: part('day') };
}

/** What one export changes, for the report. */
export interface ExportChanges {
  joined: number;
  changed: number;
  suspended: number;
  resumed: number;
  left: number;
}

/** One ISP's customers: joins, offer changes, churn; indexes never reused. */
class CustomerList {
  private readonly present: number[] = [];
  private readonly churners: number[] = [];
  private readonly byIndex = new Map<number, Customer>();
  private last = 0;

  constructor(
    private readonly random: () => number,
    private readonly today: Day,
  ) {}

  get size(): number {
    return this.present.length;
  }

  /** Customers in index order, as an export lists them. */
  all(): Customer[] {
    return [...this.byIndex.values()];
  }

  join(count: number): Customer[] {
    const joined: Customer[] = [];
    for (let n = 0; n < count; n++) {
      const i = ++this.last;
      const made = makeCustomer(i, this.random);
      // Active, and dated last year: only churners change status, and no date is in the future.
      const since = { y: this.today.y - 1, m: made.since.m, d: made.since.d };
      const customer: Customer = { ...made, status: 'active', since };
      this.byIndex.set(i, customer);
      this.present.push(i);
      if (i % CHURN_EVERY === 0) this.churners.push(i);
      joined.push(customer);
    }
    return joined;
  }

  /** `count` customers (churners or not) move to the next offer, dated today. */
  changeOffers(count: number): Customer[] {
    return this.pick(this.present, count).map((i) =>
      this.update(i, (c) => ({
        ...c,
        offer: OFFERS[(OFFERS.indexOf(c.offer) + 1) % OFFERS.length] as Customer['offer'],
      })),
    );
  }

  /** `count` churners switch between active and suspended, dated today. */
  toggleChurners(count: number): Customer[] {
    return this.pick(this.churners, count).map((i) =>
      this.update(i, (c) => ({ ...c, status: c.status === 'active' ? 'suspended' : 'active' })),
    );
  }

  /** `count` churners leave: gone from the next snapshot, or cancelled in the next delta. */
  leave(count: number): Customer[] {
    const gone = this.pick(this.churners, count);
    const left: Customer[] = [];
    for (const i of gone) {
      left.push(this.byIndex.get(i) as Customer);
      this.byIndex.delete(i);
      this.present.splice(this.present.indexOf(i), 1);
      this.churners.splice(this.churners.indexOf(i), 1);
    }
    return left;
  }

  private update(i: number, change: (c: Customer) => Customer): Customer {
    const updated = { ...change(this.byIndex.get(i) as Customer), since: this.today };
    this.byIndex.set(i, updated);
    return updated;
  }

  /** Distinct random members of `from`. */
  private pick(from: number[], count: number): number[] {
    const chosen = new Set<number>();
    const want = Math.min(count, from.length);
    while (chosen.size < want) chosen.add(from[Math.floor(this.random() * from.length)] as number);
    return [...chosen];
  }
}

/** A snapshot ISP (whole list each time): Demo FAI's CSV or Alpha Télécom's XML. */
export class SnapshotFeeds {
  private readonly list: CustomerList;
  private exports = 0;

  constructor(
    readonly ispId: string,
    private readonly render: 'csv' | 'xml',
    private readonly initial: number,
    seed: number,
    today = parisToday(),
  ) {
    this.list = new CustomerList(seededRandom(seed), today);
  }

  /** The next export: the initial list the first time, then the list with some changes. */
  next(): { body: Buffer; changes: ExportChanges } {
    const size = this.list.size;
    const changes: ExportChanges =
      this.exports++ === 0
        ? {
            joined: this.list.join(this.initial).length,
            changed: 0,
            suspended: 0,
            resumed: 0,
            left: 0,
          }
        : {
            changed: this.list.changeOffers(Math.ceil(size * 0.01)).length,
            ...this.churn(Math.ceil(size * 0.003)),
            left: this.list.leave(Math.ceil(size * 0.001)).length,
            joined: this.list.join(Math.ceil(size * 0.002)).length,
          };
    const customers = this.list.all();
    const body =
      this.render === 'csv'
        ? encode(renderCsv(customers), 'windows-1252')
        : encode(renderXml(customers), 'utf-8');
    return { body, changes };
  }

  private churn(count: number): Pick<ExportChanges, 'suspended' | 'resumed'> {
    const toggled = this.list.toggleChurners(count);
    const suspended = toggled.filter((c) => c.status === 'suspended').length;
    return { suspended, resumed: toggled.length - suspended };
  }
}

/** Bretagne Net: each export is the operations since the last one, fixed-width. */
export class DeltaFeeds {
  readonly ispId = 'bretagne-net';
  private readonly list: CustomerList;
  private exports = 0;

  constructor(
    private readonly initial: number,
    seed: number,
    private readonly today = parisToday(),
  ) {
    this.list = new CustomerList(seededRandom(seed), today);
  }

  next(): { body: Buffer; changes: ExportChanges } {
    const first = this.exports++ === 0;
    const lines: { customer: Customer; op: FixedOperation; date?: Day }[] = [];
    const joined = this.list.join(first ? this.initial : 4);
    for (const customer of joined) lines.push({ customer, op: 'SUB' });
    const changes: ExportChanges = {
      joined: joined.length,
      changed: 0,
      suspended: 0,
      resumed: 0,
      left: 0,
    };
    if (!first) {
      for (const customer of this.list.changeOffers(6)) lines.push({ customer, op: 'CHG' });
      for (const customer of this.list.toggleChurners(2)) {
        const suspend = customer.status === 'suspended';
        lines.push({ customer, op: suspend ? 'SUS' : 'REP' });
        if (suspend) changes.suspended++;
        else changes.resumed++;
      }
      if (this.exports % 2 === 0) {
        const left = this.list.leave(1);
        for (const customer of left) lines.push({ customer, op: 'RES' });
        changes.left = left.length;
      }
      changes.changed = 6;
    }
    const date = this.today;
    const stamp = `${date.y}${String(date.m).padStart(2, '0')}${String(date.d).padStart(2, '0')}`;
    const dated = lines.map((l) => (l.op === 'SUB' ? l : { ...l, date }));
    return { body: encode(renderFixedWidth(dated, stamp), 'iso-8859-1'), changes };
  }
}
