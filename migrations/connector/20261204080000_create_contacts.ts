import type { Knex } from 'knex';

/**
 * The e-mail address and language of a new subscriber of an ISP that delivers keys by e-mail,
 * written by the intake in the same transaction as the subscribe, AES-256-GCM sealed under the
 * connector vault key (connectors/vault.ts). Deleted once the relay accepted the message, and
 * by the purge when no message will be sent: an address is kept only while it is needed.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('contacts', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('subscriber_id', 32).primary();
    t.string('isp_id', 32).notNullable();
    t.specificType('email', 'VARBINARY(600)').nullable();
    t.string('language', 2).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('contacts');
}
