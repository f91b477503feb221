import type { Knex } from 'knex';

/**
 * The subscriber map and the state last applied for each subscriber. This table is the only
 * place where a customer ref meets a subscriber id; it never leaves the connector database.
 *
 * The primary key (isp_id, customer_ref) clusters rows in ref order, so a snapshot diff reads
 * an ISP's whole state as one ordered scan, and makes a ref map to one id forever. `version`
 * counts applied changes; provisioning commands carry it so the server applies them in order.
 * `last_feed_id` tells a resumed feed which subscribers it already applied.
 *
 * No index on status: every reader scans an ISP's rows in key order anyway, and on a first
 * load of a million customers that index cost a fifth of the insert time.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('subscribers', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('isp_id', 32)
      .notNullable()
      .references('id')
      .inTable('isps')
      .withKeyName('subscribers_isp_fk');
    t.string('customer_ref', 64).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('status', 16).notNullable();
    t.string('offer', 64).nullable();
    t.string('modules', 512).notNullable().defaultTo('');
    t.datetime('effective_at', { precision: 3 }).nullable();
    t.integer('version').unsigned().notNullable();
    t.string('last_feed_id', 32).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.primary(['isp_id', 'customer_ref']);
    t.unique(['subscriber_id'], { indexName: 'subscribers_subscriber_uq' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('subscribers');
}
