/**
 * Redis connections for BullMQ. Two kinds, because BullMQ needs opposite things from them:
 *
 * - `worker` connections block on Redis and must wait out a restart forever:
 *   `maxRetriesPerRequest: null` (BullMQ refuses anything else for workers).
 * - `producer` connections serve HTTP requests and the CLI: they fail fast with an error when
 *   Redis is down (`enableOfflineQueue: false`), so a push answers 503 instead of hanging.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { TransientError } from './errors.js';
import type { Logger } from './logger.js';

export interface RedisSettings {
  url: string;
  prefix: string;
  /** A Redis Cluster: `url` is one seed node; the client discovers the others. */
  cluster?: boolean;
}

export type RedisRole = 'worker' | 'producer';

export function redisOptions(role: RedisRole): RedisOptions {
  const common: RedisOptions = {
    lazyConnect: false,
    connectTimeout: 5_000,
    // Reconnect forever, backing off to 5 s; BullMQ relies on ioredis to come back.
    retryStrategy: (attempt) => Math.min(250 * 2 ** Math.min(attempt, 5), 5_000),
  };
  return role === 'worker'
    ? { ...common, maxRetriesPerRequest: null, enableReadyCheck: true }
    : { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: false };
}

export function createRedis(settings: RedisSettings, role: RedisRole): Redis {
  if (settings.cluster) return createCluster(settings.url, role);
  return new Redis(settings.url, redisOptions(role));
}

/**
 * A cluster client seeded with the node of `url` (its user, password and TLS apply to every
 * node). Typed as `Redis`: ioredis gives both classes the same command interface, and BullMQ
 * and the activation guard use nothing else; all their keys share the prefix's slot.
 */
function createCluster(url: string, role: RedisRole): Redis {
  const seed = new URL(url);
  const { retryStrategy, enableOfflineQueue, ...perNode } = redisOptions(role);
  const cluster = new Cluster([{ host: seed.hostname, port: Number(seed.port || 6379) }], {
    clusterRetryStrategy: retryStrategy,
    enableOfflineQueue: enableOfflineQueue ?? true,
    redisOptions: {
      ...perNode,
      ...(seed.username ? { username: decodeURIComponent(seed.username) } : {}),
      ...(seed.password ? { password: decodeURIComponent(seed.password) } : {}),
      ...(seed.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  });
  return cluster as unknown as Redis;
}

/**
 * A connection that is ready to take commands. A producer refuses commands until connected
 * (no offline queue), so start-up waits here, bounded, and fails with REDIS_UNAVAILABLE.
 */
export async function connectRedis(
  settings: RedisSettings,
  role: RedisRole,
  log: Logger,
  timeoutMs = 5_000,
): Promise<Redis> {
  const redis = createRedis(settings, role);
  // ioredis reports each failed reconnect as an 'error' event; unheard, it would crash the process.
  redis.on('error', (err) => log.warn({ err, role }, 'redis connection error'));
  if (redis.status === 'ready') return redis;
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (!ready) {
    redis.disconnect();
    throw new TransientError(
      'REDIS_UNAVAILABLE',
      `redis at ${redactUrl(settings.url)} did not answer within ${timeoutMs} ms`,
    );
  }
  return redis;
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/**
 * Warns when Redis may evict keys: with any policy but `noeviction`, Redis can silently drop
 * queued jobs under memory pressure. Returns the policy, or undefined when CONFIG is refused
 * (managed Redis often disables it).
 */
export async function checkEvictionPolicy(redis: Redis, log: Logger): Promise<string | undefined> {
  let policy: string | undefined;
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    policy = reply[1];
  } catch (err) {
    log.warn({ err }, 'cannot read redis maxmemory-policy; make sure it is noeviction');
    return undefined;
  }
  if (policy !== 'noeviction') {
    log.warn({ policy }, 'redis maxmemory-policy is not noeviction: queued jobs can be evicted');
  }
  return policy;
}
