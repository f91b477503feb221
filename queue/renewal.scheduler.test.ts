import { describe, expect, it } from 'vitest';
import { duePeriod } from './renewal.scheduler.js';

const at = (iso: string) => new Date(iso);

describe('which period is due for renewal', () => {
  it('is the month that has just ended in the ISP zone, not in UTC', () => {
    // 00:10 on 1 December in Paris is still 30 November in UTC and in New York.
    const now = at('2026-11-30T23:10:00Z');
    expect(duePeriod(now, 'Europe/Paris', '2026-09')).toBe('2026-11');
    expect(duePeriod(now, 'UTC', '2026-09')).toBe('2026-10');
    expect(duePeriod(now, 'America/New_York', '2026-09')).toBe('2026-10');
    expect(duePeriod(now, 'America/New_York', '2026-10')).toBeNull();
  });

  it('is nothing once that month is closed, until the next month ends', () => {
    expect(duePeriod(at('2026-12-01T00:00:00Z'), 'Europe/Paris', '2026-11')).toBeNull();
    expect(duePeriod(at('2026-12-31T22:59:59Z'), 'Europe/Paris', '2026-11')).toBeNull();
    // Midnight CET on 1 January 2027.
    expect(duePeriod(at('2026-12-31T23:00:00Z'), 'Europe/Paris', '2026-11')).toBe('2026-12');
  });

  it('catches up a missed month end on a later day', () => {
    expect(duePeriod(at('2026-03-17T09:00:00Z'), 'Europe/Paris', '2026-01')).toBe('2026-02');
    expect(duePeriod(at('2026-03-17T09:00:00Z'), 'Europe/Paris', null)).toBe('2026-02');
  });

  it('crosses year ends and the date line', () => {
    // 1 January 2027, 00:30 in Auckland (NZDT, +13) is 31 December 11:30 UTC.
    const now = at('2026-12-31T11:30:00Z');
    expect(duePeriod(now, 'Pacific/Auckland', '2026-11')).toBe('2026-12');
    expect(duePeriod(now, 'Pacific/Honolulu', '2026-10')).toBe('2026-11');
    expect(duePeriod(at('2027-01-01T00:00:00Z'), 'UTC', '2026-11')).toBe('2026-12');
  });

  it('follows the DST change at the end of March in Paris', () => {
    // 1 April 00:05 CEST is 31 March 22:05 UTC.
    expect(duePeriod(at('2026-03-31T22:05:00Z'), 'Europe/Paris', '2026-02')).toBe('2026-03');
    expect(duePeriod(at('2026-03-31T21:55:00Z'), 'Europe/Paris', '2026-02')).toBeNull();
  });

  it('does not go back when a later period is already closed', () => {
    expect(duePeriod(at('2026-05-02T00:00:00Z'), 'Europe/Paris', '2026-05')).toBeNull();
  });
});
