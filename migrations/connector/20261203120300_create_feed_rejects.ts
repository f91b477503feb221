import type { Knex } from 'knex';

/**
 * Rejected records of each feed, as the ledger shows them (`relais feeds show`). No value is
 * stored: a value may be personal. The full list, with values, is the rejects file sent back
 * to the ISP; this table keeps the first rejects of a feed for people looking at the ledger.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('feed_rejects', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('feed_id', 32)
      .notNullable()
      .references('id')
      .inTable('feeds')
      .withKeyName('feed_rejects_feed_fk');
    t.integer('line').unsigned().notNullable();
    t.string('field', 64).nullable();
    t.string('reason', 255).notNullable();
    t.index(['feed_id', 'line'], 'feed_rejects_feed_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('feed_rejects');
}
