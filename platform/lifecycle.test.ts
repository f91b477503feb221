import { describe, expect, it } from 'vitest';
import { Lifecycle } from './lifecycle.js';
import { silentLogger } from './logger.js';

describe('Lifecycle', () => {
  it('runs closers last-registered first, once, even when one fails', async () => {
    const order: string[] = [];
    const lifecycle = new Lifecycle(silentLogger(), 1_000);
    lifecycle.onShutdown('db', () => {
      order.push('db');
    });
    lifecycle.onShutdown('broken', () => {
      order.push('broken');
      throw new Error('boom');
    });
    lifecycle.onShutdown('api', async () => {
      order.push('api');
    });
    expect(await lifecycle.shutdown('test')).toBe(true);
    expect(await lifecycle.shutdown('again')).toBe(true);
    expect(order).toEqual(['api', 'broken', 'db']);
  });

  it('gives up after the bound when a closer hangs', async () => {
    const lifecycle = new Lifecycle(silentLogger(), 100);
    lifecycle.onShutdown('hangs', () => new Promise(() => {}));
    const started = Date.now();
    expect(await lifecycle.shutdown('test')).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
