/**
 * Licence validity in periods (calendar months in the ISP time zone). A licence issued or
 * renewed for a period is valid until that period ends plus the ISP's grace days, so a renewal
 * that runs a little late, or a check-in missed over a weekend, never cuts a paying customer off.
 */
import { PERIOD_PATTERN, periodBounds, periodOf } from '../platform/zoned-time.js';

export { PERIOD_PATTERN, periodBounds, periodOf };

const DAY_MS = 86_400_000;

/** The month after `period` (YYYY-MM). */
export function nextPeriod(period: string): string {
  const year = Number(period.slice(0, 4));
  const month = Number(period.slice(5, 7));
  const next = year * 12 + month; // zero-based index of the following month
  return `${String(Math.floor(next / 12)).padStart(4, '0')}-${String((next % 12) + 1).padStart(2, '0')}`;
}

/** When a licence covering `period` stops being valid: the period's end plus grace days. */
export function validUntilFor(period: string, timeZone: string, graceDays: number): Date {
  return new Date(periodBounds(period, timeZone).end.getTime() + graceDays * DAY_MS);
}
