/**
 * Writes invoice lines as an XML file: the declaration, the root element with its namespaces
 * and own values, one element per line, an optional trailer with count and total, then the root
 * end tag. Streamed: the root is opened before the first line and closed after the last.
 */
import type { Writable } from 'node:stream';
import type { XmlInvoiceLines } from '../../config/invoice-lines-schema.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { type WriteResult, writeLines } from './output.js';
import type { Formatting, InvoiceLinesContext } from './values.js';
import { compileXmlDocument } from './xml-layout.js';

export function writeXmlInvoiceLines(
  settings: XmlInvoiceLines,
  lines: AsyncIterable<IspInvoiceLine>,
  out: Writable,
  ctx: InvoiceLinesContext,
): Promise<WriteResult> {
  const fmt: Formatting = { ...ctx, ...settings };
  const doc = compileXmlDocument(settings, fmt, settings.encoding, 'billing.invoiceLines');
  return writeLines(lines, out, ctx, settings.encoding, {
    // The schema keeps count and total off the root, so it is written before any line.
    head: (sink) => sink.push(doc.open({ count: 0, total: '0.00' })),
    body: doc.line,
    tail: doc.close,
  });
}
