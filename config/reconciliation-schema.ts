/**
 * How the ISP's own billing export (what it charged each customer) is read for reconciliation.
 * Owned by the reconciliation work.
 */
import { z } from 'zod';

export const reconciliationSchema = z
  .strictObject({})
  .describe("How the ISP's billing export is read and compared.");

export type ReconciliationSettings = z.output<typeof reconciliationSchema>;
