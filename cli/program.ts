/**
 * Builds the `relais` program: every subcommand lives in `commands/`; this file wires them and
 * maps failures to exit codes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { packageRoot } from '../platform/package-root.js';
import { registerBillingCommands } from './commands/billing.js';
import { registerClientCommand } from './commands/client.js';
import { registerConfigCommands } from './commands/config.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerErrorsCommand } from './commands/errors.js';
import { registerFeedsCommands } from './commands/feeds.js';
import { registerIngestCommand } from './commands/ingest.js';
import { registerMigrateCommand } from './commands/migrate.js';
import { registerPeriodCommand } from './commands/period.js';
import { registerPollCommand } from './commands/poll.js';
import { registerQueueCommands } from './commands/queue.js';
import { registerReconcileCommand } from './commands/reconcile.js';
import { registerStartCommand } from './commands/start.js';
import { registerStatusCommand } from './commands/status.js';
import { registerSubscribersCommand } from './commands/subscribers.js';
import { describeError, EXIT_OK, ExitRequest, exitCodeFor } from './exit.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command('relais')
    .description('Relais connects ISP billing systems to the vendor subscription server.')
    .version(version())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerConfigCommands(program);
  registerMigrateCommand(program);
  registerStartCommand(program);
  registerIngestCommand(program);
  registerFeedsCommands(program);
  registerPollCommand(program);
  registerPeriodCommand(program);
  registerBillingCommands(program);
  registerReconcileCommand(program);
  registerStatusCommand(program);
  registerQueueCommands(program);
  registerClientCommand(program);
  registerSubscribersCommand(program);
  registerDemoCommand(program);
  registerErrorsCommand(program);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof CommanderError) && !(err instanceof ExitRequest)) {
      process.stderr.write(`${describeError(err, process.env.RELAIS_DEBUG === '1')}\n`);
    }
    return exitCodeFor(err);
  }
}
