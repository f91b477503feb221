/**
 * Licence validity in periods (calendar months in the ISP time zone). A licence issued or
 * renewed for a period is valid until that period ends plus the ISP's grace days, so a renewal
 * that runs a little late, or a check-in missed over a weekend, never cuts a paying customer off.
 */
import { PERIOD_PATTERN, periodBounds, periodOf } from '../platform/zoned-time.js';

export { PERIOD_PATTERN, periodBounds, periodOf };

const DAY_MS = 86_400_000;

/** The month `months` after `period` (YYYY-MM); negative goes back. */
export function shiftPeriod(period: string, months: number): string {
  const index = Number(period.slice(0, 4)) * 12 + Number(period.slice(5, 7)) - 1 + months;
  return `${String(Math.floor(index / 12)).padStart(4, '0')}-${String((index % 12) + 1).padStart(2, '0')}`;
}

/** The month after `period` (YYYY-MM). */
export function nextPeriod(period: string): string {
  return shiftPeriod(period, 1);
}

/** The month before `period` (YYYY-MM). */
export function previousPeriod(period: string): string {
  return shiftPeriod(period, -1);
}

/** When a licence covering `period` stops being valid: the period's end plus grace days. */
export function validUntilFor(period: string, timeZone: string, graceDays: number): Date {
  return new Date(periodBounds(period, timeZone).end.getTime() + graceDays * DAY_MS);
}
