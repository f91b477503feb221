/**
 * Writes invoice lines as CSV: one row per line, columns as declared. Quoting follows RFC 4180
 * (a field holding the delimiter, the quote or a line break is quoted, quotes are doubled), so
 * the intake CSV reader, and any spreadsheet, reads back exactly what was written.
 */
import type { Writable } from 'node:stream';
import type { CsvInvoiceLines } from '../../config/invoice-lines-schema.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { type WriteResult, writeLines } from './output.js';
import { compileLineValue, type Formatting, type InvoiceLinesContext } from './values.js';

function escapeRegExp(char: string): string {
  return char.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export function writeCsvInvoiceLines(
  settings: CsvInvoiceLines,
  lines: AsyncIterable<IspInvoiceLine>,
  out: Writable,
  ctx: InvoiceLinesContext,
): Promise<WriteResult> {
  const fmt: Formatting = { ...ctx, ...settings };
  const { delimiter, quote } = settings;
  const eol = settings.lineEnding === 'crlf' ? '\r\n' : '\n';
  const doubled = quote + quote;
  const quoteAll = settings.quoting === 'all';
  const quoted = (text: string) => `${quote}${text.split(quote).join(doubled)}${quote}`;
  const special = new RegExp(`[${escapeRegExp(delimiter)}${escapeRegExp(quote)}\r\n]`);
  const field = (text: string) => (quoteAll || special.test(text) ? quoted(text) : text);

  const getters = settings.columns.map((column, i) =>
    compileLineValue(column, fmt, `billing.invoiceLines.columns.${i}`),
  );
  const count = getters.length;
  const header = settings.columns
    .map((c) => field(c.header ?? (c.field as string)))
    .join(delimiter);

  return writeLines(lines, out, ctx, settings.encoding, {
    head: (sink) => {
      if (settings.bom) sink.pushBytes(UTF8_BOM);
      if (settings.header) sink.push(header + eol);
    },
    body: (line) => {
      let row = field((getters[0] as (l: IspInvoiceLine) => string)(line));
      for (let i = 1; i < count; i++) {
        row += delimiter + field((getters[i] as (l: IspInvoiceLine) => string)(line));
      }
      return row + eol;
    },
  });
}
