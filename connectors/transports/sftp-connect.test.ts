import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from './sftp-connect.js';

describe('backoffDelayMs', () => {
  const backoff = { baseDelayMs: 1_000, maxDelayMs: 30_000 };

  it.each([
    [1, 500, 1_000],
    [2, 1_000, 2_000],
    [3, 2_000, 4_000],
    [6, 15_000, 30_000],
    [10, 15_000, 30_000],
  ])('waits between half and all of the doubled delay before retry %i', (attempt, min, max) => {
    for (let i = 0; i < 50; i++) {
      const delay = backoffDelayMs(attempt, backoff);
      expect(delay).toBeGreaterThanOrEqual(min);
      expect(delay).toBeLessThanOrEqual(max);
    }
  });

  it('spreads the delays of simultaneous retries', () => {
    const delays = new Set(Array.from({ length: 20 }, () => backoffDelayMs(4, backoff)));

    expect(delays.size).toBeGreaterThan(1);
  });
});
