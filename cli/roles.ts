/**
 * What each role runs. Capabilities plug their route plugins, workers and schedules in here;
 * this file is the one place that knows which pieces make up a running Relais.
 */
import type { FastifyPluginAsync } from 'fastify';
import { feedPushRoutes } from '../api/feed-push.routes.js';
import { buildApi } from '../api/server.js';
import { databaseCheck, redisCheck } from '../platform/readiness.js';
import { connectRedis } from '../platform/redis.js';
import { startFeedsWorker } from '../queue/feeds.worker.js';
import { startScheduler as startIntakeScheduler } from '../queue/scheduler.js';
import type { IntakeRuntime } from './intake-runtime.js';
import type { Services } from './services.js';

export const ROLES = ['all', 'api', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

/** Route plugins of the capabilities, in registration order. */
function apiRoutes(services: Services, runtime: IntakeRuntime): FastifyPluginAsync[] {
  const { config, redis } = services;
  const push: FastifyPluginAsync = async (app) => {
    await app.register(feedPushRoutes, {
      config,
      intake: runtime.deps,
      queues: runtime.queues,
      redis,
      prefix: config.deployment.redis.prefix,
    });
  };
  return [push];
}

/** Starts the api; returns its base URL. `port` overrides the configured one (0: any free port). */
export async function startApi(
  services: Services,
  runtime: IntakeRuntime,
  port?: number,
): Promise<string> {
  const { http } = services.config.deployment;
  const app = await buildApi({
    log: services.log,
    metrics: services.metrics,
    bodyLimitBytes: http.bodyLimitBytes,
    trustProxy: http.trustProxy,
    readiness: [
      databaseCheck(services.connectorDb, 'connector'),
      databaseCheck(services.licensingDb, 'licensing'),
      redisCheck(services.redis),
    ],
    routes: apiRoutes(services, runtime),
  });
  await app.listen({ host: http.host, port: port ?? http.port });
  services.lifecycle.onShutdown('api', () => app.close());
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : http.port;
  return `http://${http.host}:${actualPort}`;
}

/** Starts the queue workers of every capability, each on its own blocking connection. */
export async function startWorkers(services: Services, runtime: IntakeRuntime): Promise<void> {
  const { config, log } = services;
  const connection = await connectRedis(config.deployment.redis, 'worker', log);
  const feeds = startFeedsWorker({
    config,
    intake: runtime.intake,
    intakeDeps: runtime.deps,
    log,
    connection,
    prefix: config.deployment.redis.prefix,
  });
  services.lifecycle.onShutdown('workers', async () => {
    await feeds.close();
    connection.disconnect();
  });
}

/** Starts the schedules (feed polling, outbox sweep) of every capability. */
export async function startScheduler(services: Services, runtime: IntakeRuntime): Promise<void> {
  const scheduler = startIntakeScheduler({
    config: services.config,
    db: services.connectorDb,
    queues: runtime.queues,
    log: services.log,
  });
  services.lifecycle.onShutdown('scheduler', () => scheduler.stop());
}
