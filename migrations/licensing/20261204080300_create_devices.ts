import type { Knex } from 'knex';

/**
 * Devices a licence is active on. A device is known by a keyed hash of its fingerprint, never
 * the fingerprint itself; a freed device keeps its row (state removed) until an erasure.
 */
export async function up(knex: Knex): Promise<void> {
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
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('devices');
}
