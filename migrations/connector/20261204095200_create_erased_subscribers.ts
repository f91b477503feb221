import type { Knex } from 'knex';

/**
 * Subscribers erased at their ISP's request. Erasure moves the row out of `subscribers`: the
 * customer ref is free again, so a customer who comes back is a new ref to the intake and gets
 * a new subscriber id (the old one is erased at the server for good). The ref-to-id pair is
 * kept here, and nothing else of the customer, because invoice lines of closed periods name the
 * ISP's customer ref and are rated from the old id's ledger events.
 *
 * One ref can appear twice: a customer who came back and asked to be erased again.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('erased_subscribers', (t) => {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_bin');
    t.string('subscriber_id', 32).primary();
    t.string('isp_id', 32).notNullable();
    t.string('customer_ref', 64).notNullable();
    t.string('receipt_id', 32).nullable();
    t.datetime('erased_at', { precision: 3 }).notNullable();
    t.index(['isp_id', 'customer_ref'], 'erased_subscribers_ref_ix');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('erased_subscribers');
}
