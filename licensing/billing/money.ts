/**
 * Money for rating, in exact decimal arithmetic (decimal.js): prices are parsed from the ISP
 * config's decimal strings, amounts are rounded once per line to the currency's two decimals
 * with the ISP's rule, and everything leaves as a decimal string. Nothing here is a float.
 */
import { Decimal } from 'decimal.js';
import { InternalError } from '../../platform/errors.js';

/**
 * A private Decimal with room to spare: a price has at most 18 digits and is multiplied by at
 * most 31 days, so 40 significant digits hold every product exactly and every quotient far
 * past the point where its rounding to cents is decided.
 */
const Exact = Decimal.clone({ precision: 40, toExpNeg: -40, toExpPos: 40 });
export type Money = InstanceType<typeof Exact>;

export type RoundingRule = 'half-up' | 'half-even';

const ROUNDING_MODES: Record<RoundingRule, Decimal.Rounding> = {
  'half-up': Exact.ROUND_HALF_UP,
  'half-even': Exact.ROUND_HALF_EVEN,
};

const DECIMAL_TEXT = /^-?\d{1,18}(\.\d{1,6})?$/;

/** A decimal string ("1.50", "-0.48") as an exact value; anything else is a bug upstream. */
export function parseMoney(text: string): Money {
  if (!DECIMAL_TEXT.test(text)) {
    throw new InternalError('INTERNAL', `not a decimal amount: "${text}"`);
  }
  return new Exact(text);
}

/** The exact fraction value × numerator / denominator, unrounded. */
export function prorate(value: Money, numerator: number, denominator: number): Money {
  return value.times(numerator).div(denominator);
}

/** Rounded to 2 decimals with the rule. Half-up goes away from zero on a tie (-0.125 → -0.13). */
export function roundCents(value: Money, rule: RoundingRule): Money {
  return value.toDecimalPlaces(2, ROUNDING_MODES[rule]);
}

/** Two decimals, always ("1.5" → "1.50", "-0" → "0.00"). */
export function formatCents(value: Money): string {
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

/**
 * A price as written on a line: the config's decimal without trailing zeros past the cents
 * ("1.500000" → "1.50", "0.123400" → "0.1234"), so the same price always reads the same.
 */
export function formatUnitPrice(value: Money): string {
  const cents = value.toFixed(2);
  const full = value.toFixed();
  return full.length > cents.length ? full : cents;
}

/** A quantity of licence-months for display: at most 4 decimals, half-up, no padding. */
export function formatQuantity(value: Money): string {
  const text = value.toDecimalPlaces(4, Exact.ROUND_HALF_UP).toFixed();
  return text === '-0' ? '0' : text;
}

export function sumMoney(values: Iterable<Money>): Money {
  let total = new Exact(0);
  for (const v of values) total = total.plus(v);
  return total;
}

export const ZERO: Money = new Exact(0);
