import type { Knex } from 'knex';

/**
 * The frozen rated lines of closed billing periods, one row per `RatedLine`
 * (licensing/billing/rated-line.ts). Never updated: corrections are adjustment lines of a later
 * period. Money is DECIMAL(14,2) and the display strings (quantity, unit price) are kept as
 * rated, so a closed period streams back byte for byte. The primary key orders a period's lines
 * by line id, the order the API streams them in. Line ids begin with the subscriber id
 * (rated-line.ts), so a close, which goes through subscribers in id order, appends to the
 * primary key. The subscriber index finds what was already billed for a subscriber when a late
 * event re-rates it; it too is filled in order during a close.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rated_lines', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('isp_id', 32).notNullable();
    t.string('period', 7).notNullable();
    t.string('line_id', 160).notNullable();
    t.string('kind', 16).notNullable();
    t.string('service_period', 7).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('licence_id', 32).notNullable();
    t.string('module', 32).notNullable();
    t.tinyint('days').unsigned().notNullable();
    t.tinyint('days_in_period').unsigned().notNullable();
    t.string('quantity', 16).notNullable();
    t.string('unit_price', 24).notNullable();
    t.decimal('amount', 14, 2).notNullable();
    t.string('currency', 3).notNullable();
    t.bigInteger('activation_event_id').unsigned().notNullable();
    t.datetime('activated_at', { precision: 3 }).notNullable();
    t.primary(['isp_id', 'period', 'line_id']);
    t.index(['subscriber_id'], 'rated_lines_subscriber_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('rated_lines');
}
