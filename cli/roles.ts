/**
 * What each role runs. Capabilities plug their route plugins, workers and schedules in here;
 * this file is the one place that knows which pieces make up a running Relais.
 */
import type { FastifyPluginAsync } from 'fastify';
import { buildApi } from '../api/server.js';
import { databaseCheck, redisCheck } from '../platform/readiness.js';
import type { Services } from './services.js';

export const ROLES = ['all', 'api', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

/** Route plugins of the capabilities, in registration order. */
function apiRoutes(_services: Services): FastifyPluginAsync[] {
  return [];
}

/** Starts the api; returns its base URL. `port` overrides the configured one (0: any free port). */
export async function startApi(services: Services, port?: number): Promise<string> {
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
    routes: apiRoutes(services),
  });
  await app.listen({ host: http.host, port: port ?? http.port });
  services.lifecycle.onShutdown('api', () => app.close());
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : http.port;
  return `http://${http.host}:${actualPort}`;
}

/** Starts the queue workers of every capability. */
export async function startWorkers(services: Services): Promise<void> {
  services.log.debug('no queue worker is registered in this version');
}

/** Starts the schedules (feed polling, period close) of every capability. */
export async function startScheduler(services: Services): Promise<void> {
  services.log.debug('no schedule is registered in this version');
}
