/**
 * `relais demo`: plays Relais on the shipped config with nothing but the local MariaDB and
 * Redis: checks the config, migrates, starts every role in this process, asks the api whether
 * it is ready, prints what happened, and stops. Safe to run again and again.
 */
import type { Command } from 'commander';
import { loadConfigOrThrow } from '../../config/load.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { commandLogger, configOption, out } from '../output.js';
import { printMigrationReports, runMigrations } from './migrate.js';
import { startRelais } from './start.js';

export function registerDemoCommand(program: Command): void {
  configOption(program.command('demo'))
    .description('run the shipped demo ISP end to end on local services and print what happened')
    .action(async (options: { config?: string }) => {
      const config = loadConfigOrThrow({ file: options.config });
      const log = commandLogger(config);
      out(`1. config ok: ${config.deployment.configFile}`);
      for (const isp of config.isps.values()) {
        out(
          `   ISP ${isp.id} (${isp.name}): ${isp.intake.transport.type} transport, ${isp.intake.mode} mode`,
        );
      }

      out('2. migrations');
      printMigrationReports(await runMigrations(config), false);

      const lifecycle = new Lifecycle(log, config.deployment.shutdownTimeoutMs);
      try {
        const running = await startRelais(config, 'all', log, lifecycle, { port: 0 });
        out(`3. relais started (all roles), api at ${running.apiUrl}`);
        const response = await fetch(`${running.apiUrl}/readyz`);
        const body = (await response.json()) as {
          status: string;
          checks: Record<string, { ok: boolean }>;
        };
        const checks = Object.entries(body.checks).map(
          ([name, r]) => `${name} ${r.ok ? 'ok' : 'FAILED'}`,
        );
        out(`   /readyz ${response.status} ${body.status}: ${checks.join(', ')}`);
      } finally {
        await lifecycle.shutdown('demo finished');
      }
      out('4. stopped cleanly. Demo done.');
    });
}
