import type { Knex } from 'knex';

/**
 * Drops `subscriptions_isp_status_ix` (isp_id, status). No query reads it: provisioning reads
 * subscriptions by primary key, renewal and activation reach them from their licences, and the
 * billing close walks the primary key. Yet every new subscriber added a randomly placed entry
 * to it (its entries end with the random subscriber id), and every status change moved one.
 * See docs/decisions.md.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.dropIndex(['isp_id', 'status'], 'subscriptions_isp_status_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.index(['isp_id', 'status'], 'subscriptions_isp_status_ix');
  });
}
