/**
 * `relais demo`: plays Relais on the shipped config with nothing but the local MariaDB and
 * Redis: checks the config, migrates, starts every role in this process, plays the sample
 * exports of the example ISPs through their inboxes, prints what happened, and stops. Safe to
 * run again and again: files seen before come back as duplicates and change nothing.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfigOrThrow } from '../../config/load.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { packageRoot } from '../../platform/package-root.js';
import { playSampleFeeds } from '../demo-intake.js';
import { commandLogger, configOption, out } from '../output.js';
import { printMigrationReports, runMigrations } from './migrate.js';
import { type RunningRelais, startRelais } from './start.js';

async function printReadiness(apiUrl: string): Promise<void> {
  const response = await fetch(`${apiUrl}/readyz`);
  const body = (await response.json()) as {
    status: string;
    checks: Record<string, { ok: boolean }>;
  };
  const checks = Object.entries(body.checks).map(
    ([name, r]) => `${name} ${r.ok ? 'ok' : 'FAILED'}`,
  );
  out(`   /readyz ${response.status} ${body.status}: ${checks.join(', ')}`);
}

/** What waits for the subscription server: batches per ISP, and the queue's job counts. */
async function printProvisioningBacklog(running: RunningRelais): Promise<void> {
  const rows = (await running.services
    .connectorDb('provisioning_batches')
    .select('isp_id')
    .count({ batches: '*' })
    .sum({ commands: 'command_count' })
    .groupBy('isp_id')
    .orderBy('isp_id')) as { isp_id: string; batches: number; commands: string | number }[];
  for (const row of rows) {
    out(`   ${row.isp_id}: ${Number(row.commands)} commands in ${row.batches} batch(es)`);
  }
  const counts = await running.runtime.queues.provisioning.getJobCounts(
    'waiting',
    'active',
    'completed',
    'failed',
  );
  out(
    `   provisioning queue: ${counts.waiting} waiting, ${counts.active} active, ${counts.completed} completed, ${counts.failed} failed`,
  );
  out('   (commands carry subscriber ids and modules only; they wait for the subscription server)');
}

export function registerDemoCommand(program: Command): void {
  configOption(program.command('demo'))
    .description('run the example ISPs end to end on local services and print what happened')
    .option('--samples <dir>', 'folder of sample exports, one subfolder per ISP id')
    .action(async (options: { config?: string; samples?: string }) => {
      const config = loadConfigOrThrow({ file: options.config });
      const log = commandLogger(config);
      out(`1. config ok: ${config.deployment.configFile}`);
      for (const isp of config.isps.values()) {
        out(
          `   ISP ${isp.id} (${isp.name}): ${isp.intake.format.type} over ${isp.intake.transport.type} transport, ${isp.intake.mode} mode`,
        );
      }

      out('2. migrations');
      printMigrationReports(await runMigrations(config), false);

      const lifecycle = new Lifecycle(log, config.deployment.shutdownTimeoutMs);
      try {
        const running = await startRelais(config, 'all', log, lifecycle, { port: 0 });
        out(`3. relais started (all roles), api at ${running.apiUrl}`);
        await printReadiness(running.apiUrl as string);

        out('4. feeds: sample exports dropped into the ISP inboxes, picked up by polls');
        await playSampleFeeds(running, options.samples ?? join(packageRoot(), 'config/samples'));

        out('5. provisioning backlog');
        await printProvisioningBacklog(running);
        out('   see every feed: relais feeds list; one in full: relais feeds show FEED_ID');
      } finally {
        await lifecycle.shutdown('demo finished');
      }
      out('6. stopped cleanly. Demo done.');
    });
}
