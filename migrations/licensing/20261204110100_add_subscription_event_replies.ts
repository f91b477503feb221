import type { Knex } from 'knex';

/**
 * The replay record of a provisioning command, kept on the ledger event the command wrote under
 * its own idempotency key: a hash of the command's body and the answer sent (never the key).
 * A first load then writes no `provisioning_requests` row per subscriber, one row and one
 * randomly ordered index fewer. Commands that write no such event (rejections, a subscribe
 * that changes nothing) still keep their record in `provisioning_requests`. Both columns stay
 * NULL on every other event. Nothing personal: ids, a hash, dates.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscription_events', (t) => {
    t.specificType('command_hash', 'BINARY(32)').nullable();
    t.specificType('command_reply', 'TEXT').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscription_events', (t) => {
    t.dropColumn('command_hash');
    t.dropColumn('command_reply');
  });
}
