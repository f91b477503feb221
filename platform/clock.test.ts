import { describe, expect, it } from 'vitest';
import { SimulatedClock, systemClock } from './clock.js';

describe('SimulatedClock', () => {
  it('reads the instant it was set to, then runs on at real speed', async () => {
    const clock = new SimulatedClock(new Date('2026-12-01T06:00:00Z'));
    const first = clock.now().getTime();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const later = clock.now().getTime();

    expect(first - Date.parse('2026-12-01T06:00:00Z')).toBeLessThan(20);
    expect(later - first).toBeGreaterThanOrEqual(25);
    clock.set(new Date('2027-01-04T08:00:00Z'));
    expect(clock.now().toISOString().slice(0, 16)).toBe('2027-01-04T08:00');
  });

  it('leaves the system clock alone', () => {
    new SimulatedClock(new Date('2000-01-01T00:00:00Z'));
    expect(Math.abs(systemClock.now().getTime() - Date.now())).toBeLessThan(50);
  });
});
