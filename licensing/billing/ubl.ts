/**
 * Writes a vendor document as UBL 2.1 XML with the EN 16931 core fields: an `Invoice`
 * (InvoiceTypeCode 380) or a `CreditNote` (CreditNoteTypeCode 381, which names the invoice it
 * corrects in BillingReference). Element order follows the UBL 2.1 schema's sequences, which a
 * validator enforces. The bytes depend only on the document: no clock, no host, LF line ends,
 * UTF-8, every text XML-escaped, so a closed period renders the same file every time.
 *
 * Amounts come from `documentTotals`, the same function the HTML summary prints, and are
 * printed as exact decimal strings with two decimals (BR-DEC-*).
 */
import type { Party } from '../../config/vendor-billing-schema.js';
import { documentTotals, TAXED_CATEGORIES, type VendorDocument } from './invoice-documents.js';
import type { InvoiceDocumentLine } from './invoice-model.js';

const NS = {
  invoice: 'urn:oasis:names:specification:ubl:schema:xsd:Invoice-2',
  creditNote: 'urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2',
  cac: 'urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2',
  cbc: 'urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2',
};

export const EN16931_CUSTOMIZATION_ID = 'urn:cen.eu:en16931:2017';

/** Why a VAT category is not taxed, as EN 16931 wants it said (BR-E-10, BR-AE-10, ...). */
const EXEMPTION: Record<string, { code: string; reason: string }> = {
  E: { code: 'VATEX-EU-132', reason: 'Exempt from VAT' },
  AE: { code: 'VATEX-EU-AE', reason: 'Reverse charge' },
  K: { code: 'VATEX-EU-IC', reason: 'Intra-community supply' },
  G: { code: 'VATEX-EU-G', reason: 'Export outside the EU' },
  O: { code: 'VATEX-EU-O', reason: 'Not subject to VAT' },
};

/** Escapes text and attribute values; also drops characters XML 1.0 cannot carry. */
export function escapeXml(value: string): string {
  return value
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A tiny writer: one element per line, two spaces per level. */
class XmlWriter {
  private readonly out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  private depth = 0;

  open(name: string, attrs: Record<string, string> = {}): this {
    this.out.push(`${this.pad()}<${name}${renderAttrs(attrs)}>`);
    this.depth++;
    return this;
  }

  close(name: string): this {
    this.depth--;
    this.out.push(`${this.pad()}</${name}>`);
    return this;
  }

  leaf(name: string, value: string, attrs: Record<string, string> = {}): this {
    this.out.push(`${this.pad()}<${name}${renderAttrs(attrs)}>${escapeXml(value)}</${name}>`);
    return this;
  }

  /** A leaf only when there is a value. */
  maybe(name: string, value: string | undefined, attrs: Record<string, string> = {}): this {
    return value === undefined ? this : this.leaf(name, value, attrs);
  }

  toString(): string {
    return `${this.out.join('\n')}\n`;
  }

  private pad(): string {
    return '  '.repeat(this.depth);
  }
}

function renderAttrs(attrs: Record<string, string>): string {
  return Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
    .join('');
}

/** Renders the document as UBL 2.1 XML (UTF-8 text; write it with `Buffer.from(xml)`). */
export function renderUbl(doc: VendorDocument): string {
  const { model, payment } = doc;
  const isCredit = model.type === 'credit-note';
  const root = isCredit ? 'CreditNote' : 'Invoice';
  const currency = { currencyID: model.currency };
  const totals = documentTotals(model);
  const w = new XmlWriter();

  w.open(root, {
    xmlns: isCredit ? NS.creditNote : NS.invoice,
    'xmlns:cac': NS.cac,
    'xmlns:cbc': NS.cbc,
  });
  w.leaf('cbc:CustomizationID', EN16931_CUSTOMIZATION_ID);
  w.leaf('cbc:ID', model.number);
  w.leaf('cbc:IssueDate', model.issueDate);
  if (isCredit) {
    w.leaf('cbc:CreditNoteTypeCode', '381');
  } else {
    w.maybe('cbc:DueDate', payment.dueDate);
    w.leaf('cbc:InvoiceTypeCode', '380');
  }
  w.leaf('cbc:Note', `Licences activated, ${model.ispId}, period ${model.period}`);
  w.leaf('cbc:DocumentCurrencyCode', model.currency);
  // BT-10: Peppol wants a buyer reference or an order reference; the ISP id is what the ISP
  // finds its own account under in our records.
  w.leaf('cbc:BuyerReference', model.ispId);
  w.open('cac:InvoicePeriod')
    .leaf('cbc:StartDate', model.invoicePeriod.start)
    .leaf('cbc:EndDate', model.invoicePeriod.end)
    .close('cac:InvoicePeriod');
  if (model.precedingInvoice) {
    w.open('cac:BillingReference')
      .open('cac:InvoiceDocumentReference')
      .leaf('cbc:ID', model.precedingInvoice.number)
      .leaf('cbc:IssueDate', model.precedingInvoice.issueDate)
      .close('cac:InvoiceDocumentReference')
      .close('cac:BillingReference');
  }
  w.open('cac:AccountingSupplierParty');
  writeParty(w, model.seller);
  w.close('cac:AccountingSupplierParty');
  w.open('cac:AccountingCustomerParty');
  writeParty(w, model.buyer);
  w.close('cac:AccountingCustomerParty');

  if (payment.means) {
    const m = payment.means;
    w.open('cac:PaymentMeans').leaf('cbc:PaymentMeansCode', m.code);
    if (isCredit) w.maybe('cbc:PaymentDueDate', payment.dueDate);
    w.leaf('cbc:PaymentID', model.number);
    w.open('cac:PayeeFinancialAccount').leaf('cbc:ID', m.iban).maybe('cbc:Name', m.accountName);
    if (m.bic) {
      w.open('cac:FinancialInstitutionBranch').leaf('cbc:ID', m.bic);
      w.close('cac:FinancialInstitutionBranch');
    }
    w.close('cac:PayeeFinancialAccount').close('cac:PaymentMeans');
  }
  w.open('cac:PaymentTerms').leaf('cbc:Note', payment.terms).close('cac:PaymentTerms');

  w.open('cac:TaxTotal').leaf('cbc:TaxAmount', totals.tax, currency);
  for (const v of totals.vat) {
    w.open('cac:TaxSubtotal')
      .leaf('cbc:TaxableAmount', v.taxable, currency)
      .leaf('cbc:TaxAmount', v.tax, currency);
    writeTaxCategory(w, 'cac:TaxCategory', v.category, v.rate, true);
    w.close('cac:TaxSubtotal');
  }
  w.close('cac:TaxTotal');

  w.open('cac:LegalMonetaryTotal')
    .leaf('cbc:LineExtensionAmount', totals.lineTotal, currency)
    .leaf('cbc:TaxExclusiveAmount', totals.taxExclusive, currency)
    .leaf('cbc:TaxInclusiveAmount', totals.taxInclusive, currency)
    .leaf('cbc:PayableAmount', totals.payable, currency)
    .close('cac:LegalMonetaryTotal');

  for (const line of model.lines) writeLine(w, line, isCredit, model.currency);
  w.close(root);
  return w.toString();
}

function writeParty(w: XmlWriter, party: Party): void {
  w.open('cac:Party');
  if (party.electronicAddress) {
    w.leaf('cbc:EndpointID', party.electronicAddress.id, {
      schemeID: party.electronicAddress.scheme,
    });
  }
  w.open('cac:PartyName').leaf('cbc:Name', party.name).close('cac:PartyName');
  const a = party.address;
  w.open('cac:PostalAddress')
    .leaf('cbc:StreetName', a.street)
    .maybe('cbc:AdditionalStreetName', a.additionalStreet)
    .leaf('cbc:CityName', a.city)
    .leaf('cbc:PostalZone', a.postalCode)
    .open('cac:Country')
    .leaf('cbc:IdentificationCode', a.countryCode)
    .close('cac:Country')
    .close('cac:PostalAddress');
  if (party.vatId) {
    w.open('cac:PartyTaxScheme')
      .leaf('cbc:CompanyID', party.vatId)
      .open('cac:TaxScheme')
      .leaf('cbc:ID', 'VAT')
      .close('cac:TaxScheme')
      .close('cac:PartyTaxScheme');
  }
  w.open('cac:PartyLegalEntity').leaf('cbc:RegistrationName', party.name);
  if (party.legalId) {
    w.leaf('cbc:CompanyID', party.legalId.id, { schemeID: party.legalId.scheme });
  }
  w.close('cac:PartyLegalEntity');
  if (party.email) {
    w.open('cac:Contact').leaf('cbc:ElectronicMail', party.email).close('cac:Contact');
  }
  w.close('cac:Party');
}

function writeTaxCategory(
  w: XmlWriter,
  element: string,
  category: string,
  rate: string,
  withExemption: boolean,
): void {
  w.open(element).leaf('cbc:ID', category);
  // BR-O-05: a line "not subject to VAT" carries no rate at all; the others always say theirs.
  if (category !== 'O') w.leaf('cbc:Percent', TAXED_CATEGORIES.has(category) ? rate : '0');
  const exemption = EXEMPTION[category];
  if (withExemption && exemption) {
    w.leaf('cbc:TaxExemptionReasonCode', exemption.code);
    w.leaf('cbc:TaxExemptionReason', exemption.reason);
  }
  w.open('cac:TaxScheme').leaf('cbc:ID', 'VAT').close('cac:TaxScheme');
  w.close(element);
}

function writeLine(
  w: XmlWriter,
  line: InvoiceDocumentLine,
  isCredit: boolean,
  currencyCode: string,
): void {
  const currency = { currencyID: currencyCode };
  const tag = isCredit ? 'cac:CreditNoteLine' : 'cac:InvoiceLine';
  w.open(tag)
    .leaf('cbc:ID', line.id)
    .leaf(isCredit ? 'cbc:CreditedQuantity' : 'cbc:InvoicedQuantity', line.quantity, {
      unitCode: line.unitCode,
    })
    .leaf('cbc:LineExtensionAmount', line.amount, currency)
    .open('cac:InvoicePeriod')
    .leaf('cbc:StartDate', line.servicePeriod.start)
    .leaf('cbc:EndDate', line.servicePeriod.end)
    .close('cac:InvoicePeriod')
    .open('cac:Item')
    .leaf('cbc:Name', line.name)
    .open('cac:SellersItemIdentification')
    .leaf('cbc:ID', line.module)
    .close('cac:SellersItemIdentification');
  writeTaxCategory(w, 'cac:ClassifiedTaxCategory', line.vat.category, line.vat.rate, false);
  w.close('cac:Item')
    .open('cac:Price')
    .leaf('cbc:PriceAmount', line.unitPrice, currency)
    .close('cac:Price')
    .close(tag);
}
