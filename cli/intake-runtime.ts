/**
 * Wires the intake for a process: ledger, feed files, metrics, the intake service, the
 * producer-side queues and the outbox flush that follows every applied feed.
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FeedLedger } from '../connectors/feed-ledger.js';
import { FeedFiles } from '../connectors/intake/feed-files.js';
import { createIntakeMetrics } from '../connectors/intake/intake-metrics.js';
import { type IntakeDeps, IntakeService } from '../connectors/intake/intake-service.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { flushOutbox } from '../queue/outbox.js';
import { openQueues, type Queues } from '../queue/queues.js';
import type { Services } from './services.js';

export interface IntakeRuntime {
  deps: IntakeDeps;
  intake: IntakeService;
  ledger: FeedLedger;
  queues: Queues;
}

/** Wires the intake after mirroring the configured ISPs into the connector database. */
export async function openIntake(services: Services): Promise<IntakeRuntime> {
  const { config, connectorDb: db, log } = services;
  await syncIsps(db, config.isps, log);
  for (const isp of config.isps.values()) {
    const { transport } = isp.intake;
    // The default inbox is ours to create; a configured one is a mount that must exist.
    const own = join(isp.workDir, 'inbox');
    if (transport.type === 'local' && transport.inbox === own) mkdirSync(own, { recursive: true });
  }
  const queues = openQueues(services.redis, config.deployment.redis.prefix);
  services.lifecycle.onShutdown('queues', () => queues.close());
  const ledger = new FeedLedger(db, () => services.clock.now());
  const files = new FeedFiles(
    (ispId) =>
      config.isps.get(ispId)?.workDir ?? `${config.deployment.paths.dataDir}/isps/${ispId}`,
  );
  const deps: IntakeDeps = {
    db,
    log,
    ledger,
    files,
    metrics: createIntakeMetrics(services.metrics),
    async afterDrain() {
      try {
        await flushOutbox(db, queues, log);
      } catch (err) {
        log.warn({ err }, 'provisioning batches stay in the outbox until redis is back');
      }
    },
  };
  return { deps, intake: new IntakeService(deps, config), ledger, queues };
}
