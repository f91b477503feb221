/**
 * `relais config check`: validates relais.yaml and every ISP file, printing all problems at
 * once as `file:line:column path: message`. `relais config schemas`: prints or writes the JSON
 * Schema files editors use to complete configs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { Command } from 'commander';
import { ispConfigReference } from '../../config/config-reference.js';
import { buildJsonSchemas, SCHEMAS_DIR } from '../../config/json-schema.js';
import { loadConfig } from '../../config/load.js';
import { formatProblem } from '../../config/yaml-source.js';
import { checkTemplates } from '../../connectors/delivery/templates.js';
import { EXIT_FAILURE, EXIT_USAGE, ExitRequest } from '../exit.js';
import { configOption, out } from '../output.js';

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel.startsWith('..') || isAbsolute(rel) ? file : rel;
}

export function registerConfigCommands(program: Command): void {
  const config = program
    .command('config')
    .description('check the configuration and publish its JSON Schemas and reference');

  configOption(config.command('check'))
    .description('validate relais.yaml and every ISP file; print every problem with its line')
    .action((options: { config?: string }) => {
      const { config: loaded, problems } = loadConfig({ file: options.config });
      // Templates are files the schema cannot see: a broken one must fail here, not on the
      // first key to deliver.
      for (const isp of loaded?.isps.values() ?? []) {
        for (const p of checkTemplates(isp)) {
          problems.push({
            file: displayPath(p.file),
            line: p.line,
            column: 1,
            path: `(template of ${isp.id})`,
            message: p.message,
          });
        }
      }
      if (!loaded || problems.length > 0) {
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
