/**
 * `relais migrate`: creates both databases when absent and applies pending migrations to each.
 * `--rollback` undoes the last batch on each side. Safe to run twice: the second run is a no-op.
 */
import type { Command } from 'commander';
import { loadConfigOrThrow, type RelaisConfig } from '../../config/load.js';
import { createDb, type DatabaseSide, databaseName, ensureDatabases } from '../../platform/db.js';
import { migrateLatest, migrateRollback } from '../../platform/migrations.js';
import { configOption, out } from '../output.js';

const SIDES: DatabaseSide[] = ['connector', 'licensing'];

export interface MigrationReport {
  side: DatabaseSide;
  database: string;
  names: string[];
}

export async function runMigrations(
  config: RelaisConfig,
  rollback = false,
): Promise<MigrationReport[]> {
  const mysql = config.deployment.mysql;
  await ensureDatabases(mysql);
  const reports: MigrationReport[] = [];
  for (const side of rollback ? [...SIDES].reverse() : SIDES) {
    const db = createDb(mysql, side);
    try {
      const names = rollback ? await migrateRollback(db, side) : await migrateLatest(db, side);
      reports.push({ side, database: databaseName(mysql, side), names });
    } finally {
      await db.destroy();
    }
  }
  return reports;
}

export function printMigrationReports(reports: MigrationReport[], rollback: boolean): void {
  for (const { database, names } of reports) {
    if (names.length === 0) {
      out(`${database}: ${rollback ? 'nothing to roll back' : 'already up to date'}`);
      continue;
    }
    out(`${database}: ${rollback ? 'rolled back' : 'applied'} ${names.length} migration(s)`);
    for (const name of names) out(`  ${name}`);
  }
}

export function registerMigrateCommand(program: Command): void {
  configOption(program.command('migrate'))
    .description('create the databases if absent and apply pending migrations')
    .option('--rollback', 'undo the last batch of migrations on each database')
    .action(async (options: { config?: string; rollback?: boolean }) => {
      const config = loadConfigOrThrow({ file: options.config });
      const rollback = options.rollback ?? false;
      printMigrationReports(await runMigrations(config, rollback), rollback);
    });
}
