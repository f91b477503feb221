import type { Knex } from 'knex';

/** Commands the subscription server refused for good, for a person to read. */
export async function up(knex: Knex): Promise<void> {
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
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('provisioning_rejections');
}
