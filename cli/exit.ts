/**
 * Exit codes and the wrapper every command runs in. 0: success. 1: the command ran and failed
 * (a service down, a bad feed). 2: the command could not start: wrong usage or a config error.
 */
import { CommanderError } from 'commander';
import { ConfigError, isRelaisError } from '../platform/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Raised by a command that has already printed why it failed and only needs an exit code. */
export class ExitRequest extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof ExitRequest) return err.exitCode;
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (err instanceof ConfigError) return EXIT_USAGE;
  return EXIT_FAILURE;
}

/** What a person sees for an error: its code and message, never a stack unless asked. */
export function describeError(err: unknown, verbose = false): string {
  if (isRelaisError(err)) return `${err.code}: ${err.message}`;
  if (verbose && err instanceof Error && err.stack) return err.stack;
  return `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
}
