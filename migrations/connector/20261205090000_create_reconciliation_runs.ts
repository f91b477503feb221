import type { Knex } from 'knex';

/**
 * The last reconciliation of each ISP and period, for the operations overview (`relais status`,
 * `/admin`): counts per category and where the report lies. One row per (ISP, period): a rerun
 * of the same period (a corrected export, or by hand) updates it rather than adding a second.
 * The report files themselves stay in the ISP's work folder; no ref is stored here.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('reconciliation_runs', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.specificType('period', 'CHAR(7)').notNullable();
    t.datetime('ran_at', { precision: 3 }).notNullable();
    t.string('file_name', 255).notNullable();
    t.specificType('sha256', 'CHAR(64)').notNullable();
    t.integer('export_lines').unsigned().notNullable();
    t.integer('rejected_lines').unsigned().notNullable();
    t.integer('vendor_lines').unsigned().notNullable();
    t.specificType('counts', 'TEXT').notNullable();
    t.string('report_path', 1024).notNullable();
    t.unique(['isp_id', 'period'], { indexName: 'reconciliation_runs_period_uq' });
    t.index(['isp_id', 'ran_at'], 'reconciliation_runs_ran_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('reconciliation_runs');
}
