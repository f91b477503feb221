import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../platform/package-root.js';
import { checkFile, checkReach, checkTree, importsOf, runtimeImportsOf } from './architecture.js';

const root = packageRoot();

describe('import boundaries', () => {
  it('holds in the whole tree', () => {
    const violations = checkTree(root).map(
      (v) => `${v.file}:${v.line} ${v.from}/ may not import ${v.to}/ (${v.specifier})`,
    );
    expect(violations).toEqual([]);
  });

  it.each([
    ["import { subscriberIdFor } from '../../mappings/subscriber-map.js';", 'mappings'],
    ["import type { Feed } from '../../connectors/feed-ledger.js';", 'connectors'],
    ["export { x } from '../../mappings/x.js';", 'mappings'],
    ["const m = await import('../../connectors/sftp.js');", 'connectors'],
  ])('refuses licensing/ importing customer-side code: %s', (line, to) => {
    const file = join(root, 'licensing/keys/activation.ts');
    const violations = checkFile(root, file, `// a file\n${line}\n`);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ from: 'licensing', to, line: 2 });
  });

  it('lets licensing/ import platform/ and config/', () => {
    const source =
      "import { newId } from '../platform/ids.js';\nimport type { IspConfig } from '../config/load.js';\n";
    expect(checkFile(root, join(root, 'licensing/licences.ts'), source)).toEqual([]);
  });

  it('lets config/ import plug-in option schemas from connectors/, and nothing else there', () => {
    const file = join(root, 'config/isp-schema.ts');
    const ok =
      "import { formatOptionsSchema } from '../connectors/formats/registry.js';\nimport { x } from '../connectors/transports/sftp.options.js';\n";
    expect(checkFile(root, file, ok)).toEqual([]);
    const bad = "import { openSftp } from '../connectors/transports/sftp.js';\n";
    expect(checkFile(root, file, bad)).toHaveLength(1);
  });

  it('lets a test beside the code use test/ harnesses, but not the code beside it', () => {
    const source = "import { startSshd } from '../../test/harness/sshd.js';\n";
    expect(checkFile(root, join(root, 'connectors/transports/sftp.int.test.ts'), source)).toEqual(
      [],
    );
    expect(checkFile(root, join(root, 'connectors/transports/sftp.ts'), source)).toHaveLength(1);
  });

  it('refuses platform/ importing anything of ours', () => {
    const source = "import { loadConfig } from '../config/load.js';\n";
    expect(checkFile(root, join(root, 'platform/db.ts'), source)).toHaveLength(1);
  });

  it('ignores package imports and reads multi-line import lists', () => {
    const source = "import knex from 'knex';\nimport {\n  a,\n} from '../mappings/a.js';\n";
    expect(importsOf(source)).toEqual([{ specifier: '../mappings/a.js', line: 4 }]);
  });
});

/** A made-up tree: relative path → source; everything else does not exist. */
function fakeTree(files: Record<string, string>): (file: string) => string | undefined {
  return (file) => files[file.slice(root.length + 1)];
}

const CUSTOMER_SIDE = ['connectors', 'mappings'] as const;

describe('reach of licensing/', () => {
  it('holds in the whole tree: no chain of imports leads to connectors/ or mappings/', () => {
    const chains = checkReach(root, 'licensing', CUSTOMER_SIDE).map((r) => r.chain.join(' -> '));
    expect(chains).toEqual([]);
  });

  it('finds a chain through config/ that no single import breaks the rules with', () => {
    const read = fakeTree({
      'licensing/rating.ts': "import { prices } from '../config/prices.js';\n",
      'config/prices.ts': "import { a } from './a.js';\n",
      'config/a.ts': "import { b } from './b.js';\n",
      'config/b.ts':
        "import { a } from './a.js';\nimport { f } from '../connectors/formats/registry.js';\n",
      'connectors/formats/registry.ts': "import { m } from '../../mappings/m.js';\n",
    });
    const start = join(root, 'licensing/rating.ts');
    for (const file of ['licensing/rating.ts', 'config/prices.ts', 'config/b.ts']) {
      expect(checkFile(root, join(root, file), read(join(root, file)) as string)).toEqual([]);
    }
    expect(checkReach(root, 'licensing', CUSTOMER_SIDE, read, [start])).toEqual([
      {
        chain: [
          'licensing/rating.ts',
          'config/prices.ts',
          'config/a.ts',
          'config/b.ts',
          'connectors/formats/registry.ts',
        ],
        to: 'connectors',
      },
    ]);
  });

  it('does not follow type-only imports, which the compiler erases', () => {
    const read = fakeTree({
      'licensing/grace.ts':
        "import type { IspConfig } from '../config/load.js';\nexport type { X } from '../config/x.js';\n",
      'config/load.ts': "import { s } from '../connectors/registry.js';\n",
      'config/x.ts': "import { s } from '../mappings/x.js';\n",
    });
    expect(
      checkReach(root, 'licensing', CUSTOMER_SIDE, read, [join(root, 'licensing/grace.ts')]),
    ).toEqual([]);
  });

  it('follows an import that only names types inside the braces: the module still loads', () => {
    const source =
      "import { type IspConfig } from '../config/load.js';\nimport type {\n  A,\n} from './a.js';\n";
    expect(runtimeImportsOf(source)).toEqual([{ specifier: '../config/load.js', line: 1 }]);
  });

  it('catches licensing/ loading the config itself, which pulls in the format readers', () => {
    const fake = join(root, 'licensing/loads-config.ts');
    const read = (file: string) =>
      file === fake
        ? "import { loadConfig } from '../config/load.js';\n"
        : existsSync(file)
          ? readFileSync(file, 'utf8')
          : undefined;
    const reached = checkReach(root, 'licensing', CUSTOMER_SIDE, read, [fake]);
    expect(reached.map((r) => r.chain.slice(0, 3))).toContainEqual([
      'licensing/loads-config.ts',
      'config/load.ts',
      'config/isp-schema.ts',
    ]);
    expect(reached.every((r) => r.to === 'connectors')).toBe(true);
  });
});
