/**
 * `relais period renew --isp ID --period YYYY-MM`: closes a period by hand, as the renewal
 * schedule does after midnight on the 1st. Safe to run again: a closed period is a no-op and a
 * close that was interrupted carries on where it stopped.
 *
 * `relais period close --isp ID --period YYYY-MM`: the billing close by hand, as the billing
 * schedule does once the period's cutoff days have passed: rates activated licences and
 * freezes the lines. Safe to run again in the same way.
 */
import type { Command } from 'commander';
import { closeAndInvoice } from '../../licensing/billing/month-end.js';
import { renewPeriod } from '../../licensing/renewal.js';
import { withServices } from '../command-context.js';
import { licensingServerDeps } from '../licensing-runtime.js';
import { configOption, out, requirePeriod } from '../output.js';
import { progressBar } from '../progress.js';

export function registerPeriodCommand(program: Command): void {
  const period = program.command('period').description('close periods: renew or lapse licences');

  configOption(period.command('renew'))
    .description(
      'close a past period of an ISP: renew active licences, hold suspended ones, lapse cancelled ones',
    )
    .requiredOption('--isp <id>', 'ISP id')
    .requiredOption('--period <YYYY-MM>', 'the month to close, in the ISP time zone')
    .action(async (options: { config?: string; isp: string; period: string }) => {
      requirePeriod(options.period);
      await withServices(options.config, async (services) => {
        const deps = licensingServerDeps(services);
        const bar = progressBar(true);
        let result: Awaited<ReturnType<typeof renewPeriod>>;
        try {
          result = await renewPeriod(deps, options.isp, options.period, {
            onProgress: (p) => bar.update(p.scanned, p.total, `closing ${p.period}`),
          });
        } finally {
          bar.stop();
        }
        const counts = `${result.renewed} renewed, ${result.held} held, ${result.lapsed} lapsed`;
        out(
          result.alreadyClosed
            ? `${options.isp} ${options.period} was already closed (${counts}); nothing changed`
            : `${options.isp} ${options.period} closed: ${counts}`,
        );
      });
    });

  configOption(period.command('close'))
    .description(
      'billing close of a past period of an ISP: rate activated licences, freeze the rated lines, emit adjustments for late events',
    )
    .requiredOption('--isp <id>', 'ISP id')
    .requiredOption('--period <YYYY-MM>', 'the month to close, in the ISP time zone')
    .option('--force', 'close before period end + cutoffDays (late events then become adjustments)')
    .action(async (options: { config?: string; isp: string; period: string; force?: boolean }) => {
      requirePeriod(options.period);
      await withServices(options.config, async (services) => {
        const deps = licensingServerDeps(services);
        const bar = progressBar(true);
        let result: Awaited<ReturnType<typeof closeAndInvoice>>;
        try {
          result = await closeAndInvoice(deps, options.isp, options.period, {
            force: options.force ?? false,
            onProgress: (p) => bar.update(p.subscribers, p.subscribers, `rating ${p.period}`),
          });
        } finally {
          bar.stop();
        }
        const { summary } = result;
        const adjustments = summary.totals
          .filter((t) => t.kind === 'adjustment')
          .reduce((n, t) => n + t.lines, 0);
        const counts = `${summary.lineCount} lines (${adjustments} adjustments), total ${summary.total} ${summary.currency}`;
        out(
          result.outcome === 'already-closed'
            ? `${options.isp} ${options.period} billing was already closed at ${result.closedAt.toISOString()} (${counts}); nothing changed`
            : `${options.isp} ${options.period} billing closed: ${counts}`,
        );
        const { documents } = result;
        const issued = [documents.invoice, documents.creditNote].filter((d) => d !== undefined);
        for (const d of issued)
          out(`   ${d.number} of ${d.issueDate}: ${d.payable} ${summary.currency} payable`);
        if (documents.noInvoiceReason) out(`   no invoice: ${documents.noInvoiceReason}`);
        out(
          `   vendor documents in ${documents.dir}: ${documents.files.map((f) => f.name).join(', ')}`,
        );
      });
    });
}
