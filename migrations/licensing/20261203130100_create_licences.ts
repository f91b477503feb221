import type { Knex } from 'knex';

/**
 * Licences: the right to run a subscription's modules. The activation key is stored only as a
 * keyed hash (HMAC-SHA256, 32 bytes); the clear key is shown once and never kept.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('licences', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 32).primary();
    t.string('subscriber_id', 32)
      .notNullable()
      .references('subscriber_id')
      .inTable('subscriptions')
      .withKeyName('licences_subscription_fk');
    t.string('isp_id', 32).notNullable();
    t.specificType('key_hash', 'BINARY(32)').notNullable();
    t.string('status', 16).notNullable();
    t.datetime('valid_until', { precision: 3 }).nullable();
    t.datetime('activated_at', { precision: 3 }).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.unique(['key_hash'], { indexName: 'licences_key_hash_uq' });
    t.index(['subscriber_id'], 'licences_subscriber_ix');
    t.index(['isp_id', 'status'], 'licences_isp_status_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('licences');
}
