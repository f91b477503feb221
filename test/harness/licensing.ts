/**
 * The subscription server's dependencies for a test context, as `cli/licensing-runtime.ts`
 * builds them for a process: the context's licensing database and Redis, the deployment's
 * keystore, a silent log and a registry of its own unless the test brings them.
 */
import type { LicensingDeps } from '../../licensing/context.js';
import { openKeystore } from '../../licensing/keystore.js';
import { silentLogger } from '../../platform/logger.js';
import { createMetrics } from '../../platform/metrics.js';
import type { TestContext } from './context.js';

export function licensingDepsOf(
  ctx: TestContext,
  overrides: Partial<Omit<LicensingDeps, 'db' | 'redis'>> = {},
): LicensingDeps {
  const config = overrides.config ?? ctx.config;
  return {
    config,
    db: ctx.licensingDb,
    redis: ctx.redis,
    keystore: overrides.keystore ?? openKeystore(config.deployment.signing.keysDir),
    log: overrides.log ?? silentLogger(),
    metrics: overrides.metrics ?? createMetrics({ defaultMetrics: false }),
    now: overrides.now ?? (() => new Date()),
  };
}
