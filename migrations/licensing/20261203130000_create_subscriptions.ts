import type { Knex } from 'knex';

/**
 * Subscriptions on the vendor side: a subscriber id, its ISP, its modules and status. No
 * customer ref, name or contact: this database sits on the far side of the privacy boundary.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('subscriptions', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('subscriber_id', 32).primary();
    t.string('isp_id', 32).notNullable();
    t.string('status', 16).notNullable();
    t.string('modules', 512).notNullable().defaultTo('');
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.index(['isp_id', 'status'], 'subscriptions_isp_status_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('subscriptions');
}
