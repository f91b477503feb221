import type { Knex } from 'knex';

/**
 * `billing_closes.licences`: the distinct licences with a charge line in the closed period,
 * counted once when the close freezes its lines (licensing/billing/close.ts), so the operations
 * overview reads a year of billable licences from twelve rows instead of counting millions of
 * rated lines on every page view. NULL while a close runs. Periods closed before this column
 * existed are counted here, once.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('billing_closes', (t) => {
    t.integer('licences').unsigned().nullable();
  });
  await knex.raw(
    `UPDATE billing_closes c SET licences = (SELECT COUNT(DISTINCT l.licence_id) FROM rated_lines l WHERE l.isp_id = c.isp_id AND l.period = c.period AND l.kind = 'charge') WHERE c.status = 'closed'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('billing_closes', (t) => {
    t.dropColumn('licences');
  });
}
