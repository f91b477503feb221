/**
 * Where the month-end files of an ISP are delivered: its outbox in a local folder or on its SFTP
 * server. Owned by the outbox delivery work.
 */
import { z } from 'zod';

export const billingOutboxSchema = z
  .strictObject({})
  .describe('Where the invoice-line file is delivered.');

export type BillingOutboxSettings = z.output<typeof billingOutboxSchema>;
