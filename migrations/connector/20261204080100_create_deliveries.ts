import type { Knex } from 'knex';

/**
 * One row per activation key to hand over. `secret` holds the key and download link, sealed;
 * it is set to NULL once delivered. The row stays as the record of the delivery.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('deliveries', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('licence_id', 32).notNullable();
    t.bigInteger('batch_id').unsigned().nullable();
    t.string('channel', 16).notNullable();
    t.specificType('secret', 'VARBINARY(2048)').nullable();
    t.datetime('link_expires_at', { precision: 3 }).nullable();
    t.string('state', 16).notNullable();
    t.integer('attempts').unsigned().notNullable().defaultTo(0);
    t.string('last_error', 255).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('delivered_at', { precision: 3 }).nullable();
    t.index(['isp_id', 'state', 'id'], 'deliveries_isp_state_ix');
    t.index(['batch_id'], 'deliveries_batch_ix');
    t.index(['subscriber_id'], 'deliveries_subscriber_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('deliveries');
}
