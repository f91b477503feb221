/**
 * Rating: one subscriber's ledger events and a period in, the charge lines of its licences out.
 * Pure (no database, no clock), so every rule below has a unit test with its expected amount.
 *
 * The rule (issue 5): a licence-month of module M is billable for period P when the licence was
 * activated before the end of P and M was entitled at some moment of P after that activation.
 * "Entitled" is the subscription replayed from the ledger in (occurred_at, id) order: status
 * active (not suspended, not cancelled) and M in its modules. A subscription cancelled before P
 * began is entitled at no moment of P, and a licence never activated has no moment after its
 * activation, so neither is ever billed.
 *
 * Proration `none`: any such moment bills the whole month (quantity 1). `daily`: the days of P
 * (calendar days in the ISP time zone) that hold such a moment, over the days of P; the amount
 * is rounded once, from that exact fraction, never from the 4-decimal display quantity.
 */

import { periodBounds, zonedToUtc } from '../../platform/zoned-time.js';
import type { EventType } from '../ledger.js';
import {
  formatCents,
  formatQuantity,
  formatUnitPrice,
  type Money,
  parseMoney,
  prorate,
  type RoundingRule,
  roundCents,
} from './money.js';
import { missingPrice, type PeriodPrices } from './prices.js';
import type { RatedLine } from './rated-line.js';

/** Ledger event types that change what is billable; every other type is ignored. */
export const RATING_EVENT_TYPES = [
  'provisioned',
  'activated',
  'modules-changed',
  'suspended',
  'resumed',
  'cancelled',
  'erased',
] as const satisfies readonly EventType[];

/** One ledger row as rating reads it. */
export interface RatingEvent {
  /** `subscription_events.id`, a decimal string (BIGINT). */
  id: string;
  type: EventType;
  licenceId: string | null;
  occurredAtMs: number;
  /** `provisioned` and `modules-changed`: the modules after the event. */
  modules?: readonly string[];
  /** `provisioned`: the status the subscribe left (absent in older rows: active). */
  status?: string;
}

/** A period cut into its calendar days in the ISP time zone. */
export interface PeriodFrame {
  period: string;
  startMs: number;
  endMs: number;
  daysInPeriod: number;
  /** Start instant of each day of the period, then `endMs`: daysInPeriod + 1 entries. */
  dayStartsMs: readonly number[];
}

/** How one ISP is rated for one period: frozen in the close so a rerun rates the same. */
export interface RatingRules {
  ispId: string;
  currency: string;
  proration: 'none' | 'daily';
  rounding: RoundingRule;
  prices: PeriodPrices;
}

export function periodFrame(period: string, timeZone: string): PeriodFrame {
  const { start, end } = periodBounds(period, timeZone);
  const year = Number(period.slice(0, 4));
  const month = Number(period.slice(5, 7));
  const daysInPeriod = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const dayStartsMs: number[] = [start.getTime()];
  for (let day = 2; day <= daysInPeriod; day++) {
    const at = zonedToUtc(
      { year, month, day, hour: 0, minute: 0, second: 0, millisecond: 0, offsetMinutes: null },
      timeZone,
    );
    dayStartsMs.push(at.getTime());
  }
  dayStartsMs.push(end.getTime());
  return { period, startMs: start.getTime(), endMs: end.getTime(), daysInPeriod, dayStartsMs };
}

/** Ledger ids are BIGINT strings: shorter is smaller, equal lengths compare as text. */
function compareIds(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareEvents(a: RatingEvent, b: RatingEvent): number {
  return a.occurredAtMs - b.occurredAtMs || compareIds(a.id, b.id);
}

interface Activation {
  licenceId: string;
  eventId: string;
  atMs: number;
}

/** Where one licence's module was entitled within the period, after activation. */
interface Entitlement {
  activation: Activation;
  module: string;
  /** Half-open [from, to) instants, in time order, none empty. */
  intervals: [number, number][];
}

/**
 * Replays the events and collects, per licence and module, the instants of the period at which
 * the module was entitled after that licence's activation. When a subscriber holds several
 * licences over time, each moment belongs to the licence activated most recently before it,
 * so a moment is never billed twice.
 */
function entitlements(events: readonly RatingEvent[], frame: PeriodFrame): Entitlement[] {
  const sorted = [...events].sort(compareEvents);
  const found = new Map<string, Entitlement>();
  let status = 'none';
  let modules: readonly string[] = [];
  let current: Activation | undefined;
  const activated = new Set<string>();
  let segmentStart = Number.NEGATIVE_INFINITY;

  const closeSegment = (until: number) => {
    if (status !== 'active' || current === undefined || modules.length === 0) return;
    const from = Math.max(segmentStart, frame.startMs, current.atMs);
    const to = Math.min(until, frame.endMs);
    if (from >= to) return;
    for (const module of modules) {
      const key = `${current.licenceId}\u0000${module}`;
      let entry = found.get(key);
      if (!entry) {
        entry = { activation: current, module, intervals: [] };
        found.set(key, entry);
      }
      entry.intervals.push([from, to]);
    }
  };

  for (const event of sorted) {
    closeSegment(event.occurredAtMs);
    segmentStart = event.occurredAtMs;
    switch (event.type) {
      case 'provisioned':
        status = event.status ?? 'active';
        modules = event.modules ?? [];
        break;
      case 'modules-changed':
        modules = event.modules ?? modules;
        break;
      case 'suspended':
        status = 'suspended';
        break;
      case 'resumed':
        status = 'active';
        break;
      case 'cancelled':
      case 'erased':
        status = 'cancelled';
        break;
      case 'activated':
        // One activation per licence counts (the ledger keeps one; a copy changes nothing).
        if (event.licenceId !== null && !activated.has(event.licenceId)) {
          activated.add(event.licenceId);
          current = { licenceId: event.licenceId, eventId: event.id, atMs: event.occurredAtMs };
        }
        break;
      default:
        break;
    }
  }
  closeSegment(Number.POSITIVE_INFINITY);
  return [...found.values()];
}

/** Index of the day of the period that holds `ms` (which lies within the period). */
function dayIndex(frame: PeriodFrame, ms: number): number {
  const starts = frame.dayStartsMs;
  let day = 0;
  while (day + 1 < frame.daysInPeriod && (starts[day + 1] as number) <= ms) day++;
  return day;
}

/** Calendar days of the period holding at least one entitled instant. */
export function daysEntitled(frame: PeriodFrame, intervals: readonly [number, number][]): number {
  let days = 0;
  let lastCounted = -1;
  for (const [from, to] of intervals) {
    const first = Math.max(dayIndex(frame, from), lastCounted + 1);
    const last = dayIndex(frame, to - 1);
    if (last >= first) {
      days += last - first + 1;
      lastCounted = last;
    }
  }
  return days;
}

/** The amount of `days` of a month at `unitPrice`, rounded once to cents with the ISP's rule. */
export function amountFor(
  unitPrice: Money,
  days: number,
  daysInPeriod: number,
  rules: Pick<RatingRules, 'proration' | 'rounding'>,
): Money {
  if (rules.proration === 'none') return roundCents(unitPrice, rules.rounding);
  return roundCents(prorate(unitPrice, days, daysInPeriod), rules.rounding);
}

/**
 * `<period>/<subscriberId>/<licenceId>/<module>`. The subscriber id comes first so that a
 * close, which rates subscribers in id order, appends its lines to the primary key instead of
 * scattering them over it (licence ids are random), and a subscriber's lines sort together.
 */
export function chargeLineId(
  period: string,
  subscriberId: string,
  licenceId: string,
  module: string,
): string {
  return `${period}/${subscriberId}/${licenceId}/${module}`;
}

/** What a line of one module and day count shows: the same for every such line of a close. */
interface Priced {
  unitPrice: string;
  quantity: string;
  amount: string;
}

/**
 * Priced figures per rules object, by module and days: a close rates a million lines with a
 * handful of (module, days) pairs, so decimal.js runs a handful of times, not per line.
 */
const pricedCache = new WeakMap<RatingRules, Map<string, Priced>>();

function priced(rules: RatingRules, frame: PeriodFrame, module: string, days: number): Priced {
  let byKey = pricedCache.get(rules);
  if (!byKey) {
    byKey = new Map();
    pricedCache.set(rules, byKey);
  }
  const key = `${frame.period}\u0000${module}\u0000${days}`;
  let found = byKey.get(key);
  if (!found) {
    const priceText = rules.prices.modules[module];
    if (priceText === undefined) {
      throw missingPrice(rules.ispId, frame.period, rules.prices, [module]);
    }
    const unitPrice = parseMoney(priceText);
    found = {
      unitPrice: formatUnitPrice(unitPrice),
      quantity:
        rules.proration === 'none'
          ? '1'
          : formatQuantity(prorate(parseMoney('1'), days, frame.daysInPeriod)),
      amount: formatCents(amountFor(unitPrice, days, frame.daysInPeriod, rules)),
    };
    byKey.set(key, found);
  }
  return found;
}

/**
 * The charge lines of one subscriber for the frame's period, in lineId order. Throws
 * BILLING_PRICE_MISSING when a billable module has no price.
 */
export function rateSubscriber(
  subscriberId: string,
  events: readonly RatingEvent[],
  frame: PeriodFrame,
  rules: RatingRules,
): RatedLine[] {
  const lines: RatedLine[] = [];
  for (const entry of entitlements(events, frame)) {
    const days =
      rules.proration === 'none' ? frame.daysInPeriod : daysEntitled(frame, entry.intervals);
    const { unitPrice, quantity, amount } = priced(rules, frame, entry.module, days);
    const { activation } = entry;
    lines.push({
      lineId: chargeLineId(frame.period, subscriberId, activation.licenceId, entry.module),
      kind: 'charge',
      period: frame.period,
      servicePeriod: frame.period,
      ispId: rules.ispId,
      subscriberId,
      licenceId: activation.licenceId,
      module: entry.module,
      days,
      daysInPeriod: frame.daysInPeriod,
      quantity,
      unitPrice,
      amount,
      currency: rules.currency,
      activationEventId: activation.eventId,
      activatedAt: new Date(activation.atMs).toISOString(),
    });
  }
  return lines.sort((a, b) => (a.lineId < b.lineId ? -1 : a.lineId > b.lineId ? 1 : 0));
}
