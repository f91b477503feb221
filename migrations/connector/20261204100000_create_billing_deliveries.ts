import type { Knex } from 'knex';

/**
 * The delivery ledger of month-end files: one row per (ISP, period, file name), so a retry
 * never uploads a second, different file under a name the ISP may already have imported.
 * `status` is `uploading` (the temporary file may be partial), `uploaded` (the temporary file
 * is complete and verified; the rename may or may not have happened) or `delivered` (the file,
 * its checksum file and done marker are in place). `sha256` and `size_bytes` are of the file
 * as delivered; a later attempt with other content is refused.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('billing_deliveries', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.specificType('period', 'CHAR(7)').notNullable();
    t.string('file_name', 255).notNullable();
    t.specificType('sha256', 'CHAR(64)').notNullable();
    t.bigInteger('size_bytes').unsigned().notNullable();
    t.string('status', 16).notNullable();
    t.string('target', 255).notNullable();
    t.integer('attempts').unsigned().notNullable().defaultTo(0);
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.datetime('delivered_at', { precision: 3 }).nullable();
    t.unique(['isp_id', 'period', 'file_name'], { indexName: 'billing_deliveries_file_uq' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('billing_deliveries');
}
