import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../platform/package-root.js';
import { FOLDERS, sourceFiles } from './architecture.js';

const root = packageRoot();

/** Every file a user or a message may send someone to: sources, docs, READMEs, the CI script. */
function filesThatNameScripts(): string[] {
  const files = FOLDERS.flatMap((folder) => sourceFiles(join(root, folder)));
  files.push(...FOLDERS.map((folder) => join(root, folder, 'README.md')).filter(existsSync));
  const docs = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md'));
  files.push(...docs.map((name) => join(root, 'docs', name)));
  files.push(join(root, 'README.md'), join(root, '.ci/run'));
  return files;
}

describe('npm scripts named in messages and docs', () => {
  it('exist in package.json', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const missing: string[] = [];
    for (const file of filesThatNameScripts()) {
      for (const match of readFileSync(file, 'utf8').matchAll(/\bnpm run ([a-z][\w:-]*)/g)) {
        const script = match[1] as string;
        if (!(script in pkg.scripts)) missing.push(`${file.slice(root.length + 1)}: ${script}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
