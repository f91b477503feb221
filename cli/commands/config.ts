/**
 * `relais config check`: validates relais.yaml and every ISP file, printing all problems at
 * once as `file:line:column path: message`. `relais config schemas`: prints or writes the JSON
 * Schema files editors use to complete configs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ispConfigReference } from '../../config/config-reference.js';
import { buildJsonSchemas, SCHEMAS_DIR } from '../../config/json-schema.js';
import { loadConfig } from '../../config/load.js';
import { formatProblem } from '../../config/yaml-source.js';
import { EXIT_FAILURE, EXIT_USAGE, ExitRequest } from '../exit.js';
import { configOption, out } from '../output.js';

export function registerConfigCommands(program: Command): void {
  const config = program
    .command('config')
    .description('check the configuration and publish its JSON Schemas and reference');

  configOption(config.command('check'))
    .description('validate relais.yaml and every ISP file; print every problem with its line')
    .action((options: { config?: string }) => {
      const { config: loaded, problems } = loadConfig({ file: options.config });
      if (!loaded) {
        for (const problem of problems) out(formatProblem(problem));
        out(`${problems.length} problem(s) found`);
        throw new ExitRequest(EXIT_USAGE);
      }
      const ids = [...loaded.isps.keys()];
      out(`config ok: ${loaded.deployment.configFile}`);
      out(`${ids.length} ISP(s): ${ids.join(', ') || 'none'}`);
    });

  config
    .command('schemas')
    .description('print the JSON Schemas, or write them to schemas/ with --write')
    .option('--write', 'write the files into schemas/')
    .option('--check', 'exit 1 when the files in schemas/ are out of date')
    .action((options: { write?: boolean; check?: boolean }) => {
      const schemas = buildJsonSchemas();
      if (options.check) {
        const stale = Object.entries(schemas).filter(
          ([file, text]) => readOrEmpty(join(SCHEMAS_DIR, file)) !== text,
        );
        for (const [file] of stale) out(`out of date: schemas/${file} (run npm run generate)`);
        if (stale.length > 0) throw new ExitRequest(EXIT_FAILURE);
        out('schemas up to date');
        return;
      }
      if (options.write) {
        mkdirSync(SCHEMAS_DIR, { recursive: true });
        for (const [file, text] of Object.entries(schemas)) {
          writeFileSync(join(SCHEMAS_DIR, file), text);
          out(`wrote schemas/${file}`);
        }
        return;
      }
      out(
        JSON.stringify(
          Object.fromEntries(Object.entries(schemas).map(([f, t]) => [f, JSON.parse(t)])),
          null,
          2,
        ),
      );
    });

  config
    .command('reference')
    .description('print the reference of every ISP config field as Markdown')
    .action(() => {
      process.stdout.write(ispConfigReference());
    });
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
