/**
 * How invoice lines reach an ISP: a file in its own format (CSV, XML or fixed width) or a push
 * to its billing system's HTTP endpoint. Owned by the invoice-line formats work.
 */
import { z } from 'zod';

export const invoiceLinesSchema = z
  .strictObject({})
  .describe("Invoice lines for this ISP, in the ISP's own format.");

export type InvoiceLinesSettings = z.output<typeof invoiceLinesSchema>;
