/** `relais errors [CODE]`: what an error code means and what to do about it. */
import type { Command } from 'commander';
import { ERROR_CODES, isErrorCode } from '../../platform/error-codes.js';
import { renderErrorsMarkdown } from '../../platform/error-docs.js';
import { EXIT_USAGE, ExitRequest } from '../exit.js';
import { out } from '../output.js';

export function registerErrorsCommand(program: Command): void {
  program
    .command('errors')
    .argument('[code]', 'one error code, e.g. CONFIG_INVALID')
    .description('explain error codes: meaning and what to do')
    .option('--markdown', 'print the whole table as Markdown (docs/errors.md)')
    .action((code: string | undefined, options: { markdown?: boolean }) => {
      if (options.markdown) {
        process.stdout.write(renderErrorsMarkdown());
        return;
      }
      if (code !== undefined) {
        if (!isErrorCode(code)) {
          out(`unknown error code ${code}`);
          throw new ExitRequest(EXIT_USAGE);
        }
        const info = ERROR_CODES[code];
        out(`${code} (HTTP ${info.httpStatus})`);
        out(`  meaning: ${info.meaning}`);
        out(`  to do:   ${info.action}`);
        return;
      }
      for (const [name, info] of Object.entries(ERROR_CODES))
        out(`${name.padEnd(32)} ${info.meaning}`);
    });
}
