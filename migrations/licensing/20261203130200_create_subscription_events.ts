import type { Knex } from 'knex';

/**
 * The append-only usage ledger: every state change of a subscription or licence, in order.
 * Billing rates this table; rows are never updated or deleted (erasure keeps what billing of
 * closed periods needs). `idempotency_key` makes a replayed command record its event once.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('subscription_events', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('licence_id', 32).nullable();
    t.string('type', 32).notNullable();
    t.json('data').nullable();
    t.string('idempotency_key', 96).nullable();
    t.datetime('occurred_at', { precision: 3 }).notNullable();
    t.datetime('recorded_at', { precision: 3 }).notNullable();
    t.unique(['idempotency_key'], { indexName: 'subscription_events_idem_uq' });
    t.index(['isp_id', 'occurred_at'], 'subscription_events_isp_time_ix');
    t.index(['subscriber_id', 'id'], 'subscription_events_subscriber_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('subscription_events');
}
