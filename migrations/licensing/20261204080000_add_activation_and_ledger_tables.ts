import type { Knex } from 'knex';

/**
 * What the subscription server needs beyond subscriptions and licences: the replay store of
 * provisioning commands, devices, download records, period closes and erasure receipts.
 *
 * - `subscriptions.version` is the last applied command version of the subscriber: commands
 *   are applied in version order, and one that arrives early is held back.
 * - `provisioning_requests` keeps, per ISP and idempotency key, the hash of the command body
 *   and the result sent back, so a replay returns the first result (never the key again) and
 *   the same key with another body is a conflict.
 * - `licences.period` is the last period the licence was renewed for (YYYY-MM in the ISP time
 *   zone); renewal only touches licences behind the period it closes, so a second run is a
 *   no-op. `link_generation` invalidates older download links when one is re-issued.
 * - `devices` hold a keyed hash of the device fingerprint, never the fingerprint itself.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.integer('version').unsigned().notNullable().defaultTo(0);
    t.datetime('erased_at', { precision: 3 }).nullable();
  });
  await knex.schema.alterTable('licences', (t) => {
    t.string('period', 7).nullable();
    t.integer('device_limit').unsigned().notNullable().defaultTo(1);
    t.integer('link_generation').unsigned().notNullable().defaultTo(1);
    t.datetime('revoked_at', { precision: 3 }).nullable();
  });
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
  await knex.schema.createTable('devices', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 32).primary();
    t.string('licence_id', 32).notNullable();
    t.specificType('fingerprint_hash', 'BINARY(32)').notNullable();
    t.string('state', 16).notNullable();
    t.datetime('activated_at', { precision: 3 }).notNullable();
    t.datetime('last_seen_at', { precision: 3 }).notNullable();
    t.datetime('removed_at', { precision: 3 }).nullable();
    t.unique(['licence_id', 'fingerprint_hash'], { indexName: 'devices_licence_fp_uq' });
    t.index(['licence_id', 'state'], 'devices_licence_state_ix');
  });
  await knex.schema.createTable('downloads', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('licence_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.string('module', 32).notNullable();
    t.datetime('downloaded_at', { precision: 3 }).notNullable();
    t.index(['subscriber_id'], 'downloads_subscriber_ix');
  });
  await knex.schema.createTable('period_closes', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('isp_id', 32).notNullable();
    t.string('period', 7).notNullable();
    t.integer('renewed').unsigned().notNullable().defaultTo(0);
    t.integer('lapsed').unsigned().notNullable().defaultTo(0);
    t.integer('held').unsigned().notNullable().defaultTo(0);
    t.datetime('started_at', { precision: 3 }).notNullable();
    t.datetime('finished_at', { precision: 3 }).nullable();
    t.primary(['isp_id', 'period']);
  });
  await knex.schema.createTable('erasure_receipts', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 32).primary();
    t.string('isp_id', 32).notNullable();
    t.string('subscriber_id', 32).notNullable();
    t.specificType('receipt', 'TEXT').notNullable();
    t.datetime('erased_at', { precision: 3 }).notNullable();
    t.unique(['subscriber_id'], { indexName: 'erasure_receipts_subscriber_uq' });
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'erasure_receipts',
    'period_closes',
    'downloads',
    'devices',
    'provisioning_requests',
  ]) {
    await knex.schema.dropTable(table);
  }
  await knex.schema.alterTable('licences', (t) => {
    t.dropColumn('period');
    t.dropColumn('device_limit');
    t.dropColumn('link_generation');
    t.dropColumn('revoked_at');
  });
  await knex.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('version');
    t.dropColumn('erased_at');
  });
}
