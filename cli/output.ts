/**
 * What commands print for people. Results go to stdout; logs go to stderr so that
 * `relais … --json | jq` stays clean.
 */
import type { Command } from 'commander';
import type { RelaisConfig } from '../config/load.js';
import { createLogger, type Logger } from '../platform/logger.js';

export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Adds the `--config FILE` option every command that reads the config takes. */
export function configOption(command: Command): Command {
  return command.option(
    '-c, --config <file>',
    'path of relais.yaml (default: $RELAIS_CONFIG or config/relais.yaml)',
  );
}

/** A logger for a CLI command: to stderr, pretty on a terminal. */
export function commandLogger(config: RelaisConfig): Logger {
  const { level, pretty } = config.deployment.log;
  return createLogger({ level, pretty, fd: 2 });
}
