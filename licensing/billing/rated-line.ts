/**
 * A rated line: one licence-month of one module, billable because the licence was activated,
 * or an adjustment to a closed period. The subscription server freezes these at period close
 * and streams them to the connector as NDJSON, one object per line, in `lineId` order. Nothing
 * personal: ids, module codes, dates and money only.
 *
 * Money is decimal strings with the currency's two decimals ("1.50", "-0.48"); quantities are
 * decimal strings of licence-months with up to four decimals ("1", "0.3871"), for display: an
 * amount is computed from the exact fraction days / daysInPeriod, never from the rounded
 * quantity.
 */
import { z } from 'zod';

export const PERIOD_ID = /^\d{4}-(0[1-9]|1[0-2])$/;

export const ratedLineSchema = z.strictObject({
  /**
   * Unique and stable: `<servicePeriod>/<licenceId>/<module>` for a charge,
   * `<period>/adj/<servicePeriod>/<licenceId>/<module>` for an adjustment.
   */
  lineId: z.string().min(1).max(160),
  kind: z.enum(['charge', 'adjustment']),
  /** The period whose output carries the line. */
  period: z.string().regex(PERIOD_ID),
  /** The month the usage belongs to: the same as `period` for a charge, earlier for an adjustment. */
  servicePeriod: z.string().regex(PERIOD_ID),
  ispId: z.string().min(1).max(32),
  subscriberId: z.string().min(1).max(32),
  licenceId: z.string().min(1).max(32),
  module: z.string().min(1).max(32),
  /** Days billed: days entitled after activation (daily proration) or all days (none). */
  days: z.int().min(0).max(31),
  daysInPeriod: z.int().min(28).max(31),
  quantity: z.string().regex(/^-?\d+(\.\d{1,4})?$/),
  unitPrice: z.string().regex(/^\d+(\.\d{1,6})?$/),
  amount: z.string().regex(/^-?\d+\.\d{2}$/),
  currency: z.string().regex(/^[A-Z]{3}$/),
  /** Ledger id (`subscription_events.id`) of the activation that makes the line billable. */
  activationEventId: z.string().regex(/^\d+$/),
  activatedAt: z.iso.datetime({ offset: true }),
});

export type RatedLine = z.output<typeof ratedLineSchema>;
