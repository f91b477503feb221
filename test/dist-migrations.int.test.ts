/**
 * The migrations as they ship: compiled by the real build config into a folder of their own and
 * run by the compiled `relais` command, so a build that leaves them out, or a migration runner
 * that only finds `.ts` files, fails here rather than on an operator's first `relais migrate`.
 */
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createDb, dropDatabases, type MysqlSettings } from '../platform/db.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';

const run = promisify(execFile);
const root = packageRoot();
const ctx = useTestContext({ migrate: false });
let outDir = '';
let fresh: MysqlSettings | undefined;

const sourceNames = (side: string) =>
  readdirSync(join(root, 'migrations', side))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();

/** Databases of their own, so the compiled command starts from nothing. */
function freshMysql(): MysqlSettings {
  const { mysql } = ctx().config.deployment;
  fresh = {
    ...mysql,
    connectorDatabase: `${mysql.connectorDatabase}_dist`,
    licensingDatabase: `${mysql.licensingDatabase}_dist`,
  };
  return fresh;
}

beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), 'relais-dist-'));
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  // Exit 2 is "type errors, files emitted": type errors are the typecheck's business; this file
  // is about what the emitted code does. Exit 1 (nothing emitted) fails here.
  await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir], {
    cwd: root,
  }).catch((err: { code?: number; stdout?: string }) => {
    if (err.code !== 2) throw err;
  });
  // What an installed package has beside dist/: its package.json (ESM, version) and dependencies.
  copyFileSync(join(root, 'package.json'), join(outDir, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(outDir, 'node_modules'), 'dir');
}, 60_000);

afterAll(async () => {
  if (fresh) await dropDatabases(fresh);
  rmSync(outDir, { recursive: true, force: true });
});

describe('migrations from the build output', () => {
  it('ship as .js beside the compiled runner', () => {
    for (const side of ['connector', 'licensing']) {
      const built = readdirSync(join(outDir, 'migrations', side)).filter((f) => f.endsWith('.js'));
      expect(built.map((f) => f.replace(/\.js$/, '')).sort()).toEqual(sourceNames(side));
    }
  });

  it('are applied by the compiled relais migrate, and a second run is a no-op', async () => {
    const mysql = freshMysql();
    const config = join(ctx().dir, 'dist.yaml');
    writeFileSync(
      config,
      stringify({
        mysql: {
          connectorDatabase: mysql.connectorDatabase,
          licensingDatabase: mysql.licensingDatabase,
        },
        log: { level: 'silent' },
      }),
    );
    const migrate = () =>
      run(process.execPath, [join(outDir, 'cli/main.js'), 'migrate', '--config', config], {
        cwd: ctx().dir,
        env: { ...process.env, RELAIS_CONFIG: '' },
      });

    const first = await migrate();
    expect(first.stdout).toContain(
      `${mysql.connectorDatabase}: applied ${sourceNames('connector').length} migration(s)`,
    );
    expect(first.stdout).toContain(
      `${mysql.licensingDatabase}: applied ${sourceNames('licensing').length} migration(s)`,
    );
    const second = await migrate();
    expect(second.stdout).toContain(`${mysql.connectorDatabase}: already up to date`);
    expect(second.stdout).toContain(`${mysql.licensingDatabase}: already up to date`);

    const db = createDb(mysql, 'connector');
    try {
      const rows = await db('knex_migrations').select('name').orderBy('name');
      expect(rows.map((r: { name: string }) => r.name)).toEqual(sourceNames('connector'));
    } finally {
      await db.destroy();
    }
  });
});
