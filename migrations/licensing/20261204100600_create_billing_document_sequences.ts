import type { Knex } from 'knex';

/**
 * The last number used in each seller's yearly sequence, and the issue date it was given. The
 * row is locked while a number is taken and moves in the same transaction as the document row,
 * so a rolled-back run leaves no gap, and numbers follow issue dates (French and EN 16931 rules
 * want gapless, chronological invoice numbers).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('billing_document_sequences', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('seller_key', 64).notNullable();
    t.specificType('year', 'SMALLINT UNSIGNED').notNullable();
    t.integer('last_seq').unsigned().notNullable();
    t.string('last_issue_date', 10).notNullable();
    t.primary(['seller_key', 'year']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('billing_document_sequences');
}
