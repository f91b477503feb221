import type { Knex } from 'knex';

/**
 * What the connector keeps to deliver keys and to follow provisioning.
 *
 * - `contacts`: the e-mail address and language of a new subscriber, written by the intake in
 *   the same transaction as the subscribe, AES-256-GCM encrypted under the connector vault
 *   key. Deleted as soon as the relay accepts the message (or at once when the ISP delivers
 *   keys itself): an address is never kept longer than it is needed.
 * - `deliveries`: one per licence key to hand over. `secret` holds the key and download link,
 *   encrypted; it is set to NULL once delivered. The row stays as the record of the delivery.
 * - `provisioning_rejections`: commands the server refused for good, for a person to read.
 * - `provisioning_batches` gains what the worker learnt when it sent the batch.
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
  await knex.schema.createTable('deliveries', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('licence_id', 32).notNullable();
    t.bigInteger('batch_id').unsigned().nullable();
    t.string('channel', 16).notNullable();
    t.specificType('secret', 'VARBINARY(2048)').nullable();
    t.datetime('link_expires_at', { precision: 3 }).nullable();
    t.string('state', 16).notNullable();
    t.integer('attempts').unsigned().notNullable().defaultTo(0);
    t.string('last_error', 255).nullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('delivered_at', { precision: 3 }).nullable();
    t.index(['isp_id', 'state', 'id'], 'deliveries_isp_state_ix');
    t.index(['batch_id'], 'deliveries_batch_ix');
    t.index(['subscriber_id'], 'deliveries_subscriber_ix');
  });
  await knex.schema.createTable('provisioning_rejections', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.bigInteger('batch_id').unsigned().notNullable();
    t.string('command_key', 96).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('code', 64).notNullable();
    t.string('message', 255).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.unique(['command_key'], { indexName: 'provisioning_rejections_key_uq' });
    t.index(['isp_id', 'id'], 'provisioning_rejections_isp_ix');
  });
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
  await knex.schema.dropTable('provisioning_rejections');
  await knex.schema.dropTable('deliveries');
  await knex.schema.dropTable('contacts');
}
