import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ispConfigReference,
  type JsonSchema,
  undocumentedFields,
} from '../config/config-reference.js';
import { buildJsonSchemas, SCHEMAS_DIR } from '../config/json-schema.js';
import { ERROR_CODES } from '../platform/error-codes.js';
import { renderErrorsMarkdown } from '../platform/error-docs.js';
import { packageRoot } from '../platform/package-root.js';
import { FOLDERS, sourceFiles } from './architecture.js';
import { sampleFiles } from './generators/samples.js';

const APPLICATION_FOLDERS = FOLDERS.filter((f) => !['test', 'bench', 'migrations'].includes(f));

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

  it('docs/isp-config-reference.md renders the ISP schema as it is', () => {
    const page = readFileSync(join(packageRoot(), 'docs/isp-config-reference.md'), 'utf8');
    expect(page, REGENERATE).toBe(ispConfigReference());
  });

  it('every field of the ISP schema has a description for the reference', () => {
    const schema = JSON.parse(buildJsonSchemas()['isp.schema.json'] as string) as JsonSchema;
    expect(undocumentedFields(schema), 'add a .describe() to these zod fields').toEqual([]);
  });

  it.each(sampleFiles().map((s) => [s.path, s]))(
    'config/samples/%s matches its generator',
    (_, s) => {
      const path = join(packageRoot(), 'config', 'samples', s.path);
      expect(readFileSync(path).equals(s.bytes), REGENERATE).toBe(true);
    },
  );

  it('every error code in the table is raised somewhere in the code', () => {
    const used = new Set<string>();
    for (const folder of APPLICATION_FOLDERS) {
      for (const file of sourceFiles(join(packageRoot(), folder))) {
        if (file.endsWith('.test.ts') || file.endsWith('error-codes.ts')) continue;
        for (const match of readFileSync(file, 'utf8').matchAll(/'([A-Z][A-Z0-9_]+)'/g)) {
          used.add(match[1] as string);
        }
      }
    }
    const unused = Object.keys(ERROR_CODES).filter((code) => !used.has(code));
    expect(unused, 'codes nobody raises: raise them or mark them retired').toEqual([]);
  });
});
