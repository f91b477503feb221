import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { createDb, dropDatabases } from '../platform/db.js';
import { migrateLatest, migrateRollback, pendingMigrations } from '../platform/migrations.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';

const ctx = useTestContext();

async function tables(db: ReturnType<typeof ctx>['connectorDb']): Promise<string[]> {
  const [rows] = await db.raw('SHOW TABLES');
  return (rows as Record<string, string>[]).map((r) => Object.values(r)[0] as string).sort();
}

describe('migrations', () => {
  it('creates the databases and applies everything, then is a no-op the second time', async () => {
    const { mysql } = ctx().config.deployment;
    const fresh = {
      ...mysql,
      connectorDatabase: `${mysql.connectorDatabase}_new`,
      licensingDatabase: `${mysql.licensingDatabase}_new`,
    };
    const config = join(ctx().dir, 'fresh.yaml');
    writeFileSync(
      config,
      stringify({
        mysql: {
          connectorDatabase: fresh.connectorDatabase,
          licensingDatabase: fresh.licensingDatabase,
        },
      }),
    );
    onTestFinished(() => dropDatabases(fresh));
    const first = await runCli(['migrate', '--config', config]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/_connector_new: applied \d+ migration/);
    expect(first.stdout).toMatch(/_licensing_new: applied \d+ migration/);
    const second = await runCli(['migrate', '--config', config]);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(
      /_connector_new: already up to date\n.*_licensing_new: already up to date/,
    );
    const db = createDb(fresh, 'connector');
    onTestFinished(() => db.destroy());
    expect(await pendingMigrations(db, 'connector')).toEqual([]);
  });

  it('rolls back the last batch with relais migrate --rollback, and relais migrate restores it', async () => {
    const { connectorDb, licensingDb } = ctx();
    const config = join(ctx().dir, 'relais.yaml');
    const before = { connector: await tables(connectorDb), licensing: await tables(licensingDb) };
    expect(before.connector).toEqual(expect.arrayContaining(['isps', 'feeds', 'subscribers']));
    expect(before.licensing).toEqual(
      expect.arrayContaining(['subscriptions', 'licences', 'subscription_events']),
    );

    const rollback = await runCli(['migrate', '--rollback', '--config', config]);
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toMatch(/rolled back/);
    expect(await tables(connectorDb)).toEqual(['knex_migrations', 'knex_migrations_lock']);
    expect((await pendingMigrations(licensingDb, 'licensing')).length).toBeGreaterThan(0);

    const restore = await runCli(['migrate', '--config', config]);
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/_connector: applied \d+ migration/);
    expect(restore.stdout).toMatch(/_licensing: applied \d+ migration/);
    expect({ connector: await tables(connectorDb), licensing: await tables(licensingDb) }).toEqual(
      before,
    );
    expect(await pendingMigrations(connectorDb, 'connector')).toEqual([]);
    expect(await pendingMigrations(licensingDb, 'licensing')).toEqual([]);
  });

  it('makes every table InnoDB utf8mb4 with millisecond UTC datetimes', async () => {
    const { connectorDb, config } = ctx();
    const names = [
      config.deployment.mysql.connectorDatabase,
      config.deployment.mysql.licensingDatabase,
    ];
    const [rows] = await connectorDb.raw(
      `SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES
       WHERE TABLE_SCHEMA IN (?, ?) AND TABLE_NAME NOT LIKE 'knex_%'`,
      names,
    );
    expect((rows as unknown[]).length).toBeGreaterThanOrEqual(6);
    for (const row of rows as { ENGINE: string; TABLE_COLLATION: string }[]) {
      expect(row).toMatchObject({ ENGINE: 'InnoDB', TABLE_COLLATION: 'utf8mb4_bin' });
    }
    const [columns] = await connectorDb.raw(
      `SELECT COLUMN_TYPE FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA IN (?, ?) AND DATA_TYPE = 'datetime'`,
      names,
    );
    for (const column of columns as { COLUMN_TYPE: string }[])
      expect(column.COLUMN_TYPE).toBe('datetime(3)');
  });

  it('stores and reads datetimes as UTC whatever the server zone', async () => {
    const { connectorDb } = ctx();
    const at = new Date('2026-03-29T01:30:00.123Z'); // inside the Paris DST switch
    await connectorDb('isps').insert({
      id: 'tz-isp',
      name: 'TZ',
      enabled: true,
      config_sha256: 'x'.repeat(64),
      created_at: at,
      updated_at: at,
    });
    const row = await connectorDb('isps').where({ id: 'tz-isp' }).first();
    expect(row.created_at.toISOString()).toBe('2026-03-29T01:30:00.123Z');
    const [[raw]] = await connectorDb.raw(
      "SELECT DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f') AS t FROM isps WHERE id = 'tz-isp'",
    );
    expect(raw.t).toBe('2026-03-29 01:30:00.123000');
  });

  it('rolls back what it applied programmatically too', async () => {
    const { licensingDb } = ctx();
    const undone = await migrateRollback(licensingDb, 'licensing');
    expect(undone.length).toBeGreaterThan(0);
    expect(await migrateLatest(licensingDb, 'licensing')).toEqual(undone.sort());
  });
});
