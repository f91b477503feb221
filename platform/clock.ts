/**
 * The time Relais runs on. Every process reads the system clock, except `relais demo`, which
 * plays a whole billing month in a few minutes: it sets a simulated clock to the moments of its
 * story (the 1st, the 15th, the close after the cutoff) and the clock runs on at real speed
 * from each of them, so events within a step keep their order.
 *
 * @remarks Only what dates business facts reads this clock: when a feed was received (the
 * fallback effective date of its changes) and the subscription server's `now` (activations,
 * periods, links, closes). Timeouts, retries, rate limits and log lines keep real time.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock set to chosen instants; it runs on at real speed from the last one set. */
export class SimulatedClock implements Clock {
  private offsetMs = 0;

  constructor(start?: Date) {
    if (start) this.set(start);
  }

  set(at: Date): void {
    this.offsetMs = at.getTime() - Date.now();
  }

  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}
