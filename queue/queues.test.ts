/**
 * The retry policy of the provisioning and delivery queues: long enough to outlast an outage of
 * the licensing server, a relay or the database of about a day, with no pause over 5 minutes.
 */
import { Backoffs } from 'bullmq';
import { describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  DELIVERY_JOB_OPTIONS,
  MAX_BACKOFF_MS,
  PROVISIONING_JOB_OPTIONS,
  retryBudgetMs,
} from './queues.js';

const HOUR = 3_600_000;

describe('queue retry policy', () => {
  it('retries provisioning and delivery jobs for about a day', () => {
    for (const options of [PROVISIONING_JOB_OPTIONS, DELIVERY_JOB_OPTIONS]) {
      expect(retryBudgetMs(options)).toBeGreaterThanOrEqual(24 * HOUR);
      expect(retryBudgetMs(options)).toBeLessThan(26 * HOUR);
    }
  });

  it('doubles from 5 s and never waits more than 5 minutes', () => {
    const backoff = PROVISIONING_JOB_OPTIONS.backoff;
    const delays = Array.from({ length: 299 }, (_, i) => backoffDelayMs(backoff, i + 1));
    expect(delays.slice(0, 7)).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000]);
    expect(Math.max(...delays)).toBe(MAX_BACKOFF_MS);
  });

  it("computes BullMQ's own backoffs as BullMQ does", () => {
    for (const backoff of [
      { type: 'exponential', delay: 5_000 },
      { type: 'fixed', delay: 250 },
    ]) {
      for (const attemptsMade of [1, 2, 5]) {
        expect(backoffDelayMs(backoff, attemptsMade)).toBe(
          Backoffs.calculate(backoff, attemptsMade, new Error('x'), {} as never),
        );
      }
    }
  });
});
