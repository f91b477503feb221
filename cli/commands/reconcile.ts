/**
 * `relais reconcile --isp ID --period YYYY-MM [FILE]`: matches the ISP's billing export of a
 * period against the subscriber map and the vendor's rated lines, and writes the report (CSV,
 * rejects CSV, HTML) under the ISP's working folder. Without FILE, the newest export matching
 * `billing.reconciliation.source.pattern` is fetched from the configured inbox. Safe to run
 * again: the same inputs rewrite the same files.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CATEGORIES } from '../../billing/reconciliation/classify.js';
import { fetchNewestExport } from '../../billing/reconciliation/export-source.js';
import {
  reconcilePeriod,
  reconciliationSettingsOf,
} from '../../billing/reconciliation/reconcile.js';
import { recordReconciliationRun } from '../../billing/reconciliation/runs.js';
import { ConfigError } from '../../platform/errors.js';
import { vendorLinesFor } from '../billing-lines.js';
import { withServices } from '../command-context.js';
import { EXIT_USAGE, ExitRequest } from '../exit.js';
import { configOption, out, requirePeriod } from '../output.js';
import { progressBar } from '../progress.js';

interface ReconcileOptions {
  config?: string;
  isp: string;
  period: string;
  json?: boolean;
}

export function registerReconcileCommand(program: Command): void {
  configOption(program.command('reconcile'))
    .argument('[file]', 'the export to reconcile (default: the newest in the configured inbox)')
    .description("match an ISP's billing export of a period against provisioning and activation")
    .requiredOption('--isp <id>', 'ISP id')
    .requiredOption('--period <YYYY-MM>', 'the month the export bills')
    .option('--json', 'print the result as one JSON object')
    .action(async (file: string | undefined, options: ReconcileOptions) => {
      requirePeriod(options.period);
      if (file !== undefined && !existsSync(file)) {
        out(`no such file: ${file}`);
        throw new ExitRequest(EXIT_USAGE);
      }
      await withServices(options.config, async (services) => {
        const isp = services.config.isps.get(options.isp);
        if (!isp) {
          throw new ConfigError('ISP_UNKNOWN', `no ISP config named ${options.isp}`, {
            isp: options.isp,
          });
        }
        const settings = reconciliationSettingsOf(isp);
        mkdirSync(isp.workDir, { recursive: true });
        const downloads = mkdtempSync(join(isp.workDir, 'reconcile-'));
        try {
          const source = file
            ? { path: resolve(file), fileName: basename(file) }
            : await fetchNewestExport(isp, settings.source, downloads, services.log);
          // The export's length is unknown until read: the bar counts lines, then refs.
          const bar = progressBar(!options.json);
          let result: Awaited<ReturnType<typeof reconcilePeriod>>;
          try {
            result = await reconcilePeriod(
              { db: services.connectorDb, log: services.log, metrics: services.metrics },
              {
                isp,
                period: options.period,
                file: source.path,
                fileName: source.fileName,
                // Wired by the billing client: the vendor's rated lines of the period.
                vendorLines: vendorLinesFor(services, isp, options.period),
                onProgress: (p) =>
                  bar.update(
                    p.count,
                    p.count,
                    p.phase === 'reading' ? 'reading export lines' : 'matching refs',
                  ),
              },
            );
          } finally {
            bar.stop();
          }
          await recordReconciliationRun(services.connectorDb, result);
          if (options.json) {
            out(JSON.stringify(result));
            return;
          }
          out(
            `${isp.id} ${options.period}: ${result.fileName}, ${result.exportLines} lines read, ${result.rejectedLines} rejected`,
          );
          for (const category of CATEGORIES) {
            out(`  ${category.padEnd(22)} ${result.counts[category]}`);
          }
          out(`report: ${result.paths.html}`);
          out(`        ${result.paths.csv}`);
          out(`        ${result.paths.rejects}`);
        } finally {
          rmSync(downloads, { recursive: true, force: true });
        }
      });
    });
}
