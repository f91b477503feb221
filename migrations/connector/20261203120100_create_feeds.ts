import type { Knex } from 'knex';

/**
 * The feed ledger: every file or push an ISP sends, recorded before it is parsed.
 * `content_key` holds the SHA-256 while this feed owns that content; the unique index on
 * (isp_id, content_key) is what makes a second copy of the same bytes a duplicate, even when
 * two processes receive it at the same moment. A failed feed releases its key (NULL) so the
 * ISP can send the same file again once the cause is fixed.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('feeds', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('id', 32).primary();
    t.string('isp_id', 32)
      .notNullable()
      .references('id')
      .inTable('isps')
      .withKeyName('feeds_isp_fk');
    t.string('source', 16).notNullable();
    t.string('name', 255).notNullable();
    t.bigInteger('size_bytes').unsigned().notNullable();
    t.bigInteger('source_mtime_ms').nullable();
    t.specificType('sha256', 'CHAR(64)').notNullable();
    t.specificType('content_key', 'CHAR(64)').nullable();
    t.string('duplicate_of', 32).nullable();
    t.string('status', 16).notNullable();
    t.integer('records').unsigned().notNullable().defaultTo(0);
    t.integer('applied').unsigned().notNullable().defaultTo(0);
    t.integer('rejected').unsigned().notNullable().defaultTo(0);
    t.integer('subscribes').unsigned().notNullable().defaultTo(0);
    t.integer('changes').unsigned().notNullable().defaultTo(0);
    t.integer('suspends').unsigned().notNullable().defaultTo(0);
    t.integer('resumes').unsigned().notNullable().defaultTo(0);
    t.integer('cancels').unsigned().notNullable().defaultTo(0);
    t.integer('batches').unsigned().notNullable().defaultTo(0);
    t.string('error_code', 64).nullable();
    t.text('error_message').nullable();
    t.datetime('received_at', { precision: 3 }).notNullable();
    t.datetime('started_at', { precision: 3 }).nullable();
    t.datetime('finished_at', { precision: 3 }).nullable();
    t.datetime('approved_at', { precision: 3 }).nullable();
    t.unique(['isp_id', 'content_key'], { indexName: 'feeds_isp_content_uq' });
    t.index(['isp_id', 'status', 'received_at'], 'feeds_isp_status_ix');
    t.index(['isp_id', 'received_at'], 'feeds_isp_received_ix');
    t.index(['isp_id', 'name', 'size_bytes'], 'feeds_isp_name_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('feeds');
}
