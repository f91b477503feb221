/**
 * The two processes of the provisioning benchmark (bench/licensing.ts), run from the compiled
 * code under plain node as a split deployment runs them: `api` (the subscription server's
 * provisioning routes) and `worker` (the connector's provisioning worker). Two processes, so the
 * server and the connector each get a core, and each one's peak RSS is its own.
 *
 * `node dist/bench/licensing-roles.js api <relais.yaml>` → IPC `{ port }`
 * `node dist/bench/licensing-roles.js worker <relais.yaml> <serverUrl> <concurrency>` → IPC
 * `{ ready: true }`. Both stop on the IPC message `stop`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Redis } from 'ioredis';
import { provisioningRoutes } from '../api/provisioning.routes.js';
import { buildApi } from '../api/server.js';
import { openServices } from '../cli/services.js';
import { loadConfigOrThrow } from '../config/load.js';
import { openVault } from '../connectors/vault.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { openKeystore } from '../licensing/keystore.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { createLogger } from '../platform/logger.js';
import { createLicensingClient } from '../queue/licensing-client.js';
import { startProvisioningWorker } from '../queue/provisioning.worker.js';
import { openQueues } from '../queue/queues.js';

const [role, configFile, serverUrl, concurrency] = process.argv.slice(2);
const config = loadConfigOrThrow({ file: configFile as string, env: {} });
const log = createLogger({
  level: (process.env.BENCH_LOG_LEVEL as 'info' | undefined) ?? 'warn',
  fd: 2,
  pretty: false,
});
const lifecycle = new Lifecycle(log, 30_000);
const services = await openServices(config, log, lifecycle);
const keystore = openKeystore(config.deployment.signing.keysDir);
const closers: (() => Promise<void>)[] = [];

if (role === 'api') {
  const deps: LicensingDeps = {
    config,
    db: services.licensingDb,
    redis: services.redis,
    keystore,
    log,
    metrics: services.metrics,
    now: () => new Date(),
  };
  const routes: FastifyPluginAsync = async (app) => {
    await app.register(provisioningRoutes, { deps });
  };
  const app = await buildApi({
    log,
    metrics: services.metrics,
    readiness: [],
    bodyLimitBytes: 16 * 1024 * 1024,
    routes: [routes],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => app.close());
  const address = app.server.address();
  process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
} else if (role === 'worker') {
  const connection = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });
  const queues = openQueues(services.redis, config.deployment.redis.prefix);
  const worker = startProvisioningWorker({
    config,
    db: services.connectorDb,
    client: createLicensingClient({
      baseUrl: serverUrl as string,
      tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
    }),
    vault: openVault(config.deployment.signing.keysDir),
    queues,
    log,
    metrics: services.metrics,
    connection,
    prefix: config.deployment.redis.prefix,
    concurrency: Number(concurrency),
  });
  closers.push(async () => {
    await worker.close();
    await queues.close();
    connection.disconnect();
  });
  process.send?.({ ready: true });
} else {
  throw new Error(`unknown role ${role}`);
}

process.on('message', async (message) => {
  if (message !== 'stop') return;
  for (const close of closers) await close();
  await lifecycle.shutdown('bench done');
  process.exit(0);
});
