/**
 * The folder holding Relais' package.json, found by walking up from this module. The same code
 * runs from the sources (under vitest) and from `dist/`, so files shipped beside the code
 * (schemas, demo data, installers) are located from here rather than from `import.meta.url`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InternalError } from './errors.js';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir)
      throw new InternalError('INTERNAL', 'package.json not found above this module');
    dir = parent;
  }
  cached = dir;
  return dir;
}
