/**
 * The vendor's invoice (or credit note) to one ISP for one period, as data: what the UBL 2.1
 * writer and the human-readable summary both render, so the two can never disagree. Built from
 * the frozen rated lines at period close and stored with them, so re-rendering a closed period
 * gives the same bytes.
 */
import type { Party } from '../../config/vendor-billing-schema.js';

export interface VatTerms {
  /** UNCL5305 category code: S, Z, E, AE, ... */
  category: string;
  /** Percent, decimal string: "20". */
  rate: string;
}

export interface InvoiceDocumentLine {
  /** 1, 2, 3 ... in document order. */
  id: string;
  module: string;
  /** What the line is, for people: "Antivirus, 2026-11, 12/30 days". */
  name: string;
  /** Number of licence-months (count of rated lines of the group); positive. */
  quantity: string;
  /** UN/ECE Rec 20 unit code of the quantity. */
  unitCode: string;
  /** Price of one unit, excluding VAT, non-negative: the rounded amount of one rated line. */
  unitPrice: string;
  /** quantity × unitPrice, exactly (the sum of the group's rated line amounts). */
  amount: string;
  /** The month the usage belongs to, YYYY-MM-DD first and last day. */
  servicePeriod: { start: string; end: string };
  vat: VatTerms;
}

export interface InvoiceDocument {
  type: 'invoice' | 'credit-note';
  number: string;
  /** YYYY-MM-DD. */
  issueDate: string;
  ispId: string;
  /** The period closed, YYYY-MM. */
  period: string;
  /** First and last day of the invoice period, YYYY-MM-DD. */
  invoicePeriod: { start: string; end: string };
  currency: string;
  seller: Party;
  buyer: Party;
  /** For a credit note: the invoice it corrects. */
  precedingInvoice?: { number: string; issueDate: string };
  lines: InvoiceDocumentLine[];
}
