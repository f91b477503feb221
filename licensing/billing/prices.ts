/**
 * The price list a period is rated with: of an ISP's versioned lists (config `billing.prices`,
 * in increasing order of `from`), the one in force on the period's first day in the ISP's time
 * zone. A list changing on the 15th therefore applies from the next period: a month is never
 * rated at two prices. A module without a price is an error naming ISP, period and module.
 */
import type { BillingSettings } from '../../config/billing-schema.js';
import { ConfigError } from '../../platform/errors.js';
import { type Money, parseMoney } from './money.js';

export interface PeriodPrices {
  /** `from` of the list in force. */
  from: string;
  /** Module code → price of one licence-month, as written in the config. */
  modules: Record<string, string>;
}

/** The list in force on the first day of `period` (YYYY-MM). */
export function pricesFor(ispId: string, billing: BillingSettings, period: string): PeriodPrices {
  const firstDay = `${period}-01`;
  let found: PeriodPrices | undefined;
  for (const list of billing.prices) {
    if (list.from <= firstDay) found = { from: list.from, modules: { ...list.modules } };
  }
  if (!found) {
    const first = billing.prices[0]?.from ?? 'none';
    throw new ConfigError(
      'BILLING_PRICE_MISSING',
      `ISP ${ispId} has no price list in force on ${firstDay} for period ${period}: its first list starts on ${first}`,
      { ispId, period },
    );
  }
  return found;
}

/** The price of `module`, or BILLING_PRICE_MISSING naming the ISP, the period and the module. */
export function unitPriceOf(
  ispId: string,
  period: string,
  prices: PeriodPrices,
  module: string,
): Money {
  const text = prices.modules[module];
  if (text === undefined) throw missingPrice(ispId, period, prices, [module]);
  return parseMoney(text);
}

export function missingPrice(
  ispId: string,
  period: string,
  prices: PeriodPrices,
  modules: readonly string[],
): ConfigError {
  const list = [...modules].sort().join(', ');
  return new ConfigError(
    'BILLING_PRICE_MISSING',
    `ISP ${ispId} cannot be rated for period ${period}: no price for module${modules.length === 1 ? '' : 's'} ${list} in its price list from ${prices.from}`,
    { ispId, period, modules: [...modules].sort() },
  );
}
