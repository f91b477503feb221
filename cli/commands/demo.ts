/**
 * `relais demo`: plays Relais on the shipped config with nothing but the local MariaDB and
 * Redis: checks the config, migrates, starts every role in this process, plays the sample
 * exports of the example ISPs through their inboxes, provisions the subscription server,
 * hands the keys over, activates one with the reference client, prints what happened, and
 * stops. Safe to
 * run again and again: files seen before come back as duplicates and change nothing.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfigOrThrow } from '../../config/load.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { packageRoot } from '../../platform/package-root.js';
import { playSampleFeeds } from '../demo-intake.js';
import { playDesktopClient, showDeliveries, showProvisioning } from '../demo-licensing.js';
import { commandLogger, configOption, out } from '../output.js';
import { printMigrationReports, runMigrations } from './migrate.js';
import { startRelais } from './start.js';

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

        out('   see every feed: relais feeds list; one in full: relais feeds show FEED_ID');

        out('5. provisioning: the worker sends the batches to the subscription server');
        await showProvisioning(running);
        out('6. delivery: keys and download links handed to each ISP');
        await showDeliveries(running);
        out('7. the desktop software (reference client) activates a key');
        await playDesktopClient(running);
      } finally {
        await lifecycle.shutdown('demo finished');
      }
      out('8. stopped cleanly. Demo done.');
    });
}
