import type { Knex } from 'knex';

/** The signed receipt of each erasure, returned again when the erasure is repeated. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('erasure_receipts', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 32).primary();
    t.string('isp_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.specificType('receipt', 'TEXT').notNullable();
    t.datetime('erased_at', { precision: 3 }).notNullable();
    t.unique(['subscriber_id'], { indexName: 'erasure_receipts_subscriber_uq' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('erasure_receipts');
}
