/**
 * The set-up every command that touches the databases shares: load the config (all problems
 * at once, exit 2), a logger on stderr, a lifecycle so connections close however the command
 * ends, and either the connector database alone or the full services.
 */
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { createDb, type Db } from '../platform/db.js';
import { Lifecycle } from '../platform/lifecycle.js';
import type { Logger } from '../platform/logger.js';
import { commandLogger } from './output.js';
import { assertMigrated, openServices, type Services } from './services.js';

export interface CommandContext {
  config: RelaisConfig;
  log: Logger;
  lifecycle: Lifecycle;
}

async function withContext<T>(
  configFile: string | undefined,
  fn: (ctx: CommandContext) => Promise<T>,
): Promise<T> {
  const config = loadConfigOrThrow({ file: configFile });
  const log = commandLogger(config);
  const lifecycle = new Lifecycle(log, config.deployment.shutdownTimeoutMs);
  try {
    return await fn({ config, log, lifecycle });
  } finally {
    await lifecycle.shutdown('command finished');
  }
}

/** Runs `fn` with the connector database only (listing feeds needs no Redis). */
export function withConnectorDb<T>(
  configFile: string | undefined,
  fn: (ctx: CommandContext & { db: Db }) => Promise<T>,
): Promise<T> {
  return withContext(configFile, async (ctx) => {
    const db = createDb(ctx.config.deployment.mysql, 'connector', ctx.log);
    ctx.lifecycle.onShutdown('mysql', () => db.destroy());
    return fn({ ...ctx, db });
  });
}

/** Runs `fn` with every service, after checking the schema is current. */
export function withServices<T>(
  configFile: string | undefined,
  fn: (services: Services) => Promise<T>,
): Promise<T> {
  return withContext(configFile, async (ctx) => {
    const services = await openServices(ctx.config, ctx.log, ctx.lifecycle);
    await assertMigrated(services);
    return fn(services);
  });
}
