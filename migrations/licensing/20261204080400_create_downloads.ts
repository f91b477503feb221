import type { Knex } from 'knex';

/** One row per installer downloaded through a download link. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('downloads', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('licence_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('module', 32).notNullable();
    t.datetime('downloaded_at', { precision: 3 }).notNullable();
    t.index(['subscriber_id'], 'downloads_subscriber_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('downloads');
}
