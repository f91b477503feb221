import type { Knex } from 'knex';

/**
 * The vendor's invoices and credit notes to each ISP: one row per ISP, period and document type
 * (the unique key is what makes a second run reuse the first run's number), with its number,
 * the place of that number in the seller's yearly sequence, and the frozen document (JSON) that
 * every re-rendering reads, so the files of a closed period come out byte for byte the same.
 * The issue date is kept as the YYYY-MM-DD text printed on the document: a calendar day, not an
 * instant, so no time zone can shift it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('billing_documents', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.bigIncrements('id');
    t.string('isp_id', 32).notNullable();
    t.string('period', 7).notNullable();
    t.string('type', 16).notNullable();
    t.string('number', 32).notNullable();
    t.string('seller_key', 64).notNullable();
    t.specificType('year', 'SMALLINT UNSIGNED').notNullable();
    t.integer('seq').unsigned().notNullable();
    t.string('issue_date', 10).notNullable();
    t.specificType('model', 'MEDIUMTEXT').notNullable();
    t.specificType('model_sha256', 'CHAR(64)').notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.unique(['isp_id', 'period', 'type'], { indexName: 'billing_documents_isp_period_type_uq' });
    t.unique(['seller_key', 'year', 'seq'], { indexName: 'billing_documents_seller_seq_uq' });
    t.unique(['number'], { indexName: 'billing_documents_number_uq' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('billing_documents');
}
