/**
 * `relais start [--role all|api|worker|scheduler]`: runs Relais until SIGINT or SIGTERM. The
 * all-in-one role suits one host; the others let api, workers and schedulers scale apart on
 * shared MySQL and Redis.
 */
import { createServer } from 'node:net';
import { type Command, Option } from 'commander';
import { loadConfigOrThrow, type RelaisConfig } from '../../config/load.js';
import type { Clock } from '../../platform/clock.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { createLogger, type Logger } from '../../platform/logger.js';
import { checkEvictionPolicy } from '../../platform/redis.js';
import { type IntakeRuntime, openIntake } from '../intake-runtime.js';
import { type LicensingRuntime, openLicensing, withServerUrl } from '../licensing-runtime.js';
import { configOption } from '../output.js';
import { ROLES, type Role, startApi, startScheduler, startWorkers } from '../roles.js';
import { assertMigrated, openServices, type Services } from '../services.js';

export interface RunningRelais {
  services: Services;
  runtime: IntakeRuntime;
  licensing: LicensingRuntime;
  /** Base URL of the api when this process runs it. */
  apiUrl?: string;
}

/** A port nobody listens on right now, for an api started with port 0. */
async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

/**
 * Starts the given role in this process; the caller decides when to shut down. A `port`
 * given here (0: any free one) also becomes the server URL that links and the connector use,
 * unless relais.yaml names a server URL of its own.
 */
export async function startRelais(
  base: RelaisConfig,
  role: Role,
  log: Logger,
  lifecycle: Lifecycle,
  options: { port?: number; clock?: Clock } = {},
): Promise<RunningRelais> {
  let config = base;
  let port = options.port;
  if (port !== undefined) {
    const { http, server } = base.deployment;
    if (port === 0) port = await freePort(http.host);
    if (server.url === http.publicUrl) config = withServerUrl(base, `http://${http.host}:${port}`);
  }
  const services = await openServices(config, log, lifecycle, options.clock);
  await assertMigrated(services);
  await checkEvictionPolicy(services.redis, log);

  const runtime = await openIntake(services);
  const licensing = openLicensing(services);
  const running: RunningRelais = { services, runtime, licensing };
  if (role === 'all' || role === 'api')
    running.apiUrl = await startApi(services, runtime, licensing, port);
  if (role === 'all' || role === 'worker') await startWorkers(services, runtime, licensing);
  if (role === 'all' || role === 'scheduler') await startScheduler(services, runtime, licensing);
  log.info({ role, isps: [...config.isps.keys()], apiUrl: running.apiUrl }, 'relais started');
  return running;
}

export function registerStartCommand(program: Command): void {
  configOption(program.command('start'))
    .description('run Relais until stopped (SIGINT or SIGTERM stop it gracefully)')
    .addOption(
      new Option('-r, --role <role>', 'what this process runs').choices(ROLES).default('all'),
    )
    .action(async (options: { config?: string; role: Role }) => {
      const config = loadConfigOrThrow({ file: options.config });
      const { level, pretty } = config.deployment.log;
      const log = createLogger({ level, pretty });
      const lifecycle = new Lifecycle(log, config.deployment.shutdownTimeoutMs);
      lifecycle.installSignalHandlers();
      try {
        await startRelais(config, options.role, log, lifecycle);
      } catch (err) {
        await lifecycle.shutdown('start-up failed');
        throw err;
      }
    });
}
