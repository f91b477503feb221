import { Decimal } from 'decimal.js';
import { describe, expect, it } from 'vitest';
import {
  aggregateRatedLines,
  documentLines,
  documentTotals,
  invoicePeriodOf,
} from './invoice-documents.js';
import type { InvoiceDocument } from './invoice-model.js';
import { BUYER, ratedLine, SELLER, streamOf } from './vendor-fixtures.test-helper.js';

const expectIsp = { ispId: 'demo-fai', period: '2026-11', currency: 'EUR' };
const VAT = { category: 'S', rate: '20' };

function docOf(lines: InvoiceDocument['lines']): InvoiceDocument {
  return {
    type: 'invoice',
    number: 'SL-2026-000001',
    issueDate: '2026-12-04',
    ispId: 'demo-fai',
    period: '2026-11',
    invoicePeriod: { start: '2026-11-01', end: '2026-11-30' },
    currency: 'EUR',
    seller: SELLER,
    buyer: BUYER,
    lines,
  };
}

describe('aggregateRatedLines', () => {
  it('groups rated lines so each document line is exactly quantity × unit price', async () => {
    const lines = [
      ...Array.from({ length: 3 }, () => ratedLine()),
      ...Array.from({ length: 2 }, () =>
        ratedLine({ module: 'firewall', unitPrice: '0.80', amount: '0.80' }),
      ),
      // Prorated: 12 of 30 days at 1.20 = 0.48 each.
      ...Array.from({ length: 4 }, () => ratedLine({ days: 12, quantity: '0.4', amount: '0.48' })),
    ];
    const agg = await aggregateRatedLines(streamOf(lines), expectIsp);
    const doc = documentLines(agg.invoice, VAT);

    expect(agg.ratedLines).toBe(9);
    expect(agg.creditNote).toEqual([]);
    expect(doc.map((l) => [l.name, l.quantity, l.unitPrice, l.amount])).toEqual([
      ['antivirus, 2026-11', '3', '1.20', '3.60'],
      ['antivirus, 2026-11, 12/30 days', '4', '0.48', '1.92'],
      ['firewall, 2026-11', '2', '0.80', '1.60'],
    ]);
    for (const l of doc) {
      expect(new Decimal(l.quantity).times(l.unitPrice).toFixed(2)).toBe(l.amount);
    }
    const sumRated = lines.reduce((s, l) => s.plus(l.amount), new Decimal(0)).toFixed(2);
    expect(documentTotals(docOf(doc)).lineTotal).toBe(sumRated);
  });

  it('puts negative adjustments on a credit note and positive ones on the invoice', async () => {
    const lines = [
      ratedLine(),
      ratedLine({ kind: 'adjustment', servicePeriod: '2026-10', daysInPeriod: 31, days: 31 }),
      ratedLine({
        kind: 'adjustment',
        servicePeriod: '2026-10',
        daysInPeriod: 31,
        days: 12,
        quantity: '-0.3871',
        amount: '-0.46',
      }),
      ratedLine({
        kind: 'adjustment',
        servicePeriod: '2026-10',
        daysInPeriod: 31,
        days: 31,
        amount: '-1.20',
      }),
    ];
    const agg = await aggregateRatedLines(streamOf(lines), expectIsp);
    const invoice = documentLines(agg.invoice, VAT);
    const credit = documentLines(agg.creditNote, VAT);

    expect(invoice.map((l) => l.name)).toEqual([
      'antivirus, 2026-11',
      'antivirus, adjustment for 2026-10',
    ]);
    expect(credit.map((l) => [l.name, l.quantity, l.unitPrice, l.amount])).toEqual([
      ['antivirus, adjustment for 2026-10', '1', '1.20', '1.20'],
      ['antivirus, adjustment for 2026-10, 12/31 days', '1', '0.46', '0.46'],
    ]);
    expect(credit.every((l) => !l.unitPrice.startsWith('-'))).toBe(true);
    expect(invoicePeriodOf('2026-11', invoice, 'invoice')).toEqual({
      start: '2026-10-01',
      end: '2026-11-30',
    });
    expect(invoicePeriodOf('2026-11', credit, 'credit-note')).toEqual({
      start: '2026-10-01',
      end: '2026-10-31',
    });
  });

  it('gives the same lines in the same order whatever the input order', async () => {
    const lines = [
      ratedLine({ module: 'firewall', unitPrice: '0.80', amount: '0.80' }),
      ratedLine({ kind: 'adjustment', servicePeriod: '2026-09' }),
      ratedLine(),
      ratedLine({ days: 3, amount: '0.12' }),
      ratedLine({ module: 'backup', unitPrice: '1.50', amount: '1.50' }),
    ];
    const a = await aggregateRatedLines(streamOf(lines), expectIsp);
    const b = await aggregateRatedLines(streamOf([...lines].reverse()), expectIsp);
    expect(documentLines(b.invoice, VAT)).toEqual(documentLines(a.invoice, VAT));
    expect(documentLines(a.invoice, VAT).map((l) => l.name)).toEqual([
      'antivirus, 2026-11',
      'antivirus, 2026-11, 3/30 days',
      'backup, 2026-11',
      'firewall, 2026-11',
      'antivirus, adjustment for 2026-09',
    ]);
  });

  it('finds nothing to invoice in an empty period', async () => {
    const agg = await aggregateRatedLines(streamOf([]), expectIsp);
    expect(agg).toMatchObject({ ratedLines: 0, invoice: [], creditNote: [] });
  });

  it.each([
    ['another ISP', { ispId: 'alpha-telecom' }],
    ['another period', { period: '2026-10' }],
    ['another currency', { currency: 'USD' }],
  ])('refuses a rated line of %s', async (_what, over) => {
    await expect(aggregateRatedLines(streamOf([ratedLine(over)]), expectIsp)).rejects.toThrow(
      /rated line/,
    );
  });
});

describe('documentTotals', () => {
  it('rounds VAT once per category, half-up, and satisfies BR-CO-10 and BR-CO-15', () => {
    // 0.48 × 20 % = 0.096 per line; rounded per line it would be 0.10 × 3 = 0.30, rounded once
    // on the sum it is 1.44 × 20 % = 0.288 → 0.29.
    const lines = documentLines([], VAT);
    const doc = docOf([
      ...lines,
      {
        id: '1',
        module: 'antivirus',
        name: 'antivirus, 2026-11, 12/30 days',
        quantity: '3',
        unitCode: 'C62',
        unitPrice: '0.48',
        amount: '1.44',
        servicePeriod: { start: '2026-11-01', end: '2026-11-30' },
        vat: VAT,
      },
      {
        id: '2',
        module: 'backup',
        name: 'backup, 2026-11',
        quantity: '1',
        unitCode: 'C62',
        unitPrice: '0.25',
        amount: '0.25',
        servicePeriod: { start: '2026-11-01', end: '2026-11-30' },
        vat: { category: 'S', rate: '5.5' },
      },
    ]);
    const t = documentTotals(doc);
    expect(t.vat).toEqual([
      // 0.25 × 5.5 % = 0.01375 → 0.01
      { category: 'S', rate: '5.5', taxable: '0.25', tax: '0.01' },
      { category: 'S', rate: '20', taxable: '1.44', tax: '0.29' },
    ]);
    expect(t.lineTotal).toBe('1.69');
    expect(t.tax).toBe('0.30');
    expect(t.taxInclusive).toBe(new Decimal(t.taxExclusive).plus(t.tax).toFixed(2));
    expect(t.payable).toBe('1.99');
  });

  it('rounds an exact half cent up', () => {
    const doc = docOf([
      {
        id: '1',
        module: 'antivirus',
        name: 'antivirus, 2026-11',
        quantity: '1',
        unitCode: 'C62',
        unitPrice: '0.25',
        amount: '0.25',
        servicePeriod: { start: '2026-11-01', end: '2026-11-30' },
        vat: { category: 'S', rate: '10' },
      },
    ]);
    // 0.025 → 0.03 half-up (half-even would give 0.02).
    expect(documentTotals(doc).tax).toBe('0.03');
  });
});
