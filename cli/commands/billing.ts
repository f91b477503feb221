/**
 * `relais billing export --isp ID --period YYYY-MM`: hands an ISP the invoice lines of a
 * closed period in its own format, delivered to its outbox or pushed to its billing API. The
 * subscription server must be reachable (`relais start`), as for every connector call. Safe to
 * run again: a file delivered with the same content is skipped, a push already completed is
 * not repeated.
 */
import type { Command } from 'commander';
import { exportInvoiceLines } from '../../billing/export.js';
import { openKeystore } from '../../licensing/keystore.js';
import { RequestError } from '../../platform/errors.js';
import { withServices } from '../command-context.js';
import { billingClientFor } from '../licensing-runtime.js';
import { configOption, out, requirePeriod } from '../output.js';
import { progressBar } from '../progress.js';

export function registerBillingCommands(program: Command): void {
  const billing = program.command('billing').description('month-end outputs for the ISPs');

  configOption(billing.command('export'))
    .description(
      "write a closed period's invoice lines in the ISP's format and deliver them (outbox or HTTP push)",
    )
    .requiredOption('--isp <id>', 'ISP id')
    .requiredOption('--period <YYYY-MM>', 'the closed month')
    .option('--json', 'print the result as one JSON object')
    .action(async (options: { config?: string; isp: string; period: string; json?: boolean }) => {
      requirePeriod(options.period);
      await withServices(options.config, async (services) => {
        const { config } = services;
        const isp = config.isps.get(options.isp);
        if (!isp) throw new RequestError('ISP_UNKNOWN', `no ISP ${options.isp} in this deployment`);
        const source = billingClientFor(config, openKeystore(config.deployment.signing.keysDir));
        const bar = progressBar(!options.json);
        let result: Awaited<ReturnType<typeof exportInvoiceLines>>;
        try {
          result = await exportInvoiceLines(
            { db: services.connectorDb, log: services.log, source },
            isp,
            options.period,
            { onProgress: (p) => bar.update(p.lines, p.total, `exporting ${options.period}`) },
          );
        } finally {
          bar.stop();
        }
        if (options.json) {
          out(JSON.stringify(result));
          return;
        }
        out(
          `${isp.id} ${options.period}: ${result.lines} invoice lines, total ${result.totalAmount}`,
        );
        if (result.file) {
          for (const d of result.file.delivered) out(`   ${d.name} ${d.outcome} to ${d.target}`);
        } else if (result.push === 'already') out('   pushed before; nothing sent');
        else if (result.push) {
          out(`   pushed in ${result.push.chunks} chunks (${result.push.requests} requests)`);
        }
      });
    });
}
