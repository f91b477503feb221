/**
 * `relais demo`: plays one whole month of Relais for the example ISPs with nothing but the local
 * MariaDB and Redis, in a few minutes. A simulated clock (`platform/clock.ts`) walks through the
 * month of the sample exports: the ISPs drop their exports day by day (one with a bad row, one
 * held by the safety valve until an operator approves it), subscribers are provisioned, keys
 * reach the customers by e-mail (a local mail sink) or return file, the desktop software of a
 * few customers activates them, one adds a module mid-month, one leaves; then, once the
 * cutoff days have passed, every period is renewed and closed, the vendor's invoices and each
 * ISP's invoice lines are written, and the ISP's own billing export is reconciled against what
 * was activated. It ends with the list of every file it produced (docs/demo.md).
 *
 * Safe to run again and again: files seen before come back as duplicates and change nothing,
 * closed periods stay closed and their files come out the same.
 */
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfigOrThrow, type RelaisConfig } from '../../config/load.js';
import { nextPeriod } from '../../licensing/periods.js';
import { SimulatedClock } from '../../platform/clock.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { createLogger, type LogLevel } from '../../platform/logger.js';
import { packageRoot } from '../../platform/package-root.js';
import { approveHeld, playDay, sampleDays } from '../demo-intake.js';
import {
  type Activation,
  activateCustomers,
  checkInAgain,
  producedBeforeMonthEnd,
  showDeliveries,
  showProvisioning,
} from '../demo-licensing.js';
import {
  addressInSample,
  localMailIsps,
  type MailSink,
  startMailSink,
  withMailSink,
} from '../demo-mail.js';
import { type Produced, playMonthEnd } from '../demo-month-end.js';
import { configOption, out } from '../output.js';
import { printMigrationReports, runMigrations } from './migrate.js';
import { type RunningRelais, startRelais } from './start.js';

/**
 * The customers whose desktop software activates its key on the 5th, by ISP. demo-fai's first
 * adds the backup option on the 15th and its second leaves that day; alpha-telecom's second is
 * one of the three its export of the 16th no longer lists (test/generators/samples.ts).
 */
export const DEMO_ACTIVATIONS: readonly Activation[] = [
  { ispId: 'demo-fai', ref: '10000001' },
  { ispId: 'demo-fai', ref: '10000004' },
  { ispId: 'demo-fai', ref: '10000008' },
  { ispId: 'demo-fai', ref: '10000013' },
  { ispId: 'alpha-telecom', ref: '10000001' },
  { ispId: 'alpha-telecom', ref: '10000003' },
  { ispId: 'alpha-telecom', ref: '10000006' },
  { ispId: 'bretagne-net', ref: '10000001' },
  { ispId: 'bretagne-net', ref: '10000005' },
  { ispId: 'bretagne-net', ref: '10000006' },
];

/** The nightly exports are picked up at 07:00 in Paris; approvals come at 10:30. */
const at = (day: string, time: string) => new Date(`${day}T${time}Z`);
const EXPORTS_AT = '06:00:00';
const APPROVAL_AT = '09:30:00';
const ACTIVATION_DAY = '05';

/** The morning after the last ISP's cutoff days, on the demo's clock. */
function monthEndOf(config: RelaisConfig, period: string): Date {
  const cutoff = Math.max(0, ...[...config.isps.values()].map((i) => i.billing?.cutoffDays ?? 0));
  const day = String(cutoff + 1).padStart(2, '0');
  return at(`${nextPeriod(period)}-${day}`, '08:00:00');
}

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

/** `--activate demo-fai:10000001,bretagne-net:10000005`: who activates, for other samples. */
export function parseActivations(value: string): Activation[] {
  return value.split(',').map((pair) => {
    const match = /^([a-z0-9][a-z0-9-]*):(\S+)$/.exec(pair.trim());
    if (!match) throw new InvalidArgumentError(`expected isp:ref[,isp:ref...], got "${pair}"`);
    return { ispId: match[1] as string, ref: match[2] as string };
  });
}

interface DemoOptions {
  config?: string;
  samples?: string;
  activate?: Activation[];
  serve?: boolean;
  logLevel: LogLevel;
}

/** The month, step by step on the simulated clock; returns the files produced. */
async function playMonth(
  running: RunningRelais,
  clock: SimulatedClock,
  samplesDir: string,
  mail: MailSink | undefined,
  activations: readonly Activation[],
): Promise<Produced[]> {
  const { config } = running.services;
  const days = sampleDays([...config.isps.values()], samplesDir);
  const first = [...days.keys()][0];
  if (!first) {
    out(`   no dated sample exports in ${samplesDir}: nothing to play`);
    return [];
  }
  const period = first.slice(0, 7);
  const mailbox = {
    dir: mail?.dir ?? '',
    addressOf: (isp: { id: string }, ref: string) => addressInSample(samplesDir, isp.id, ref),
  };
  let activated = false;
  let step = 4;
  for (const [day, drops] of days) {
    if (!activated && day.slice(8) > ACTIVATION_DAY) {
      clock.set(at(`${period}-${ACTIVATION_DAY}`, '18:00:00'));
      out(
        `${step++}. ${period}-${ACTIVATION_DAY}: customers install the software and activate their keys`,
      );
      await activateCustomers(running, activations, mailbox);
      activated = true;
    }
    clock.set(at(day, EXPORTS_AT));
    out(`${step++}. ${day}: the ISPs drop their nightly exports`);
    const held = await playDay(running, drops, samplesDir);
    for (const feed of held) {
      clock.set(at(day, APPROVAL_AT));
      await approveHeld(running, feed);
    }
    await showProvisioning(running);
    await showDeliveries(running);
  }
  const monthEnd = monthEndOf(config, period);
  clock.set(monthEnd);
  out(
    `${step++}. ${monthEnd.toISOString().slice(0, 10)}: the cutoff days have passed; month end of ${period}`,
  );
  const produced = [...producedBeforeMonthEnd(running, mail?.dir)];
  produced.push(...(await playMonthEnd(running, period, samplesDir)));
  const firstCustomer = activations[0];
  if (firstCustomer) {
    out(`${step++}. the first customer's software checks in after the renewal`);
    await checkInAgain(running, firstCustomer);
  }
  return produced;
}

function printProduced(produced: readonly Produced[], apiUrl: string, serving: boolean): void {
  out('Files produced:');
  const width = Math.max(...produced.map((p) => p.what.length));
  for (const p of produced) out(`   ${p.what.padEnd(width)}  ${p.path}`);
  out('Operations page:');
  out(`   ${apiUrl}/admin (users in relais.yaml, admin.users; demo: operator / demo-operator)`);
  out(`   queue dashboard ${apiUrl}/admin/queues`);
  if (!serving)
    out('   run `npm run demo -- --serve` (or `relais start`) to keep the api up and open it');
}

export function registerDemoCommand(program: Command): void {
  configOption(program.command('demo'))
    .description('play one month of the example ISPs end to end on local services')
    .option('--samples <dir>', 'folder of sample exports, one subfolder per ISP id')
    .option(
      '--activate <isp:ref,...>',
      'customers whose software activates its key on the 5th (default: ten of the shipped samples)',
      parseActivations,
    )
    .option('--serve', 'keep the api running on its configured port afterwards (Ctrl-C stops)')
    .addOption(
      new Option('--log-level <level>', 'log lines on stderr from this level up')
        .choices(['fatal', 'error', 'warn', 'info', 'debug'])
        .default('warn'),
    )
    .action(async (options: DemoOptions) => {
      let config = loadConfigOrThrow({ file: options.config });
      const log = createLogger({
        level: options.logLevel,
        pretty: config.deployment.log.pretty,
        fd: 2,
      });
      const samplesDir = options.samples ?? join(packageRoot(), 'config/samples');
      out(`1. config ok: ${config.deployment.configFile}`);
      for (const isp of config.isps.values()) {
        out(
          `   ISP ${isp.id} (${isp.name}): ${isp.intake.format.type} over ${isp.intake.transport.type} transport, ${isp.intake.mode} mode, keys by ${isp.delivery.mode}`,
        );
      }

      out('2. migrations');
      printMigrationReports(await runMigrations(config), false);

      const lifecycle = new Lifecycle(log, config.deployment.shutdownTimeoutMs);
      let mail: MailSink | undefined;
      try {
        if (localMailIsps(config).length > 0) {
          const dir = join(config.deployment.paths.dataDir, 'demo', 'mailboxes');
          mail = await startMailSink(dir);
          const sink = mail;
          lifecycle.onShutdown('mail sink', () => sink.close());
          config = withMailSink(config, mail.port);
        }
        const clock = new SimulatedClock();
        const port = options.serve ? undefined : 0;
        // The demo plays the schedules itself, on its clock: polls, closes, exports, reconciliation.
        const running = await startRelais(config, 'all', log, lifecycle, {
          port,
          clock,
          schedules: false,
        });
        const apiUrl = running.apiUrl as string;
        out(`3. relais started (api and workers; the demo plays the schedules), api at ${apiUrl}`);
        if (mail) out(`   customers' mailboxes: a local mail sink on port ${mail.port}`);
        await printReadiness(apiUrl);

        const activations = options.activate ?? DEMO_ACTIVATIONS;
        const produced = await playMonth(running, clock, samplesDir, mail, activations);
        printProduced(produced, apiUrl, options.serve ?? false);
        if (options.serve) {
          out('Serving; Ctrl-C stops.');
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        }
      } finally {
        await lifecycle.shutdown('demo finished');
      }
      out('Stopped cleanly. Demo done.');
    });
}
