/**
 * A rated line: one licence-month of one module, billable because the licence was activated,
 * or an adjustment to a closed period. The subscription server freezes these at period close
 * and streams them to the connector as NDJSON, one object per line, in `lineId` order. Nothing
 * personal: ids, module codes, dates and money only.
 *
 * Money is decimal strings with the currency's two decimals ("1.50", "-0.48"); quantities are
 * decimal strings of licence-months with up to four decimals ("1", "0.3871"), for display: an
 * amount is computed from the exact fraction days / daysInPeriod, never from the rounded
 * quantity.
 */
import { z } from 'zod';

export const PERIOD_ID = /^\d{4}-(0[1-9]|1[0-2])$/;

export const ratedLineSchema = z.strictObject({
  /**
   * Unique and stable: `<servicePeriod>/<subscriberId>/<licenceId>/<module>` for a charge,
   * `<period>/adj/<servicePeriod>/<subscriberId>/<licenceId>/<module>` for an adjustment. The
   * subscriber id comes first so that a close, which rates subscribers in id order, appends
   * to the rated_lines primary key instead of writing all over it.
   */
  lineId: z.string().min(1).max(160),
  kind: z.enum(['charge', 'adjustment']),
  /** The period whose output carries the line. */
  period: z.string().regex(PERIOD_ID),
  /** The month the usage belongs to: the same as `period` for a charge, earlier for an adjustment. */
  servicePeriod: z.string().regex(PERIOD_ID),
  ispId: z.string().min(1).max(32),
  subscriberId: z.string().min(1).max(32),
  licenceId: z.string().min(1).max(32),
  module: z.string().min(1).max(32),
  /** Days billed: days entitled after activation (daily proration) or all days (none). */
  days: z.int().min(0).max(31),
  daysInPeriod: z.int().min(28).max(31),
  quantity: z.string().regex(/^-?\d+(\.\d{1,4})?$/),
  unitPrice: z.string().regex(/^\d+(\.\d{1,6})?$/),
  amount: z.string().regex(/^-?\d+\.\d{2}$/),
  currency: z.string().regex(/^[A-Z]{3}$/),
  /** Ledger id (`subscription_events.id`) of the activation that makes the line billable. */
  activationEventId: z.string().regex(/^\d+$/),
  activatedAt: z.iso.datetime({ offset: true }),
});

export type RatedLine = z.output<typeof ratedLineSchema>;

type FieldCheck = (value: unknown) => boolean;

const text =
  (min: number, max: number, pattern?: RegExp): FieldCheck =>
  (v) =>
    typeof v === 'string' &&
    v.length >= min &&
    v.length <= max &&
    (pattern === undefined || pattern.test(v));
const int =
  (min: number, max: number): FieldCheck =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const unbounded = Number.MAX_SAFE_INTEGER;

/** The schema above as plain checks, field by field; `checkRatedLine` runs them. */
const FIELD_CHECKS: Record<keyof RatedLine, FieldCheck> = {
  lineId: text(1, 160),
  kind: (v) => v === 'charge' || v === 'adjustment',
  period: text(0, unbounded, PERIOD_ID),
  servicePeriod: text(0, unbounded, PERIOD_ID),
  ispId: text(1, 32),
  subscriberId: text(1, 32),
  licenceId: text(1, 32),
  module: text(1, 32),
  days: int(0, 31),
  daysInPeriod: int(28, 31),
  quantity: text(0, unbounded, /^-?\d+(\.\d{1,4})?$/),
  unitPrice: text(0, unbounded, /^\d+(\.\d{1,6})?$/),
  amount: text(0, unbounded, /^-?\d+\.\d{2}$/),
  currency: text(0, unbounded, /^[A-Z]{3}$/),
  activationEventId: text(0, unbounded, /^\d+$/),
  activatedAt: (v) => typeof v === 'string' && ISO_INSTANT.test(v) && !Number.isNaN(Date.parse(v)),
};
const FIELDS = Object.keys(FIELD_CHECKS) as (keyof RatedLine)[];
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Checks a parsed NDJSON value against the wire shape without zod's per-call cost: the
 * connector reads millions of lines per period, and this runs in a fraction of the time.
 * Answers the first field that fails; `ratedLineSchema` then gives the precise message. The
 * two agree (rated-line.test.ts checks them against each other on every field).
 */
export function checkRatedLine(value: unknown): keyof RatedLine | '(line)' | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return '(line)';
  const record = value as Record<string, unknown>;
  let count = 0;
  for (const field of FIELDS) {
    if (!FIELD_CHECKS[field](record[field])) return field;
  }
  for (const _ in record) count += 1;
  return count === FIELDS.length ? null : '(line)';
}
