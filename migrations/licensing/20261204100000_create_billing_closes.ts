import type { Knex } from 'knex';

/**
 * One row per ISP and billing period closed (or being closed): the rating's frozen inputs and
 * where it has got to. The primary key (isp_id, period) is what makes two racing closes close
 * once. `ledger_high_id` is the last ledger event the close rates (later ones are late events,
 * adjustments of the next close); `rules` is the price list, proration and rounding used, so a
 * resumed close rates its remaining subscribers exactly as the first part. Separate from
 * `period_closes`, which is the licence renewal, not billing.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('billing_closes', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('isp_id', 32).notNullable();
    t.string('period', 7).notNullable();
    t.string('status', 16).notNullable();
    t.bigInteger('ledger_high_id').unsigned().notNullable();
    t.bigInteger('previous_high_id').unsigned().nullable();
    t.specificType('rules', 'TEXT').notNullable();
    t.string('cursor', 32).nullable();
    t.integer('line_count').unsigned().notNullable().defaultTo(0);
    t.specificType('summary', 'TEXT').nullable();
    t.datetime('started_at', { precision: 3 }).notNullable();
    t.datetime('closed_at', { precision: 3 }).nullable();
    t.primary(['isp_id', 'period']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('billing_closes');
}
