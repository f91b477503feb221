/**
 * Opens what a Relais process needs (two databases, a producer Redis connection, metrics) and
 * registers each with the lifecycle so a shutdown closes them in the right order.
 */
import type { Redis } from 'ioredis';
import type { RelaisConfig } from '../config/load.js';
import { type Clock, systemClock } from '../platform/clock.js';
import { createDb, type Db } from '../platform/db.js';
import { ConfigError, TransientError } from '../platform/errors.js';
import type { Lifecycle } from '../platform/lifecycle.js';
import type { Logger } from '../platform/logger.js';
import { createMetrics, type Metrics } from '../platform/metrics.js';
import { pendingMigrations } from '../platform/migrations.js';
import { connectRedis } from '../platform/redis.js';

export interface Services {
  config: RelaisConfig;
  log: Logger;
  metrics: Metrics;
  connectorDb: Db;
  licensingDb: Db;
  redis: Redis;
  lifecycle: Lifecycle;
  /** The time business facts are dated with: the system clock, except in `relais demo`. */
  clock: Clock;
}

export async function openServices(
  config: RelaisConfig,
  log: Logger,
  lifecycle: Lifecycle,
  clock: Clock = systemClock,
): Promise<Services> {
  const { mysql, redis: redisSettings } = config.deployment;
  const connectorDb = createDb(mysql, 'connector', log);
  const licensingDb = createDb(mysql, 'licensing', log);
  lifecycle.onShutdown('mysql', async () => {
    await Promise.all([connectorDb.destroy(), licensingDb.destroy()]);
  });
  const redis = await connectRedis(redisSettings, 'producer', log);
  lifecycle.onShutdown('redis', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  return {
    config,
    log,
    metrics: createMetrics(),
    connectorDb,
    licensingDb,
    redis,
    lifecycle,
    clock,
  };
}

/** Refuses to run against a schema older than the code: `relais migrate` comes first. */
export async function assertMigrated(services: Services): Promise<void> {
  for (const [side, db] of [
    ['connector', services.connectorDb],
    ['licensing', services.licensingDb],
  ] as const) {
    let pending: string[];
    try {
      pending = await pendingMigrations(db, side);
    } catch (err) {
      const { host, port } = services.config.deployment.mysql;
      throw new TransientError(
        'DB_UNAVAILABLE',
        `cannot read the ${side} database at ${host}:${port}`,
        {},
        { cause: err },
      );
    }
    if (pending.length > 0) {
      throw new ConfigError(
        'DB_MIGRATIONS_PENDING',
        `${side} database has ${pending.length} pending migration(s): run relais migrate`,
        { pending },
      );
    }
  }
}
