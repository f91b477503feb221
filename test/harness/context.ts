/**
 * Per-test-file services: two databases and a Redis key prefix of its own, a temporary data
 * folder, and a real relais.yaml written there and loaded through the real loader. Dropped
 * afterwards, so two runs (or two files in one run) never see each other's data.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { stringify } from 'yaml';
import { type LoadOptions, loadConfigOrThrow, type RelaisConfig } from '../../config/load.js';
import { createDb, type Db, dropDatabases, ensureDatabases } from '../../platform/db.js';
import { migrateLatest } from '../../platform/migrations.js';
import { TEST_DB_PREFIX, uniqueTestName } from './names.js';

export interface TestContext {
  config: RelaisConfig;
  /** Folder holding relais.yaml and isps/; write ISP files here before reloading. */
  dir: string;
  connectorDb: Db;
  licensingDb: Db;
  redis: Redis;
  prefix: string;
  /** Reloads the config (after writing ISP files into `dir/isps`). */
  reload(options?: Omit<LoadOptions, 'file'>): RelaisConfig;
  cleanup(): Promise<void>;
}

export interface TestContextOptions {
  /** Extra relais.yaml content merged over the test defaults. */
  deployment?: Record<string, unknown>;
  /** ISP files to write: id → YAML text or object. */
  isps?: Record<string, string | Record<string, unknown>>;
  /** Run migrations on both databases (default true). */
  migrate?: boolean;
}

export async function createTestContext(options: TestContextOptions = {}): Promise<TestContext> {
  const name = uniqueTestName();
  const dir = mkdtempSync(join(tmpdir(), 'relais-test-'));
  mkdirSync(join(dir, 'isps'));
  const prefix = `t${name.replace(/_/g, '')}`;
  const own = {
    mysql: {
      connectorDatabase: `${TEST_DB_PREFIX}${name}_connector`,
      licensingDatabase: `${TEST_DB_PREFIX}${name}_licensing`,
      poolMax: 4,
    },
    redis: { prefix },
    paths: { dataDir: 'var' },
    log: { level: 'silent' },
  };
  const deployment = mergeSections(own, options.deployment ?? {});
  // The test's own database names and prefix always win: an override must never point a test,
  // and the drop at its end, at a shared database.
  deployment.mysql = {
    ...deployment.mysql,
    ...pick(own.mysql, 'connectorDatabase', 'licensingDatabase'),
  };
  deployment.redis = { ...deployment.redis, prefix };
  writeFileSync(join(dir, 'relais.yaml'), stringify(deployment));
  for (const [id, content] of Object.entries(options.isps ?? {})) {
    writeFileSync(
      join(dir, 'isps', `${id}.yaml`),
      typeof content === 'string' ? content : stringify(content),
    );
  }

  const file = join(dir, 'relais.yaml');
  const reload = (extra: Omit<LoadOptions, 'file'> = {}) =>
    loadConfigOrThrow({ env: {}, ...extra, file });
  const config = reload();
  const mysql = config.deployment.mysql;
  await ensureDatabases(mysql);
  const connectorDb = createDb(mysql, 'connector');
  const licensingDb = createDb(mysql, 'licensing');
  if (options.migrate ?? true) {
    await migrateLatest(connectorDb, 'connector');
    await migrateLatest(licensingDb, 'licensing');
  }
  const redis = new Redis(config.deployment.redis.url, { maxRetriesPerRequest: null });

  return {
    config,
    dir,
    connectorDb,
    licensingDb,
    redis,
    prefix,
    reload,
    async cleanup() {
      await connectorDb.destroy();
      await licensingDb.destroy();
      await deleteKeys(redis, prefix);
      redis.disconnect();
      await dropDatabases(mysql);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Sections = Record<string, Record<string, unknown>>;

/** `extra` over `base`, one level deep: a section given in `extra` adds to the base's section. */
function mergeSections(base: Sections, extra: Record<string, unknown>): Sections {
  const merged: Sections = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const isSection = typeof value === 'object' && value !== null && !Array.isArray(value);
    merged[key] = isSection
      ? { ...base[key], ...(value as Record<string, unknown>) }
      : (value as never);
  }
  return merged;
}

function pick<T extends object, K extends keyof T>(value: T, ...keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, value[k]])) as Pick<T, K>;
}

/** Deletes every Redis key under `prefix` (a test file's, or a benchmark's). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Registers beforeAll/afterAll for a test file; call `get()` inside tests. */
export function useTestContext(options: TestContextOptions = {}): () => TestContext {
  let ctx: TestContext | undefined;
  beforeAll(async () => {
    ctx = await createTestContext(options);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });
  return () => {
    if (!ctx) throw new Error('test context used outside a test');
    return ctx;
  };
}
