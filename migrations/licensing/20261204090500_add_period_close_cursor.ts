import type { Knex } from 'knex';

/**
 * Where a period close has got to: the id of the last licence whose chunk committed. Each
 * chunk moves the cursor and adds its counts in the same transaction as its updates and
 * events, so a close killed half-way resumes after the last committed chunk and counts every
 * licence once, and two runs of one close take turns on the row instead of repeating a chunk.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('period_closes', (t) => {
    t.string('cursor', 32).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('period_closes', (t) => {
    t.dropColumn('cursor');
  });
}
