/**
 * What commands print for people. Results go to stdout; logs go to stderr so that
 * `relais … --json | jq` stays clean.
 */
import type { Command } from 'commander';
import type { RelaisConfig } from '../config/load.js';
import { createLogger, type Logger } from '../platform/logger.js';
import { PERIOD_PATTERN } from '../platform/zoned-time.js';
import { EXIT_USAGE, ExitRequest } from './exit.js';

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

/** Stops a command whose `--period` is not a month written YYYY-MM, with the usage exit code. */
export function requirePeriod(period: string): void {
  if (!PERIOD_PATTERN.test(period)) {
    out(`--period must be a month written YYYY-MM, got "${period}"`);
    throw new ExitRequest(EXIT_USAGE);
  }
}
