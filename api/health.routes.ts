/**
 * `/healthz`: the process is up (for a supervisor's liveness probe; never touches a service).
 * `/readyz`: this process can do its work: databases reachable and migrated, Redis answering.
 * `/metrics`: Prometheus text format.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../platform/metrics.js';
import { type CheckResult, type ReadinessCheck, runCheck } from '../platform/readiness.js';

export interface HealthRoutesOptions {
  metrics: Metrics;
  readiness: ReadinessCheck[];
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, options) => {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const results = await Promise.all(
      options.readiness.map(async (check) => [check.name, await runCheck(check)] as const),
    );
    const checks: Record<string, CheckResult> = Object.fromEntries(results);
    const ready = results.every(([, result]) => result.ok);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await options.metrics.metrics();
    return reply.type(options.metrics.contentType).send(text);
  });
};
