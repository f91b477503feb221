import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Decimal } from 'decimal.js';
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { validateXML } from 'xmllint-wasm';
import { packageRoot } from '../../platform/package-root.js';
import {
  aggregateRatedLines,
  documentLines,
  invoicePeriodOf,
  type VendorDocument,
} from './invoice-documents.js';
import { renderInvoiceHtml } from './invoice-html.js';
import { renderUbl } from './ubl.js';
import { BUYER, ratedLine, SELLER, streamOf } from './vendor-fixtures.test-helper.js';

// biome-ignore lint/suspicious/noExplicitAny: parsed XML has no static shape; the test reads it.
type Xml = any;

const XSD_DIR = join(packageRoot(), 'licensing/billing/ubl-xsd');
const xsd = (name: string) => ({
  fileName: name,
  contents: readFileSync(join(XSD_DIR, name), 'utf8'),
});

/** Validates against the shipped UBL 2.1 subset schemas (see ubl-xsd/README.md). */
async function validate(xml: string, root: 'Invoice' | 'CreditNote') {
  const result = await validateXML({
    xml: [{ fileName: 'document.xml', contents: xml }],
    schema: [xsd(`UBL-${root}-2.1-subset.xsd`)],
    preload: [
      xsd('UBL-CommonAggregateComponents-2.1-subset.xsd'),
      xsd('UBL-CommonBasicComponents-2.1-subset.xsd'),
    ],
  });
  return { valid: result.valid, errors: result.errors.map((e) => e.message) };
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  isArray: (name) => ['cac:InvoiceLine', 'cac:CreditNoteLine', 'cac:TaxSubtotal'].includes(name),
});

async function documents(): Promise<{ invoice: VendorDocument; credit: VendorDocument }> {
  const lines = [
    ...Array.from({ length: 3 }, () => ratedLine()),
    ratedLine({ days: 12, quantity: '0.4', amount: '0.48' }),
    ratedLine({ days: 12, quantity: '0.4', amount: '0.48' }),
    ratedLine({ module: 'parental-control', unitPrice: '0.90', amount: '0.90' }),
    ratedLine({ kind: 'adjustment', servicePeriod: '2026-10', daysInPeriod: 31, days: 31 }),
    ratedLine({
      kind: 'adjustment',
      servicePeriod: '2026-10',
      daysInPeriod: 31,
      days: 31,
      amount: '-1.20',
    }),
  ];
  const agg = await aggregateRatedLines(streamOf(lines), {
    ispId: 'demo-fai',
    period: '2026-11',
    currency: 'EUR',
  });
  const vat = { category: 'S', rate: '20' };
  const base = {
    ispId: 'demo-fai',
    period: '2026-11',
    currency: 'EUR',
    seller: SELLER,
    buyer: BUYER,
    issueDate: '2026-12-04',
  };
  const invLines = documentLines(agg.invoice, vat);
  const cnLines = documentLines(agg.creditNote, vat);
  return {
    invoice: {
      model: {
        ...base,
        type: 'invoice',
        number: 'SL-2026-000007',
        invoicePeriod: invoicePeriodOf('2026-11', invLines, 'invoice'),
        lines: invLines,
      },
      payment: {
        dueDate: '2027-01-03',
        terms: 'Payment within 30 days & no discount.',
        means: { code: '58', iban: 'FR7630006000011234567890189', bic: 'AGRIFRPP' },
      },
    },
    credit: {
      model: {
        ...base,
        type: 'credit-note',
        number: 'SL-2026-000008',
        invoicePeriod: invoicePeriodOf('2026-11', cnLines, 'credit-note'),
        precedingInvoice: { number: 'SL-2026-000003', issueDate: '2026-11-04' },
        lines: cnLines,
      },
      payment: { terms: 'Deducted from the next payment.' },
    },
  };
}

/** The EN 16931 sum rules, checked on the XML as a receiver would read it. */
function checkSumRules(doc: Record<string, unknown>, lineTag: string, qtyTag: string): void {
  const d = doc as Xml;
  const lines = d[lineTag] as Xml[];
  let sum = new Decimal(0);
  for (const line of lines) {
    const qty = new Decimal(line[qtyTag]['#text']);
    const price = new Decimal(line['cac:Price']['cbc:PriceAmount']['#text']);
    const amount = new Decimal(line['cbc:LineExtensionAmount']['#text']);
    // R120 allows 0.02 of slack; grouping makes it exact.
    expect(qty.times(price).equals(amount)).toBe(true);
    expect(price.isNegative()).toBe(false); // BR-27
    expect(line[qtyTag]['@unitCode']).toBe('C62');
    sum = sum.plus(amount);
  }
  const total = d['cac:LegalMonetaryTotal'];
  const n = (v: { '#text': string }) => new Decimal(v['#text']);
  expect(sum.equals(n(total['cbc:LineExtensionAmount']))).toBe(true); // BR-CO-10
  const taxTotal = n(d['cac:TaxTotal']['cbc:TaxAmount']);
  expect(
    n(total['cbc:TaxInclusiveAmount']).equals(n(total['cbc:TaxExclusiveAmount']).plus(taxTotal)),
  ).toBe(true); // BR-CO-15
  const subtotals = d['cac:TaxTotal']['cac:TaxSubtotal'] as Xml[];
  const subSum = subtotals.reduce((s, t) => s.plus(n(t['cbc:TaxAmount'])), new Decimal(0));
  expect(subSum.equals(taxTotal)).toBe(true); // BR-CO-14
}

describe('renderUbl', () => {
  it('writes an invoice that validates against the UBL 2.1 schema subset', async () => {
    const { invoice } = await documents();
    const xml = renderUbl(invoice);
    expect(await validate(xml, 'Invoice')).toEqual({ valid: true, errors: [] });
  });

  it('writes a credit note 381 that names the invoice it corrects', async () => {
    const { credit } = await documents();
    const xml = renderUbl(credit);
    expect(await validate(xml, 'CreditNote')).toEqual({ valid: true, errors: [] });
    const doc = parser.parse(xml).CreditNote;
    expect(doc['cbc:CreditNoteTypeCode']).toBe('381');
    expect(doc['cac:BillingReference']['cac:InvoiceDocumentReference']).toEqual({
      'cbc:ID': 'SL-2026-000003',
      'cbc:IssueDate': '2026-11-04',
    });
    checkSumRules(doc, 'cac:CreditNoteLine', 'cbc:CreditedQuantity');
    expect(doc['cac:LegalMonetaryTotal']['cbc:PayableAmount']['#text']).toBe('1.44');
  });

  it('carries the EN 16931 core fields and satisfies the sum rules', async () => {
    const { invoice } = await documents();
    const doc = parser.parse(renderUbl(invoice)).Invoice;
    expect(doc['cbc:CustomizationID']).toBe('urn:cen.eu:en16931:2017');
    expect(doc['cbc:InvoiceTypeCode']).toBe('380');
    expect(doc['cbc:DueDate']).toBe('2027-01-03');
    expect(doc['cac:InvoicePeriod']).toEqual({
      'cbc:StartDate': '2026-10-01',
      'cbc:EndDate': '2026-11-30',
    });
    const seller = doc['cac:AccountingSupplierParty']['cac:Party'];
    expect(seller['cbc:EndpointID']).toEqual({ '#text': '123456782', '@schemeID': '0225' });
    expect(seller['cac:PartyTaxScheme']['cbc:CompanyID']).toBe('FR11123456782');
    expect(seller['cac:PartyLegalEntity']['cbc:CompanyID']).toEqual({
      '#text': '123456782',
      '@schemeID': '0002',
    });
    expect(doc['cac:AccountingCustomerParty']['cac:Party']['cac:PartyName']['cbc:Name']).toBe(
      BUYER.name,
    );
    expect(doc['cac:PaymentMeans']['cac:PayeeFinancialAccount']['cbc:ID']).toBe(
      'FR7630006000011234567890189',
    );
    checkSumRules(doc, 'cac:InvoiceLine', 'cbc:InvoicedQuantity');
    const lines = doc['cac:InvoiceLine'] as Xml[];
    expect(lines.map((l) => l['cac:Item']['cbc:Name'])).toEqual([
      'antivirus, 2026-11',
      'antivirus, 2026-11, 12/30 days',
      'parental-control, 2026-11',
      'antivirus, adjustment for 2026-10',
    ]);
    // 3.60 + 0.96 + 0.90 + 1.20 = 6.66; VAT 20 % = 1.332 → 1.33.
    expect(doc['cac:TaxTotal']['cbc:TaxAmount']['#text']).toBe('1.33');
    expect(doc['cac:LegalMonetaryTotal']['cbc:PayableAmount']['#text']).toBe('7.99');
    for (const line of lines) {
      const period = line['cac:InvoicePeriod'];
      expect(period['cbc:StartDate'] >= doc['cac:InvoicePeriod']['cbc:StartDate']).toBe(true);
      expect(period['cbc:EndDate'] <= doc['cac:InvoicePeriod']['cbc:EndDate']).toBe(true);
    }
  });

  it('escapes text and renders the same bytes every time', async () => {
    const { invoice } = await documents();
    const xml = renderUbl(invoice);
    expect(xml).toContain('Demo FAI &lt;SAS&gt; &amp; &quot;Co&quot;');
    expect(xml).toContain('Payment within 30 days &amp; no discount.');
    expect(renderUbl(structuredClone(invoice))).toBe(xml);
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<Invoice ')).toBe(true);
  });

  it.each([
    [
      'an element out of schema order',
      (x: string) =>
        x.replace(
          /<cbc:DueDate>[^<]*<\/cbc:DueDate>\n\s*(<cbc:InvoiceTypeCode>380<\/cbc:InvoiceTypeCode>)/,
          '$1\n  <cbc:DueDate>2027-01-03</cbc:DueDate>',
        ),
    ],
    ['an amount with three decimals', (x: string) => x.replace('>3.60<', '>3.605<')],
    [
      'an amount without currency',
      (x: string) => x.replace(/<cbc:PayableAmount currencyID="EUR">/, '<cbc:PayableAmount>'),
    ],
    [
      'no invoice line',
      (x: string) => x.replace(/\s*<cac:InvoiceLine>[\s\S]*<\/cac:InvoiceLine>/, ''),
    ],
  ])('the schema check refuses %s', async (_what, mutate) => {
    const { invoice } = await documents();
    const xml = renderUbl(invoice);
    const broken = mutate(xml);
    expect(broken).not.toBe(xml);
    const result = await validate(broken, 'Invoice');
    expect(result.valid).toBe(false);
    expect(result.errors.length).toBeGreaterThan(0);
  });
});

describe('renderInvoiceHtml', () => {
  it('shows seller, buyer, number, lines, VAT and totals, escaped and self-contained', async () => {
    const { invoice, credit } = await documents();
    const html = renderInvoiceHtml(invoice);
    expect(html).toContain('<title>Invoice SL-2026-000007</title>');
    expect(html).toContain('Sentinelle Logiciels SAS');
    expect(html).toContain('Demo FAI &lt;SAS&gt; &amp; &quot;Co&quot;');
    expect(html).toContain('antivirus, 2026-11, 12/30 days');
    expect(html).toContain('<td class="n">7.99 EUR</td>');
    expect(html).toContain('<td class="n">1.33</td>');
    expect(html).not.toMatch(/<script|<link|src=|https?:/);
    expect(renderInvoiceHtml(structuredClone(invoice))).toBe(html);
    const cn = renderInvoiceHtml(credit);
    expect(cn).toContain('Credit note SL-2026-000008');
    expect(cn).toContain('Corrects invoice</th><td>SL-2026-000003 of 2026-11-04');
  });
});
