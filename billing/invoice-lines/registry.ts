/**
 * Picks the invoice-line writer an ISP's config declares (`billing.invoiceLines.type`), names
 * its file, and builds the writing context from the ISP config. This is the one list of file
 * formats: a new one adds its writer here. `http` is not a file: see `http-push.ts`.
 *
 * @remarks Writers only turn lines into bytes. Fetching the rated lines from the subscription
 * server and delivering the file to the ISP's outbox are not theirs.
 */
import type { Writable } from 'node:stream';
import type {
  InvoiceFileSettings,
  InvoiceLinesSettings,
} from '../../config/invoice-lines-schema.js';
import type { IspConfig } from '../../config/load.js';
import { ConfigError } from '../../platform/errors.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { writeCsvInvoiceLines } from './csv-writer.js';
import { writeFixedWidthInvoiceLines } from './fixed-width-writer.js';
import type { WriteResult } from './output.js';
import type { InvoiceLinesContext } from './values.js';
import { writeXmlInvoiceLines } from './xml-writer.js';

export type { WriteResult } from './output.js';
export type { InvoiceLinesContext } from './values.js';

export type InvoiceLinesWriter<S extends InvoiceFileSettings> = (
  settings: S,
  lines: AsyncIterable<IspInvoiceLine>,
  out: Writable,
  ctx: InvoiceLinesContext,
) => Promise<WriteResult>;

const WRITERS: {
  [T in InvoiceFileSettings['type']]: InvoiceLinesWriter<Extract<InvoiceFileSettings, { type: T }>>;
} = {
  csv: writeCsvInvoiceLines,
  xml: writeXmlInvoiceLines,
  'fixed-width': writeFixedWidthInvoiceLines,
};

export function isInvoiceFile(settings: InvoiceLinesSettings): settings is InvoiceFileSettings {
  return settings.type !== 'http';
}

/**
 * Writes the lines in the declared format to `out` and ends it. Memory does not grow with the
 * number of lines; the same lines and config always give the same bytes. On error `out` is
 * destroyed and what it holds must be discarded.
 *
 * @throws ConfigError BILLING_LINE_UNWRITABLE when a value cannot be written as declared (a
 * module missing from a map, a value wider than its field, a character the encoding lacks).
 * @throws InternalError when the lines are not this file's or not in strictly increasing lineId
 * order (a repeated line would bill twice).
 */
export function writeInvoiceLines(
  settings: InvoiceFileSettings,
  lines: AsyncIterable<IspInvoiceLine>,
  out: Writable,
  ctx: InvoiceLinesContext,
): Promise<WriteResult> {
  const writer = WRITERS[settings.type] as InvoiceLinesWriter<InvoiceFileSettings>;
  return writer(settings, lines, out, ctx);
}

/** The file name for a period: `fileName` with {isp} and {period} replaced. */
export function invoiceLinesFileName(
  settings: InvoiceFileSettings,
  ctx: InvoiceLinesContext,
): string {
  return settings.fileName.replaceAll('{isp}', ctx.ispId).replaceAll('{period}', ctx.period);
}

/** The ISP's invoice-line settings and writing context for a period. */
export function invoiceLinesFor(
  isp: IspConfig,
  period: string,
): { settings: InvoiceLinesSettings; ctx: InvoiceLinesContext } {
  const settings = isp.billing?.invoiceLines;
  if (!isp.billing || !settings) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `ISP ${isp.id} has no billing.invoiceLines: declare its format in ${isp.file}`,
      { isp: isp.id },
    );
  }
  const ctx = { ispId: isp.id, period, timeZone: isp.timeZone, currency: isp.billing.currency };
  return { settings, ctx };
}
