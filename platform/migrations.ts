/**
 * Runs the knex migrations of one database side. Migration files live in
 * `migrations/<side>/` and are found next to this module at run time, so the same code runs the
 * TypeScript sources under vitest and the compiled `.js` files under `dist/`. A migration's name
 * is its file name without extension, so both record the same rows in `knex_migrations`.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import type { DatabaseSide, Db } from './db.js';

interface MigrationFile {
  name: string;
  path: string;
}

function migrationsDir(side: DatabaseSide): string {
  return fileURLToPath(new URL(`../migrations/${side}/`, import.meta.url));
}

class FolderMigrationSource implements Knex.MigrationSource<MigrationFile> {
  constructor(private readonly dir: string) {}

  async getMigrations(): Promise<MigrationFile[]> {
    return readdirSync(this.dir)
      .filter((f) => /^\d{14}_[a-z0-9_]+\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
      .sort()
      .map((f) => ({ name: f.replace(/\.(ts|js)$/, ''), path: `${this.dir}${f}` }));
  }

  getMigrationName(migration: MigrationFile): string {
    return migration.name;
  }

  async getMigration(migration: MigrationFile): Promise<Knex.Migration> {
    return (await import(pathToFileURL(migration.path).href)) as Knex.Migration;
  }
}

function migratorConfig(side: DatabaseSide): Knex.MigratorConfig {
  return { migrationSource: new FolderMigrationSource(migrationsDir(side)) };
}

/** Applies every pending migration; returns the names applied (empty when already current). */
export async function migrateLatest(db: Db, side: DatabaseSide): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migratorConfig(side))) as [number, string[]];
  return applied;
}

/** Undoes the last batch; returns the names rolled back. */
export async function migrateRollback(db: Db, side: DatabaseSide): Promise<string[]> {
  const [, undone] = (await db.migrate.rollback(migratorConfig(side))) as [number, string[]];
  return undone;
}

/** Names of migrations this code has and the database has not applied yet. */
export async function pendingMigrations(db: Db, side: DatabaseSide): Promise<string[]> {
  const [, pending] = (await db.migrate.list(migratorConfig(side))) as [unknown[], MigrationFile[]];
  return pending.map((m) => m.name);
}
