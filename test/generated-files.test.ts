import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildJsonSchemas, SCHEMAS_DIR } from '../config/json-schema.js';
import { ERROR_CODES } from '../platform/error-codes.js';
import { renderErrorsMarkdown } from '../platform/error-docs.js';
import { packageRoot } from '../platform/package-root.js';

const REGENERATE = 'out of date: run `npm run generate` and commit the result';

describe('checked-in generated files', () => {
  it.each(Object.keys(buildJsonSchemas()))('schemas/%s matches the zod schema', (file) => {
    const expected = buildJsonSchemas()[file];
    expect(readFileSync(join(SCHEMAS_DIR, file), 'utf8'), REGENERATE).toBe(expected);
  });

  it('docs/errors.md lists every error code as the code defines it', () => {
    const page = readFileSync(join(packageRoot(), 'docs/errors.md'), 'utf8');
    expect(page, REGENERATE).toBe(renderErrorsMarkdown());
  });

  it('every error code in the table is raised somewhere in the code', () => {
    const folders = [
      'cli',
      'config',
      'connectors',
      'mappings',
      'queue',
      'licensing',
      'billing',
      'api',
      'platform',
    ];
    const source = execFileSync(
      'grep',
      [
        '-rhoE',
        "'[A-Z][A-Z0-9_]+'",
        ...folders,
        '--include=*.ts',
        '--exclude=*.test.ts',
        '--exclude=error-codes.ts',
      ],
      {
        cwd: packageRoot(),
        encoding: 'utf8',
      },
    );
    const used = new Set(source.split('\n').map((s) => s.slice(1, -1)));
    const unused = Object.keys(ERROR_CODES).filter((code) => !used.has(code));
    expect(unused, 'codes nobody raises: raise them or mark them retired').toEqual([]);
  });
});
