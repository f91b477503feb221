import type { Knex } from 'knex';

/**
 * The provisioning outbox. A batch of commands is written in the same transaction as the
 * subscriber changes it announces, so a crash can never apply a change without its command or
 * the reverse. Queueing to BullMQ is a separate step that reads pending batches; the job id is
 * derived from the batch id, and the server's idempotency keys make a replay harmless.
 * Commands hold subscriber ids, modules and times only: nothing personal. The per-kind counts
 * let a feed's totals be summed exactly even when its run was interrupted and resumed.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('provisioning_batches', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id').primary();
    t.string('isp_id', 32).notNullable();
    t.string('feed_id', 32).notNullable();
    t.integer('command_count').unsigned().notNullable();
    for (const kind of ['subscribes', 'changes', 'suspends', 'resumes', 'cancels']) {
      t.integer(kind).unsigned().notNullable().defaultTo(0);
    }
    t.specificType('commands', 'LONGTEXT').notNullable();
    t.string('state', 16).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('queued_at', { precision: 3 }).nullable();
    t.index(['state', 'id'], 'provisioning_batches_state_ix');
    t.index(['feed_id'], 'provisioning_batches_feed_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('provisioning_batches');
}
