import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../platform/package-root.js';
import { checkFile, checkTree, importsOf } from './architecture.js';

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
