import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../platform/logger.js';
import { checkEvictionPolicy, connectRedis, redisOptions } from '../platform/redis.js';
import { freePort } from './harness/ports.js';
import { type RedisServer, startRedisServer } from './harness/redis-server.js';

function capture() {
  const lines: { level: string; msg: string; policy?: string }[] = [];
  const destination = new Writable({
    write(chunk, _e, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'info', destination }) };
}

describe('redis settings', () => {
  let server: RedisServer;
  beforeAll(async () => {
    // A second, throw-away Redis so that changing its policy cannot disturb other tests.
    server = await startRedisServer(['--maxmemory-policy', 'allkeys-lru']);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('warns at start-up when Redis may evict queued jobs', async () => {
    const redis = await connectRedis({ url: server.url, prefix: 'x' }, 'producer', silentLogger());
    const { lines, log } = capture();
    try {
      expect(await checkEvictionPolicy(redis, log)).toBe('allkeys-lru');
      expect(lines).toEqual([expect.objectContaining({ level: 'warn', policy: 'allkeys-lru' })]);
      await redis.config('SET', 'maxmemory-policy', 'noeviction');
      lines.length = 0;
      expect(await checkEvictionPolicy(redis, log)).toBe('noeviction');
      expect(lines).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });

  it('lets producers fail fast while Redis is down, and workers wait', async () => {
    expect(redisOptions('worker').maxRetriesPerRequest).toBeNull();
    const deadPort = await freePort();
    const producer = new Redis({ port: deadPort, ...redisOptions('producer'), lazyConnect: true });
    producer.on('error', () => {});
    const started = Date.now();
    await expect(producer.ping()).rejects.toThrow(/Stream isn't writeable|enableOfflineQueue/);
    expect(Date.now() - started).toBeLessThan(1_000);
    producer.disconnect();
  });

  it('gives up connecting within the bound with REDIS_UNAVAILABLE, hiding the password', async () => {
    const deadPort = await freePort();
    const url = `redis://user:hunter2@127.0.0.1:${deadPort}`;
    await expect(
      connectRedis({ url, prefix: 'x' }, 'producer', silentLogger(), 300),
    ).rejects.toMatchObject({
      code: 'REDIS_UNAVAILABLE',
      message: `redis at redis://***@127.0.0.1:${deadPort} did not answer within 300 ms`,
    });
  });
});
