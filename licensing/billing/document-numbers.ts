/**
 * Invoice and credit note numbers: `<prefix><YYYY>-<000001>`, one gapless sequence per seller
 * and year, shared by invoices and credit notes. A number is taken inside the caller's
 * transaction, together with the document row that freezes the document, so:
 *
 * - a run that fails rolls both back: no number is burnt (gapless);
 * - the sequence row is locked while a number is taken, and the issue date never goes back
 *   from one number to the next (chronological), even when two runs race around midnight;
 * - the unique (isp, period, type) key makes a second call return the first call's number and
 *   frozen document (idempotent), whatever the clock or the config say by then.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { InternalError } from '../../platform/errors.js';
import type { VendorDocument } from './invoice-documents.js';
import type { InvoiceDocument } from './invoice-model.js';

export interface NumberRequest {
  ispId: string;
  period: string;
  type: InvoiceDocument['type'];
  /** Whose sequence: the seller's legal id, else its VAT id, else its name. */
  sellerKey: string;
  prefix: string;
  /** The day the caller would issue on; moved forward if an earlier number has a later date. */
  issueDate: string;
  /** Builds the document to freeze once its number and final issue date are known. */
  build: (number: string, issueDate: string) => VendorDocument;
  now: Date;
}

export interface NumberedDocument {
  number: string;
  issueDate: string;
  document: VendorDocument;
  /** False when the document existed already (a rerun). */
  created: boolean;
}

interface DocumentRow {
  number: string;
  issue_date: string;
  model: string;
}

interface SequenceRow {
  last_seq: number;
  last_issue_date: string;
}

/** Seller key for the sequence table: stable while the seller is the same company. */
export function sellerKeyOf(seller: {
  name: string;
  vatId?: string;
  legalId?: { id: string; scheme: string };
}): string {
  const key = seller.legalId
    ? `${seller.legalId.scheme}:${seller.legalId.id}`
    : (seller.vatId ?? seller.name);
  return key.slice(0, 64);
}

export function formatDocumentNumber(prefix: string, year: number, seq: number): string {
  return `${prefix}${year}-${String(seq).padStart(6, '0')}`;
}

/** The frozen document of an ISP, period and type, when it was numbered already. */
export async function findDocument(
  db: Knex | Knex.Transaction,
  key: { ispId: string; period: string; type: InvoiceDocument['type'] },
): Promise<{ number: string; issueDate: string; document: VendorDocument } | undefined> {
  const row = (await db('billing_documents')
    .where({ isp_id: key.ispId, period: key.period, type: key.type })
    .first('number', 'issue_date', 'model')) as DocumentRow | undefined;
  return row ? fromRow(row) : undefined;
}

/**
 * Returns the number and frozen document of (isp, period, type), numbering and freezing it on
 * the first call. Must run inside a transaction: the sequence row lock lasts until its commit.
 * Run that transaction under `retryLockConflicts`: two runs taking a year's first number at
 * once can deadlock, and InnoDB then rolls one back whole.
 */
export async function assignDocumentNumber(
  trx: Knex.Transaction,
  req: NumberRequest,
): Promise<NumberedDocument> {
  const key = { isp_id: req.ispId, period: req.period, type: req.type };
  const year = Number(req.issueDate.slice(0, 4));

  // Lock the sequence row: whoever holds it is the only one numbering for this seller and year
  // until it commits. The row is created on the year's first number; taking the lock straight
  // away when it exists avoids the shared-then-exclusive upgrade that deadlocks racing runs
  // (the first-number race can still deadlock: callers retry lock conflicts).
  const lockSequence = () =>
    trx('billing_document_sequences')
      .where({ seller_key: req.sellerKey, year })
      .forUpdate()
      .first('last_seq', 'last_issue_date') as Promise<SequenceRow | undefined>;
  let seq = await lockSequence();
  if (!seq) {
    await trx('billing_document_sequences')
      .insert({ seller_key: req.sellerKey, year, last_seq: 0, last_issue_date: req.issueDate })
      .onConflict(['seller_key', 'year'])
      .ignore();
    seq = await lockSequence();
  }
  if (!seq) throw new InternalError('INTERNAL', 'billing document sequence row vanished');

  // Read under the lock (a locking read sees the latest commit, not the transaction's snapshot),
  // so a run that numbered this document while we waited is found here.
  const existing = (await trx('billing_documents')
    .where(key)
    .forUpdate()
    .first('number', 'issue_date', 'model')) as DocumentRow | undefined;
  if (existing) return { ...fromRow(existing), created: false };

  const issueDate =
    seq.last_issue_date > req.issueDate && seq.last_seq > 0 ? seq.last_issue_date : req.issueDate;
  const next = seq.last_seq + 1;
  const number = formatDocumentNumber(req.prefix, year, next);
  const document = req.build(number, issueDate);
  if (document.model.number !== number || document.model.issueDate !== issueDate) {
    throw new InternalError('INTERNAL', 'built document does not carry its assigned number');
  }
  const model = JSON.stringify(document);
  await trx('billing_documents').insert({
    ...key,
    number,
    seller_key: req.sellerKey,
    year,
    seq: next,
    issue_date: issueDate,
    model,
    model_sha256: createHash('sha256').update(model).digest('hex'),
    created_at: req.now,
  });
  await trx('billing_document_sequences')
    .where({ seller_key: req.sellerKey, year })
    .update({ last_seq: next, last_issue_date: issueDate });
  return { number, issueDate, document, created: true };
}

function fromRow(row: DocumentRow): {
  number: string;
  issueDate: string;
  document: VendorDocument;
} {
  return {
    number: row.number,
    issueDate: row.issue_date,
    document: JSON.parse(row.model) as VendorDocument,
  };
}
