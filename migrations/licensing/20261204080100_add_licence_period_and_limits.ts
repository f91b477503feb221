import type { Knex } from 'knex';

/**
 * `licences.period` is the last period the licence was renewed for (YYYY-MM in the ISP time
 * zone); renewal only touches licences behind the period it closes, so a second run is a no-op.
 * `device_limit` is fixed at issue from the ISP's (or offer's) limit; `link_generation`
 * invalidates older download links when one is re-issued; `revoked_at` dates a revocation.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('licences', (t) => {
    t.string('period', 7).nullable();
    t.integer('device_limit').unsigned().notNullable().defaultTo(1);
    t.integer('link_generation').unsigned().notNullable().defaultTo(1);
    t.datetime('revoked_at', { precision: 3 }).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('licences', (t) => {
    t.dropColumn('period');
    t.dropColumn('device_limit');
    t.dropColumn('link_generation');
    t.dropColumn('revoked_at');
  });
}
