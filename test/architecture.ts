/**
 * The import rules of docs/architecture.md, as data, and a checker that reads every source
 * file's imports. The privacy boundary depends on one of these rules: `licensing/` never
 * imports `connectors/` or `mappings/`, where customer refs live.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export const FOLDERS = [
  'cli',
  'config',
  'connectors',
  'mappings',
  'queue',
  'licensing',
  'billing',
  'api',
  'platform',
  'migrations',
  'test',
  'bench',
] as const;
export type Folder = (typeof FOLDERS)[number];

/**
 * Narrow exceptions, by target file: `config/` composes the ISP schema from the option schemas
 * the plug-ins declare, so it may import `connectors/` registries and `*.options.ts` files
 * (pure zod), and nothing else there.
 */
export const ALLOWED_FILES: Partial<Record<Folder, { folder: Folder; file: RegExp }[]>> = {
  config: [{ folder: 'connectors', file: /(^|\/)(registry|[\w-]+\.options)\.(ts|js)$/ }],
};

/** Tests beside the code (`*.test.ts`) may use `test/` harnesses and generators, and no more. */
const TEST_FILE = /\.test\.ts$/;

/** Which of our folders each folder may import from (itself always allowed). */
export const ALLOWED_IMPORTS: Record<Folder, readonly Folder[] | 'any'> = {
  cli: 'any',
  config: ['platform'],
  connectors: ['platform', 'config', 'mappings'],
  mappings: ['platform', 'config'],
  queue: ['platform', 'config', 'connectors', 'mappings', 'licensing', 'billing'],
  licensing: ['platform', 'config'],
  billing: ['platform', 'config', 'mappings'],
  api: ['platform', 'config', 'connectors', 'mappings', 'queue', 'licensing', 'billing'],
  platform: [],
  migrations: [],
  test: 'any',
  bench: 'any',
};

export interface Violation {
  file: string;
  line: number;
  specifier: string;
  from: Folder;
  to: Folder;
}

const IMPORT_PATTERN = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g;

/** Relative import specifiers of a TypeScript source, with their line numbers. */
export function importsOf(source: string): { specifier: string; line: number }[] {
  const found: { specifier: string; line: number }[] = [];
  source.split('\n').forEach((text, index) => {
    for (const match of text.matchAll(IMPORT_PATTERN)) {
      const specifier = match[1] as string;
      if (specifier.startsWith('.')) found.push({ specifier, line: index + 1 });
    }
  });
  return found;
}

function folderOf(root: string, file: string): Folder | undefined {
  const first = relative(root, file).split(sep)[0];
  return FOLDERS.find((f) => f === first);
}

export function checkFile(root: string, file: string, source: string): Violation[] {
  const from = folderOf(root, file);
  if (!from) return [];
  const allowed = ALLOWED_IMPORTS[from];
  const violations: Violation[] = [];
  for (const { specifier, line } of importsOf(source)) {
    const target = resolve(dirname(file), specifier);
    const to = folderOf(root, target);
    if (!to || to === from || allowed === 'any' || allowed.includes(to)) continue;
    if (to === 'test' && TEST_FILE.test(file)) continue;
    const exceptions = ALLOWED_FILES[from] ?? [];
    if (exceptions.some((e) => e.folder === to && e.file.test(target))) continue;
    violations.push({ file: relative(root, file), line, specifier, from, to });
  }
  return violations;
}

/** Every `.ts` file under `dir`, recursively; none when the folder does not exist. */
export function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  if (!existsSync(dir)) return files;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) files.push(path);
  }
  return files;
}

export function checkTree(root: string): Violation[] {
  const violations: Violation[] = [];
  for (const folder of FOLDERS) {
    for (const file of sourceFiles(join(root, folder)))
      violations.push(...checkFile(root, file, readFileSync(file, 'utf8')));
  }
  return violations;
}
