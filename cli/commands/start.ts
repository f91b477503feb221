/**
 * `relais start [--role all|api|worker|scheduler] [--ops-port N]`: runs Relais until SIGINT or
 * SIGTERM. The all-in-one role suits one host; the others let api, workers and schedulers
 * scale apart on shared MySQL and Redis. The api serves /healthz, /readyz and /metrics on its
 * own port; a worker or scheduler process serves them on its ops port.
 */
import { createServer } from 'node:net';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfigOrThrow, type RelaisConfig } from '../../config/load.js';
import type { Clock } from '../../platform/clock.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { createLogger, type Logger } from '../../platform/logger.js';
import { checkEvictionPolicy } from '../../platform/redis.js';
import { type IntakeRuntime, openIntake } from '../intake-runtime.js';
import { type LicensingRuntime, openLicensing, withServerUrl } from '../licensing-runtime.js';
import { configOption } from '../output.js';
import { registerRelaisMetrics } from '../role-metrics.js';
import {
  ROLES,
  type Role,
  serviceReadiness,
  startApi,
  startOps,
  startScheduler,
  startWorkers,
} from '../roles.js';
import { assertMigrated, openServices, type Services } from '../services.js';

export interface RunningRelais {
  services: Services;
  runtime: IntakeRuntime;
  licensing: LicensingRuntime;
  /** Base URL of the api when this process runs it. */
  apiUrl?: string;
  /** Base URL of the ops listener (/healthz, /readyz, /metrics) of a worker or scheduler. */
  opsUrl?: string;
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

export interface StartOptions {
  port?: number;
  opsPort?: number;
  /** What dates business facts; the system clock unless the demo plays a month. */
  clock?: Clock;
  /** Run the role's schedules (default true); the demo plays them itself, on its clock. */
  schedules?: boolean;
}

/**
 * Starts the given role in this process; the caller decides when to shut down. A `port`
 * given here (0: any free one) also becomes the server URL that links and the connector use,
 * unless relais.yaml names a server URL of its own. `opsPort` (0: any free one) overrides
 * `http.opsPort` for the ops listener of the worker and scheduler roles.
 */
export async function startRelais(
  base: RelaisConfig,
  role: Role,
  log: Logger,
  lifecycle: Lifecycle,
  options: StartOptions = {},
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
  registerRelaisMetrics(services.metrics, runtime.queues);
  // One list for the process: the api (role all) reads it per request, so the workers'
  // checks added below count there too.
  const readiness = serviceReadiness(services);
  if (role === 'all' || role === 'api')
    running.apiUrl = await startApi(services, runtime, licensing, port, readiness);
  if (role === 'all' || role === 'worker')
    readiness.push(...(await startWorkers(services, runtime, licensing)));
  if ((role === 'all' || role === 'scheduler') && options.schedules !== false)
    await startScheduler(services, runtime, licensing);
  if (role === 'worker' || role === 'scheduler')
    running.opsUrl = await startOps(services, readiness, options.opsPort);
  else if (options.opsPort !== undefined)
    log.warn({ role, opsPort: options.opsPort }, 'ops port ignored: the api serves /metrics');
  log.info(
    { role, isps: [...config.isps.keys()], apiUrl: running.apiUrl, opsUrl: running.opsUrl },
    'relais started',
  );
  return running;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535');
  }
  return port;
}

export function registerStartCommand(program: Command): void {
  configOption(program.command('start'))
    .description('run Relais until stopped (SIGINT or SIGTERM stop it gracefully)')
    .addOption(
      new Option('-r, --role <role>', 'what this process runs').choices(ROLES).default('all'),
    )
    .addOption(
      new Option(
        '--ops-port <port>',
        'port of /healthz, /readyz, /metrics for a worker or scheduler (default http.opsPort; 0: any free port, logged)',
      ).argParser(parsePort),
    )
    .action(async (options: { config?: string; role: Role; opsPort?: number }) => {
      const config = loadConfigOrThrow({ file: options.config });
      const { level, pretty } = config.deployment.log;
      const log = createLogger({ level, pretty });
      const lifecycle = new Lifecycle(log, config.deployment.shutdownTimeoutMs);
      lifecycle.installSignalHandlers();
      try {
        await startRelais(config, options.role, log, lifecycle, { opsPort: options.opsPort });
      } catch (err) {
        await lifecycle.shutdown('start-up failed');
        throw err;
      }
    });
}
