import type { Knex } from 'knex';

/**
 * Drops the foreign key from licences to subscriptions. It cost about 15 % of a licence insert
 * (a checked, locked read of the subscription per row) and guarded nothing the code does not
 * already guarantee: a licence is only ever written in the same transaction as its subscription
 * (one transaction per provisioning batch), and subscriptions are never deleted, an erasure
 * only marks them. The index on subscriber_id stays: every lookup of a subscriber's licences
 * uses it. See docs/decisions.md.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('licences', (t) => {
    t.dropForeign(['subscriber_id'], 'licences_subscription_fk');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('licences', (t) => {
    t.foreign('subscriber_id', 'licences_subscription_fk')
      .references('subscriber_id')
      .inTable('subscriptions');
  });
}
