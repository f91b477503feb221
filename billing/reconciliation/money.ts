/**
 * Exact amounts for reconciliation as integer micro-units (millionths of the currency unit) in
 * a bigint. A million export lines are parsed, summed and compared here; integers keep that
 * exact without a decimal object per line, and six decimals hold any price the config accepts.
 */

export const MICROS_PER_UNIT = 1_000_000n;

const DECIMAL = /^([+-]?)(\d{1,15})(?:\.(\d{1,6}))?$/;

/**
 * Micro-units of a decimal written with a point (`12.5`, `-3.20`), or undefined when the text
 * is not such a decimal (empty, a unit, a thousands separator, more than 6 decimals).
 */
export function parseMicros(text: string): bigint | undefined {
  const match = DECIMAL.exec(text);
  if (!match) return undefined;
  const whole = BigInt(match[2] as string);
  const fraction = BigInt(((match[3] ?? '') as string).padEnd(6, '0'));
  const value = whole * MICROS_PER_UNIT + fraction;
  return match[1] === '-' ? -value : value;
}

/**
 * The decimal spelling of micro-units with at least 2 decimals and no trailing zero beyond
 * them: 1_500_000n is `1.50`, 1_234_500n is `1.2345`, -10_000n is `-0.01`.
 */
export function formatMicros(value: bigint): string {
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  const whole = abs / MICROS_PER_UNIT;
  let fraction = (abs % MICROS_PER_UNIT).toString().padStart(6, '0');
  while (fraction.length > 2 && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  return `${sign}${whole}.${fraction}`;
}

export function absMicros(value: bigint): bigint {
  return value < 0n ? -value : value;
}

/** Distinct texts remembered by {@link cachedMicros}; exports repeat a handful of prices. */
const CACHE_LIMIT = 4_096;
const parsed = new Map<string, bigint | undefined>();
const formatted = new Map<bigint, string>();

/** {@link parseMicros}, remembering recent texts: a million lines hold a few distinct prices. */
export function cachedMicros(text: string): bigint | undefined {
  let value = parsed.get(text);
  if (value === undefined && !parsed.has(text)) {
    value = parseMicros(text);
    if (parsed.size >= CACHE_LIMIT) parsed.clear();
    parsed.set(text, value);
  }
  return value;
}

const integers = new Map<string, bigint>();

/** `BigInt(text)` for an integer written by this code, remembering recent texts. */
export function cachedBigInt(text: string): bigint {
  let value = integers.get(text);
  if (value === undefined) {
    value = BigInt(text);
    if (integers.size >= CACHE_LIMIT) integers.clear();
    integers.set(text, value);
  }
  return value;
}

/** {@link formatMicros}, remembering recent values. */
export function cachedFormat(value: bigint): string {
  let text = formatted.get(value);
  if (text === undefined) {
    text = formatMicros(value);
    if (formatted.size >= CACHE_LIMIT) formatted.clear();
    formatted.set(value, text);
  }
  return text;
}
