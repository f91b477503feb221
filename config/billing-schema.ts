/**
 * The `billing` section of an ISP file: what the vendor charges this ISP (prices per module,
 * versioned by effective date, in one currency), how a month is counted (proration) and rounded,
 * when a period closes, who the buyer is on the vendor's invoice, and the connector-side
 * outputs: the invoice-line file or push in the ISP's own format, the outbox it goes to, and the
 * ISP billing export reconciliation reads. Each output's options live in their own file.
 *
 * Money is written as decimal strings ("1.50"); a YAML number is accepted and read through its
 * shortest decimal spelling, so 1.5 is "1.5", never a binary fraction.
 */
import { z } from 'zod';
import { billingOutboxSchema } from './billing-outbox-schema.js';
import { moduleCode } from './fields.js';
import { invoiceLinesSchema } from './invoice-lines-schema.js';
import { reconciliationSchema } from './reconciliation-schema.js';
import { partySchema } from './vendor-billing-schema.js';

/** A non-negative decimal with at most 6 decimals, as a string. */
export const decimalString = z
  .union([z.string(), z.number().transform((n) => String(n))])
  .pipe(
    z
      .string()
      .regex(/^\d{1,12}(\.\d{1,6})?$/, 'expected a decimal such as 1.50 (point, no sign, no unit)'),
  );

/** ISO 4217 currency code. */
export const currencyCode = z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code such as EUR');

const isoDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date written YYYY-MM-DD')
  .refine((s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)), 'not a calendar date');

export const priceListSchema = z
  .strictObject({
    from: isoDay.describe(
      'First day (in the ISP time zone) these prices apply to; a period is rated with the list in force on its first day.',
    ),
    modules: z
      .record(moduleCode, decimalString)
      .describe('Price of one licence-month of each module, excluding VAT.'),
  })
  .describe('One version of the price list.');

export const billingSchema = z
  .strictObject({
    currency: currencyCode.default('EUR').describe('Currency of every price and amount.'),
    proration: z
      .enum(['none', 'daily'])
      .default('none')
      .describe(
        'none: a module entitled on any day after activation counts as the whole month; daily: days entitled after activation / days in the period.',
      ),
    rounding: z
      .enum(['half-up', 'half-even'])
      .default('half-up')
      .describe('How each line amount is rounded to the currency minor unit (cents).'),
    cutoffDays: z
      .int()
      .min(0)
      .max(28)
      .default(3)
      .describe(
        'Days after the end of a period before it closes; events recorded later become adjustments in the next period.',
      ),
    vat: z
      .strictObject({
        category: z
          .enum(['S', 'Z', 'E', 'AE', 'K', 'G', 'O', 'L', 'M'])
          .default('S')
          .describe('EN 16931 VAT category code (UNCL5305): S standard, AE reverse charge, ...'),
        rate: decimalString.default('20').describe('VAT rate in percent, e.g. "20".'),
      })
      .prefault({})
      .describe('VAT of the vendor invoice to this ISP.'),
    prices: z
      .array(priceListSchema)
      .min(1)
      .describe('Price list versions, each applying from its date until the next one.'),
    buyer: partySchema.optional().describe('The ISP as buyer on the vendor invoice.'),
    invoiceLines: invoiceLinesSchema.optional(),
    outbox: billingOutboxSchema.optional(),
    reconciliation: reconciliationSchema.optional(),
  })
  .superRefine((billing, ctx) => {
    const dates = billing.prices.map((p) => p.from);
    const sorted = [...dates].sort();
    if (dates.some((d, i) => d !== sorted[i]) || new Set(dates).size !== dates.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['prices'],
        message: 'price lists must be in increasing order of from, each date once',
      });
    }
  })
  .describe('What the vendor bills this ISP, and the month-end outputs for it.');

export type BillingSettings = z.output<typeof billingSchema>;
export type PriceList = z.output<typeof priceListSchema>;
