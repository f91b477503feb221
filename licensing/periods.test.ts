import { describe, expect, it } from 'vitest';
import { nextPeriod, validUntilFor } from './periods.js';

describe('periods', () => {
  it('step to the next month, across a year end', () => {
    expect(nextPeriod('2026-11')).toBe('2026-12');
    expect(nextPeriod('2026-12')).toBe('2027-01');
    expect(nextPeriod('0999-12')).toBe('1000-01');
  });

  it('make a licence valid until local midnight after the period, plus grace days', () => {
    // Paris is UTC+1 in winter: 1 January 00:00 local is 31 December 23:00 UTC.
    expect(validUntilFor('2026-12', 'Europe/Paris', 0).toISOString()).toBe(
      '2026-12-31T23:00:00.000Z',
    );
    expect(validUntilFor('2026-12', 'Europe/Paris', 7).toISOString()).toBe(
      '2027-01-07T23:00:00.000Z',
    );
    // October ends in winter time in Paris (the clocks went back on the 25th).
    expect(validUntilFor('2026-10', 'Europe/Paris', 0).toISOString()).toBe(
      '2026-10-31T23:00:00.000Z',
    );
    expect(validUntilFor('2026-06', 'America/New_York', 1).toISOString()).toBe(
      '2026-07-02T04:00:00.000Z',
    );
  });
});
