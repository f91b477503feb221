import type { Knex } from 'knex';

/** What the provisioning worker learnt when it sent a batch. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('provisioning_batches', (t) => {
    t.datetime('sent_at', { precision: 3 }).nullable();
    t.integer('applied').unsigned().notNullable().defaultTo(0);
    t.integer('rejected').unsigned().notNullable().defaultTo(0);
    t.integer('attempts').unsigned().notNullable().defaultTo(0);
    t.string('last_error', 255).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('provisioning_batches', (t) => {
    for (const c of ['sent_at', 'applied', 'rejected', 'attempts', 'last_error']) t.dropColumn(c);
  });
}
