import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createSerialRunner } from './serial.js';

describe('createSerialRunner', () => {
  it('never runs two operations at once and keeps call order', async () => {
    const serial = createSerialRunner();
    const events: string[] = [];
    let running = 0;
    let mostAtOnce = 0;
    const operation = (id: number, ms: number) => async () => {
      running += 1;
      mostAtOnce = Math.max(mostAtOnce, running);
      events.push(`start ${id}`);
      await sleep(ms);
      events.push(`end ${id}`);
      running -= 1;
      return id;
    };

    const results = await Promise.all([
      serial(operation(1, 30)),
      serial(operation(2, 1)),
      serial(operation(3, 10)),
    ]);

    expect(results).toEqual([1, 2, 3]);
    expect(mostAtOnce).toBe(1);
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it('runs the next operation after one that failed, and still reports the failure', async () => {
    const serial = createSerialRunner();

    const failing = serial(async () => {
      throw new TypeError('boom');
    });
    const next = serial(async () => 'next ran');

    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('next ran');
  });
});
