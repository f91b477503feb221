import type { Knex } from 'knex';

/** One row per ISP and closed period: what the renewal did, and when it finished. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('period_closes', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('isp_id', 32).notNullable();
    t.string('period', 7).notNullable();
    t.integer('renewed').unsigned().notNullable().defaultTo(0);
    t.integer('lapsed').unsigned().notNullable().defaultTo(0);
    t.integer('held').unsigned().notNullable().defaultTo(0);
    t.datetime('started_at', { precision: 3 }).notNullable();
    t.datetime('finished_at', { precision: 3 }).nullable();
    t.primary(['isp_id', 'period']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('period_closes');
}
