import type { Knex } from 'knex';

/**
 * The subscriber map and the state last applied for each subscriber. This table is the only
 * place where a customer ref meets a subscriber id; it never leaves the connector database.
 * The unique (isp_id, customer_ref) index makes a ref map to one id forever, even across
 * concurrent first sightings. Modules are stored sorted and comma-joined so a snapshot diff
 * compares one string.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('subscribers', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('subscriber_id', 32).primary();
    t.string('isp_id', 32)
      .notNullable()
      .references('id')
      .inTable('isps')
      .withKeyName('subscribers_isp_fk');
    t.string('customer_ref', 64).notNullable();
    t.string('status', 16).notNullable();
    t.string('offer', 64).nullable();
    t.string('modules', 512).notNullable().defaultTo('');
    t.datetime('effective_at', { precision: 3 }).nullable();
    t.string('last_feed_id', 32).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.unique(['isp_id', 'customer_ref'], { indexName: 'subscribers_isp_ref_uq' });
    t.index(['isp_id', 'status'], 'subscribers_isp_status_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('subscribers');
}
