import type { Knex } from 'knex';

/** ISPs known to this deployment, reconciled from config/isps/*.yaml at start-up. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('isps', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 32).primary();
    t.string('name', 120).notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.specificType('config_sha256', 'CHAR(64)').notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('isps');
}
