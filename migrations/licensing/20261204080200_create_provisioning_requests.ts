import type { Knex } from 'knex';

/**
 * The replay store of provisioning commands: per ISP and idempotency key, the hash of the
 * command body and the result sent back (never the activation key), so a replay returns the
 * first result and the same key with another body is a conflict.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('provisioning_requests', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('isp_id', 32).notNullable();
    t.string('idempotency_key', 96).notNullable();
    t.specificType('body_hash', 'BINARY(32)').notNullable();
    t.specificType('result', 'TEXT').notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.primary(['isp_id', 'idempotency_key']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('provisioning_requests');
}
