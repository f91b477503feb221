import { describe, expect, it } from 'vitest';
import { duePeriods } from './billing-close.scheduler.js';

describe('duePeriods', () => {
  it.each([
    // November ends 30 November 23:00Z; + 3 days = 3 December 23:00Z. Before that, October is due.
    ['2026-12-03T22:30:00Z', null, ['2026-10']],
    ['2026-12-03T23:00:00Z', null, ['2026-11']],
    ['2026-12-20T08:00:00Z', '2026-11', []],
    ['2026-12-20T08:00:00Z', '2026-08', ['2026-09', '2026-10', '2026-11']],
    ['2027-01-02T08:00:00Z', '2026-10', ['2026-11']],
  ] as const)('at %s with %s closed: %j', (now, lastClosed, expected) => {
    expect(duePeriods(new Date(now), 'Europe/Paris', 3, lastClosed)).toEqual(expected);
  });
});
