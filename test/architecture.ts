/**
 * The import rules of docs/architecture.md, as data, and a checker that reads every source
 * file's imports. The privacy boundary depends on one of these rules: `licensing/` never
 * imports `connectors/` or `mappings/`, where customer refs live, neither directly nor through
 * a chain of files in other folders ({@link checkReach}).
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
 * the plug-ins declare, so it may import `connectors/` registries and `*.options.ts` files, and
 * nothing else there. The `*.options.ts` files are zod only; a registry is the one list of its
 * plug-ins, so `formats/registry.ts` also imports the format readers (csv, xml, fixed width):
 * whoever loads the ISP schema loads their code too, which is why {@link checkReach} exists.
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
  billing: ['platform', 'config', 'connectors', 'mappings'],
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

const TYPE_ONLY_PATTERN = /\b(?:import|export)\s+type\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/g;

/**
 * The relative imports that exist at run time: all of {@link importsOf} except `import type`
 * and `export type` statements, which the compiler erases. (`import { type X }` stays: under
 * verbatimModuleSyntax it still loads the module.)
 */
export function runtimeImportsOf(source: string): { specifier: string; line: number }[] {
  const typeOnly = new Set<string>();
  for (const match of source.matchAll(TYPE_ONLY_PATTERN)) {
    const end = (match.index ?? 0) + match[0].length;
    const line = source.slice(0, end).split('\n').length;
    typeOnly.add(`${line}:${match[1]}`);
  }
  return importsOf(source).filter((i) => !typeOnly.has(`${i.line}:${i.specifier}`));
}

/** A chain of runtime imports from a file in one folder to a file in a folder it must not reach. */
export interface Reach {
  /** Files from the start to the forbidden one, relative to the root. */
  chain: string[];
  to: Folder;
}

/** The source file an import specifier names: `./x.js` is written for `./x.ts`. */
function sourceFileOf(target: string, read: (file: string) => string | undefined): string {
  const ts = target.replace(/\.js$/, '.ts');
  return read(ts) !== undefined ? ts : target;
}

function readIfExists(file: string): string | undefined {
  return existsSync(file) && statSync(file).isFile() ? readFileSync(file, 'utf8') : undefined;
}

/**
 * Follows the runtime imports of every non-test file in `from`, through any folder, and reports
 * the shortest chain to each file of a `forbidden` folder it reaches. Type-only imports are not
 * followed: they carry no code and no data. `read` returns a file's source (undefined when it
 * does not exist); tests pass one to check a made-up tree.
 */
export function checkReach(
  root: string,
  from: Folder,
  forbidden: readonly Folder[],
  read: (file: string) => string | undefined = readIfExists,
  starts: string[] = sourceFiles(join(root, from)),
): Reach[] {
  const found: Reach[] = [];
  for (const start of starts.filter((file) => !TEST_FILE.test(file))) {
    const cameFrom = new Map<string, string | undefined>([[start, undefined]]);
    const queue = [start];
    while (queue.length > 0) {
      const file = queue.shift() as string;
      const to = folderOf(root, file);
      if (file !== start && to && forbidden.includes(to)) {
        const chain: string[] = [];
        for (let at: string | undefined = file; at; at = cameFrom.get(at)) {
          chain.unshift(relative(root, at));
        }
        found.push({ chain, to });
        continue;
      }
      const source = read(file);
      if (source === undefined) continue;
      for (const { specifier } of runtimeImportsOf(source)) {
        const next = sourceFileOf(resolve(dirname(file), specifier), read);
        if (cameFrom.has(next)) continue;
        cameFrom.set(next, file);
        queue.push(next);
      }
    }
  }
  return found;
}
