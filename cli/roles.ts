/**
 * What each role runs. Capabilities plug their route plugins, workers and schedules in here;
 * this file is the one place that knows which pieces make up a running Relais.
 */
import type { FastifyPluginAsync } from 'fastify';
import { activationRoutes } from '../api/activation.routes.js';
import { adminRoutes } from '../api/admin.routes.js';
import { billingRoutes } from '../api/billing.routes.js';
import { downloadRoutes } from '../api/download.routes.js';
import { feedPushRoutes } from '../api/feed-push.routes.js';
import { provisioningRoutes } from '../api/provisioning.routes.js';
import { buildApi } from '../api/server.js';
import { subscriberRoutes } from '../api/subscriber.routes.js';
import { vendorDocumentsHook } from '../licensing/billing/month-end.js';
import { queueStallCheck, workerCheck } from '../platform/queue-readiness.js';
import { databaseCheck, type ReadinessCheck, redisCheck } from '../platform/readiness.js';
import { connectRedis } from '../platform/redis.js';
import { startBillingCloseScheduler } from '../queue/billing-close.scheduler.js';
import { startBillingExportScheduler } from '../queue/billing-export.scheduler.js';
import { startDeliveryWorker } from '../queue/delivery.worker.js';
import { startFeedsWorker } from '../queue/feeds.worker.js';
import { startProvisioningWorker } from '../queue/provisioning.worker.js';
import { queueList } from '../queue/queue-metrics.js';
import { startReconciliationScheduler } from '../queue/reconciliation.scheduler.js';
import { startRenewalScheduler } from '../queue/renewal.scheduler.js';
import { startScheduler as startIntakeScheduler } from '../queue/scheduler.js';
import type { IntakeRuntime } from './intake-runtime.js';
import type { LicensingRuntime } from './licensing-runtime.js';
import type { Services } from './services.js';

export const ROLES = ['all', 'api', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

/** Route plugins of the capabilities, in registration order. */
function apiRoutes(
  services: Services,
  runtime: IntakeRuntime,
  licensing: LicensingRuntime,
): FastifyPluginAsync[] {
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
  const server: FastifyPluginAsync = async (app) => {
    const deps = licensing.server;
    await app.register(provisioningRoutes, { deps });
    await app.register(activationRoutes, { deps });
    await app.register(downloadRoutes, { deps });
    await app.register(subscriberRoutes, { deps });
    await app.register(billingRoutes, { deps });
  };
  const admin: FastifyPluginAsync = async (app) => {
    await app.register(adminRoutes, {
      config,
      metrics: services.metrics,
      connectorDb: services.connectorDb,
      licensingDb: services.licensingDb,
      queues: [runtime.queues.feeds, runtime.queues.provisioning, runtime.queues.delivery],
      now: () => services.clock.now(),
    });
  };
  return [push, server, admin];
}

/** What every role needs to work: both databases migrated and Redis answering. */
export function serviceReadiness(services: Services): ReadinessCheck[] {
  return [
    databaseCheck(services.connectorDb, 'connector'),
    databaseCheck(services.licensingDb, 'licensing'),
    redisCheck(services.redis),
  ];
}

/**
 * Starts the api; returns its base URL. `port` overrides the configured one. `/readyz` runs
 * the checks in `readiness` as the array holds them at each request, so a caller may add the
 * workers' checks after the api started (role all).
 */
export async function startApi(
  services: Services,
  runtime: IntakeRuntime,
  licensing: LicensingRuntime,
  port?: number,
  readiness: ReadinessCheck[] = serviceReadiness(services),
): Promise<string> {
  const { http } = services.config.deployment;
  const app = await buildApi({
    log: services.log,
    metrics: services.metrics,
    bodyLimitBytes: http.bodyLimitBytes,
    trustProxy: http.trustProxy,
    readiness,
    routes: apiRoutes(services, runtime, licensing),
  });
  await app.listen({ host: http.host, port: port ?? http.port });
  services.lifecycle.onShutdown('api', () => app.close());
  return listeningUrl(app.server.address(), http.host, port ?? http.port);
}

function listeningUrl(address: unknown, host: string, fallbackPort: number): string {
  const actual = address as { port?: number } | null;
  return `http://${host}:${actual?.port ?? fallbackPort}`;
}

/**
 * The ops listener of a worker or scheduler process: /healthz, /readyz and /metrics only, on
 * `http.host` and `port` (default `http.opsPort`; 0: any free port), so Prometheus scrapes
 * the metrics these processes record and a supervisor probes them. Returns its base URL.
 */
export async function startOps(
  services: Services,
  readiness: ReadinessCheck[],
  port?: number,
): Promise<string> {
  const { http } = services.config.deployment;
  const app = await buildApi({
    log: services.log,
    metrics: services.metrics,
    bodyLimitBytes: http.bodyLimitBytes,
    readiness,
  });
  await app.listen({ host: http.host, port: port ?? http.opsPort });
  services.lifecycle.onShutdown('ops', () => app.close());
  const url = listeningUrl(app.server.address(), http.host, port ?? http.opsPort);
  services.log.info({ opsUrl: url }, 'ops listener started');
  return url;
}

/**
 * Starts the queue workers of every capability on one blocking connection. Returns their
 * readiness checks: each queue they consume is not stalled, each local worker runs.
 */
export async function startWorkers(
  services: Services,
  runtime: IntakeRuntime,
  licensing: LicensingRuntime,
): Promise<ReadinessCheck[]> {
  const { config, log, metrics } = services;
  const connection = await connectRedis(config.deployment.redis, 'worker', log);
  const { prefix } = config.deployment.redis;
  const db = services.connectorDb;
  const { client, vault } = licensing;
  const feeds = startFeedsWorker({
    config,
    intake: runtime.intake,
    intakeDeps: runtime.deps,
    log,
    connection,
    prefix,
  });
  const provisioning = startProvisioningWorker({
    config,
    db,
    client,
    vault,
    queues: runtime.queues,
    log,
    metrics,
    connection,
    prefix,
    now: () => services.clock.now(),
  });
  const delivery = startDeliveryWorker({
    config,
    db,
    vault,
    log,
    metrics,
    connection,
    prefix,
    now: () => services.clock.now(),
    report: (ispId, delivered) =>
      client.reportDeliveries(ispId, {
        deliveries: delivered.map((d) => ({ ...d, deliveredAt: d.deliveredAt.toISOString() })),
      }),
  });
  services.lifecycle.onShutdown('workers', async () => {
    await Promise.all([feeds.close(), provisioning.close(), delivery.close()]);
    connection.disconnect();
  });
  const { stalledQueueAfterS } = config.deployment.health;
  return [
    ...queueList(runtime.queues).map((queue) => queueStallCheck(queue, stalledQueueAfterS)),
    ...[feeds, provisioning.worker, delivery.worker].map(workerCheck),
  ];
}

/**
 * Starts the schedules of every capability: feed polling, outbox sweep, period renewal, the
 * billing close (with the vendor invoice) and the export of invoice lines to the ISPs.
 */
export async function startScheduler(
  services: Services,
  runtime: IntakeRuntime,
  licensing: LicensingRuntime,
): Promise<void> {
  const scheduler = startIntakeScheduler({
    config: services.config,
    db: services.connectorDb,
    queues: runtime.queues,
    log: services.log,
  });
  const renewal = startRenewalScheduler({
    config: services.config,
    licensing: licensing.server,
    log: services.log,
  });
  const billingClose = startBillingCloseScheduler({
    config: services.config,
    licensing: licensing.server,
    log: services.log,
    closeOptions: { afterFreeze: vendorDocumentsHook(licensing.server) },
  });
  const billingExport = startBillingExportScheduler({
    config: services.config,
    db: services.connectorDb,
    log: services.log,
    metrics: services.metrics,
    source: licensing.billing,
  });
  const reconciliation = startReconciliationScheduler({
    config: services.config,
    db: services.connectorDb,
    log: services.log,
    metrics: services.metrics,
    source: licensing.billing,
  });
  services.lifecycle.onShutdown('scheduler', async () => {
    await Promise.all([
      scheduler.stop(),
      renewal.stop(),
      billingClose.stop(),
      billingExport.stop(),
      reconciliation.stop(),
    ]);
  });
}
