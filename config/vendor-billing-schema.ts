/**
 * Vendor-side billing settings of a deployment (`billing:` in relais.yaml): who the seller is on
 * every invoice, how invoice numbers are written, and where the vendor's documents go. Also the
 * party shape shared with each ISP's buyer block. Owned by the vendor invoice (UBL) work.
 */
import { z } from 'zod';

export const partySchema = z
  .strictObject({
    name: z.string().min(1).max(200).describe('Registered name.'),
  })
  .describe('A company on an invoice.');

export const vendorBillingSchema = z
  .strictObject({
    seller: partySchema.optional().describe('The vendor, seller of every invoice.'),
  })
  .describe('The vendor as seller, invoice numbering and output folder.');

export type Party = z.output<typeof partySchema>;
export type VendorBillingSettings = z.output<typeof vendorBillingSchema>;
