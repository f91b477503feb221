import type { Knex } from 'knex';

/**
 * When the subscription server was told that a delivery happened (`POST
 * /v1/provisioning/deliveries`). Delivering and reporting are two steps: a report that fails
 * leaves `reported_at` NULL, and the next delivery run for the ISP reports the row again, so a
 * server outage never undoes a delivery nor loses the `delivered` ledger event.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deliveries', (t) => {
    t.datetime('reported_at', { precision: 3 }).nullable();
    t.index(['isp_id', 'reported_at', 'state'], 'deliveries_unreported_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deliveries', (t) => {
    t.dropIndex(['isp_id', 'reported_at', 'state'], 'deliveries_unreported_ix');
    t.dropColumn('reported_at');
  });
}
