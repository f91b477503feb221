/**
 * A whole Relais (`startRelais`, role all) in the test process, logging into memory: the fault
 * tests read its lines to check what it said, and print its warnings when they fail. Also the
 * way an ISP should drop an export into its inbox (a hidden name, then a rename).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { onTestFailed } from 'vitest';
import { type RunningRelais, startRelais } from '../../cli/commands/start.js';
import type { RelaisConfig } from '../../config/load.js';
import { Lifecycle } from '../../platform/lifecycle.js';
import { createLogger, type LogLevel } from '../../platform/logger.js';
import { problemsIn } from './pipeline-state.js';

export interface LoggedRelais {
  running: RunningRelais;
  lifecycle: Lifecycle;
  /** Every log line Relais wrote, as JSON text. */
  logLines: string[];
}

/** Starts Relais on `config` on a free port; shut it down with `lifecycle.shutdown()`. */
export async function startLoggedRelais(
  config: RelaisConfig,
  options: { level?: LogLevel; schedules?: boolean } = {},
): Promise<LoggedRelais> {
  const logLines: string[] = [];
  const log = createLogger({
    level: options.level ?? 'info',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  });
  const lifecycle = new Lifecycle(log, 10_000);
  const startOptions = options.schedules === false ? { port: 0, schedules: false } : { port: 0 };
  const running = await startRelais(config, 'all', log, lifecycle, startOptions);
  return { running, lifecycle, logLines };
}

/**
 * Call inside a test: on its failure, prints the seed to rerun with and what Relais logged at
 * warn and error.
 */
export function explainFailure(test: string, seed: number, logLines: readonly string[]): void {
  onTestFailed(() => {
    const logged = problemsIn([...logLines]);
    console.error(
      `${test} failed: rerun with RELAIS_CHAOS_SEED=${seed}\nRelais warned:\n${logged}`,
    );
  });
}

/** Writes `name` into `inbox` under a hidden name, then renames it: never seen half-written. */
export function dropInInbox(inbox: string, name: string, bytes: Buffer): void {
  writeFileSync(join(inbox, `.${name}.part`), bytes);
  renameSync(join(inbox, `.${name}.part`), join(inbox, name));
}
