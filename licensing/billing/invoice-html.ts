/**
 * The human-readable summary of a vendor document: one self-contained HTML page (inline style,
 * no script, no external asset) with the seller, the buyer, the number, the period, the lines,
 * the VAT and the totals. It prints the same model and the same totals as the UBL file, so the
 * two can never disagree. Deterministic: no clock, every text HTML-escaped.
 */
import type { Party } from '../../config/vendor-billing-schema.js';
import { escapeHtml } from '../../platform/html.js';
import { documentTotals, type VendorDocument } from './invoice-documents.js';

const STYLE = [
  'body{font-family:sans-serif;margin:2em;color:#222}',
  'table{border-collapse:collapse;width:100%;margin:1em 0}',
  'th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}',
  'td.n,th.n{text-align:right}',
  '.parties{display:flex;gap:4em}',
].join('');

export function renderInvoiceHtml(doc: VendorDocument): string {
  const { model, payment } = doc;
  const t = documentTotals(model);
  const e = escapeHtml;
  const cur = e(model.currency);
  const title = `${model.type === 'credit-note' ? 'Credit note' : 'Invoice'} ${model.number}`;
  const rows = model.lines.map(
    (l) =>
      `<tr><td>${e(l.id)}</td><td>${e(l.name)}</td><td>${e(l.servicePeriod.start)} – ${e(l.servicePeriod.end)}</td>` +
      `<td class="n">${e(l.quantity)}</td><td class="n">${e(l.unitPrice)}</td>` +
      `<td>${e(l.vat.category)} ${e(l.vat.rate)} %</td><td class="n">${e(l.amount)}</td></tr>`,
  );
  const vatRows = t.vat.map(
    (v) =>
      `<tr><td>${e(v.category)}</td><td class="n">${e(v.rate)} %</td>` +
      `<td class="n">${e(v.taxable)}</td><td class="n">${e(v.tax)}</td></tr>`,
  );
  const facts = [
    ['Number', model.number],
    ['Issue date', model.issueDate],
    ...(payment.dueDate ? [['Due date', payment.dueDate]] : []),
    ['Period', `${model.invoicePeriod.start} – ${model.invoicePeriod.end}`],
    ['Currency', model.currency],
    ...(model.precedingInvoice
      ? [
          [
            'Corrects invoice',
            `${model.precedingInvoice.number} of ${model.precedingInvoice.issueDate}`,
          ],
        ]
      : []),
  ].map(([k, v]) => `<tr><th>${e(k as string)}</th><td>${e(v as string)}</td></tr>`);
  const means = payment.means
    ? `<p>Pay to IBAN ${e(payment.means.iban)}${payment.means.bic ? ` (BIC ${e(payment.means.bic)})` : ''}, reference ${e(model.number)}.</p>`
    : '';

  return `${[
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${e(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${e(title)}</h1>`,
    '<div class="parties">',
    partyBlock('Seller', model.seller),
    partyBlock('Buyer', model.buyer),
    '</div>',
    `<table class="facts">${facts.join('')}</table>`,
    '<table class="lines">',
    '<tr><th>#</th><th>Item</th><th>Service period</th><th class="n">Quantity</th>' +
      `<th class="n">Unit price (${cur})</th><th>VAT</th><th class="n">Amount (${cur})</th></tr>`,
    ...rows,
    '</table>',
    '<table class="vat">',
    `<tr><th>VAT category</th><th class="n">Rate</th><th class="n">Taxable (${cur})</th><th class="n">VAT (${cur})</th></tr>`,
    ...vatRows,
    '</table>',
    '<table class="totals">',
    `<tr><th>Total without VAT</th><td class="n">${e(t.taxExclusive)} ${cur}</td></tr>`,
    `<tr><th>VAT</th><td class="n">${e(t.tax)} ${cur}</td></tr>`,
    `<tr><th>Total with VAT</th><td class="n">${e(t.taxInclusive)} ${cur}</td></tr>`,
    `<tr><th>${model.type === 'credit-note' ? 'Amount credited' : 'Amount due'}</th><td class="n">${e(t.payable)} ${cur}</td></tr>`,
    '</table>',
    `<p>${e(payment.terms)}</p>`,
    means,
    '</body>',
    '</html>',
  ]
    .filter((line) => line !== '')
    .join('\n')}\n`;
}

function partyBlock(role: string, p: Party): string {
  const e = escapeHtml;
  const lines = [
    `<strong>${e(p.name)}</strong>`,
    e(p.address.street),
    ...(p.address.additionalStreet ? [e(p.address.additionalStreet)] : []),
    `${e(p.address.postalCode)} ${e(p.address.city)}`,
    e(p.address.countryCode),
    ...(p.vatId ? [`VAT ${e(p.vatId)}`] : []),
    ...(p.legalId ? [`Company id ${e(p.legalId.id)}`] : []),
    ...(p.email ? [e(p.email)] : []),
  ];
  return `<div class="party"><h2>${e(role)}</h2><p>${lines.join('<br>')}</p></div>`;
}
