import type { Knex } from 'knex';

/**
 * `subscriptions.version` is the last applied command version of the subscriber: commands are
 * applied in version order, and one that arrives early is held back. `erased_at` marks a
 * subscriber erased at the ISP's request.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.integer('version').unsigned().notNullable().defaultTo(0);
    t.datetime('erased_at', { precision: 3 }).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('version');
    t.dropColumn('erased_at');
  });
}
