/**
 * JSON Schema files for editors, generated from the zod schemas so the two cannot disagree.
 * `relais config schemas --write` refreshes `schemas/`; a test fails when the checked-in files
 * drift from what the code would generate.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { packageRoot } from '../platform/package-root.js';
import { deploymentSchema } from './deployment-schema.js';
import { ispSchema } from './isp-schema.js';

export const SCHEMAS_DIR = join(packageRoot(), 'schemas');

const SCHEMA_BASE_URL = 'https://relais.invalid/schemas/';

function render(schema: z.ZodType, file: string, title: string): string {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  const ordered = { $schema: json.$schema, $id: `${SCHEMA_BASE_URL}${file}`, title, ...json };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

/** File name → content of every published schema. */
export function buildJsonSchemas(): Record<string, string> {
  return {
    'relais.schema.json': render(
      deploymentSchema,
      'relais.schema.json',
      'Relais deployment (relais.yaml)',
    ),
    'isp.schema.json': render(ispSchema, 'isp.schema.json', 'Relais ISP (isps/<isp-id>.yaml)'),
  };
}
