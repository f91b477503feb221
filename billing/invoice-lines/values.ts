/**
 * Turns the values declared in `billing.invoiceLines` (a field, a constant or a template, with
 * its map, date pattern and decimals) into small functions compiled once per file, so writing a
 * line is a few string operations: no config lookups, no Intl call per line, no floats.
 *
 * A value that cannot be written (a module missing from a map, an amount with more decimals than
 * declared) throws a {@link ValueError}; the writer adds the line id and stops the file, since a
 * file with a line missing or altered would bill the wrong amount.
 */
import { createHash, hash } from 'node:crypto';
import {
  FILE_FIELD_KINDS,
  type FieldKind,
  type FileField,
  LINE_FIELD_KINDS,
  type LineField,
} from '../../config/invoice-lines-schema.js';
import type { IspInvoiceLine } from '../invoice-line.js';

/** What a writer knows of the file beyond its lines. */
export interface InvoiceLinesContext {
  ispId: string;
  /** The period the file is for, YYYY-MM: every line's `period`. */
  period: string;
  /** The ISP time zone: activatedAt is written in it. */
  timeZone: string;
  /** The ISP billing currency: every line's `currency`. */
  currency: string;
}

/** File values: known before the lines (period...) or after the last one (count, total). */
export interface FileTotals {
  count: number;
  /** Exact sum of the amounts, as a decimal string with the amounts' decimals. */
  total: string;
}

/** A value cannot be written; the message names the config place and the reason. */
export class ValueError extends Error {}

export interface Formatting {
  decimalSeparator: '.' | ',';
  dateFormat: string;
  timeZone: string;
  ispId: string;
  period: string;
  currency: string;
  /** What `idempotencyKey` holds; files always use the hash. */
  lineKey?: 'hash' | 'line-id';
}

export interface ValueSpec {
  field?: string | undefined;
  value?: string | undefined;
  template?: string | undefined;
  map?: Record<string, string> | undefined;
  date?: string | undefined;
  decimals?: number | undefined;
}

export type LineGetter = (line: IspInvoiceLine) => string;
export type FileGetter = (totals: FileTotals) => string;

/** A decimal split for layouts that place the sign themselves (fixed width). */
export interface NumberParts {
  negative: boolean;
  /** Digits with the decimal mark (or none when implied), without sign. */
  body: string;
}

// ---------------------------------------------------------------------------------------------
// Numbers

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * A decimal string as written: the decimal mark, exactly `decimals` decimals when given (zeros
 * added, never rounded: dropping a non-zero digit of money is refused), digits only when implied.
 */
export function decimalParts(
  text: string,
  options: { separator: '.' | ','; decimals?: number | undefined; implied?: boolean },
  label: string,
): NumberParts {
  const match = DECIMAL.exec(text);
  if (!match) throw new ValueError(`${label}: "${text}" is not a decimal number`);
  const int = match[2] as string;
  let frac = match[3] ?? '';
  const { decimals } = options;
  if (decimals !== undefined) {
    if (frac.length > decimals) {
      if (/[1-9]/.test(frac.slice(decimals))) {
        throw new ValueError(
          `${label}: ${text} has more than ${decimals} decimals; raise decimals rather than round money`,
        );
      }
      frac = frac.slice(0, decimals);
    } else if (frac.length < decimals) frac = frac.padEnd(decimals, '0');
  }
  const negative = match[1] === '-' && /[1-9]/.test(int + frac);
  if (options.implied) return { negative, body: (int + frac).replace(/^0+(?=\d)/, '') };
  return { negative, body: frac === '' ? int : `${int}${options.separator}${frac}` };
}

function decimalText(parts: NumberParts): string {
  return parts.negative ? `-${parts.body}` : parts.body;
}

// ---------------------------------------------------------------------------------------------
// Dates

interface DateParts {
  y: number;
  M: number;
  d: number;
  H: number;
  m: number;
  s: number;
}

type DateFormatter = (parts: DateParts) => string;

const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** Compiles yyyy, MM, dd, HH, mm, ss and literal separators into one function. */
export function compileDateFormat(pattern: string): DateFormatter {
  const steps: ((p: DateParts) => string)[] = [];
  for (const token of pattern.match(/yyyy|MM|dd|HH|mm|ss|./g) ?? []) {
    switch (token) {
      case 'yyyy':
        steps.push((p) => String(p.y).padStart(4, '0'));
        break;
      case 'MM':
        steps.push((p) => two(p.M));
        break;
      case 'dd':
        steps.push((p) => two(p.d));
        break;
      case 'HH':
        steps.push((p) => two(p.H));
        break;
      case 'mm':
        steps.push((p) => two(p.m));
        break;
      case 'ss':
        steps.push((p) => two(p.s));
        break;
      default:
        steps.push(() => token);
    }
  }
  return (parts) => {
    let out = '';
    for (const step of steps) out += step(parts);
    return out;
  };
}

function periodParts(period: string, day: 'first' | 'last' | 'none'): DateParts {
  const y = Number(period.slice(0, 4));
  const M = Number(period.slice(5, 7));
  const d = day === 'last' ? new Date(Date.UTC(y, M, 0)).getUTCDate() : 1;
  return { y, M, d, H: 0, m: 0, s: 0 };
}

/**
 * Wall-clock parts of instants in one zone. The offset is looked up once per quarter hour of
 * UTC (every zone changes offset on a quarter hour), so a million activation times cost a few
 * thousand Intl calls, not a million.
 */
function zonedParts(timeZone: string): (ms: number) => DateParts {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  const offsets = new Map<number, number>();
  const offsetAt = (ms: number): number => {
    const bucket = Math.floor(ms / 900_000);
    let offset = offsets.get(bucket);
    if (offset === undefined) {
      const seconds = ms - (((ms % 1000) + 1000) % 1000);
      const p: Record<string, number> = {};
      for (const part of format.formatToParts(new Date(seconds))) p[part.type] = Number(part.value);
      const local = Date.UTC(p.year ?? 0, (p.month ?? 1) - 1, p.day, p.hour, p.minute, p.second);
      offset = local - seconds;
      if (offsets.size > 100_000) offsets.clear();
      offsets.set(bucket, offset);
    }
    return offset;
  };
  return (ms) => {
    const local = new Date(ms + offsetAt(ms));
    return {
      y: local.getUTCFullYear(),
      M: local.getUTCMonth() + 1,
      d: local.getUTCDate(),
      H: local.getUTCHours(),
      m: local.getUTCMinutes(),
      s: local.getUTCSeconds(),
    };
  };
}

/** Memoizes a function of a period (few distinct values per file). */
function perPeriod(fn: (period: string) => string): (period: string) => string {
  const cache = new Map<string, string>();
  return (period) => {
    let text = cache.get(period);
    if (text === undefined) {
      text = fn(period);
      if (cache.size > 1_000) cache.clear();
      cache.set(period, text);
    }
    return text;
  };
}

function periodFormatter(pattern: string, day: 'first' | 'last' | 'none') {
  const iso = day === 'none' ? 'yyyy-MM' : 'yyyy-MM-dd';
  const format = compileDateFormat(pattern === 'iso' ? iso : pattern);
  return perPeriod((period) => format(periodParts(period, day)));
}

// ---------------------------------------------------------------------------------------------
// Line values

/** The idempotency key of a line when it is a hash: stable for (ISP, line id), 128 bits. */
export function lineHashKey(ispId: string, lineId: string): string {
  return sha256Hex(`${ispId}\n${lineId}`).slice(0, 32);
}

// crypto.hash (Node 20.12+) is a one-shot several times cheaper than createHash per line.
const sha256Hex: (text: string) => string =
  typeof hash === 'function'
    ? (text) => hash('sha256', text, 'hex')
    : (text) => createHash('sha256').update(text).digest('hex');

/** How a line field is read before map and layout: its text with the file's formatting. */
function lineFieldGetter(
  field: LineField,
  fmt: Formatting,
  spec: { date?: string | undefined; decimals?: number | undefined },
  label: string,
): LineGetter {
  const kind = LINE_FIELD_KINDS[field];
  const pattern = spec.date ?? fmt.dateFormat;
  switch (kind) {
    case 'decimal': {
      const options = { separator: fmt.decimalSeparator, decimals: spec.decimals };
      const at = `${label} (${field})`;
      return (line) => decimalText(decimalParts(line[field as 'amount'], options, at));
    }
    case 'integer':
      return (line) => String(line[field as 'days']);
    case 'period': {
      // dateFormat is a day's pattern; a month is YYYY-MM unless the value says otherwise.
      const format = periodFormatter(spec.date ?? 'iso', 'none');
      return (line) => format(line[field as 'period']);
    }
    case 'date': {
      const format = periodFormatter(pattern, field === 'servicePeriodEnd' ? 'last' : 'first');
      return (line) => format(line.servicePeriod);
    }
    case 'instant': {
      if (pattern === 'iso') return (line) => line.activatedAt;
      const format = compileDateFormat(pattern);
      const parts = zonedParts(fmt.timeZone);
      return (line) => {
        const ms = Date.parse(line.activatedAt);
        if (Number.isNaN(ms)) throw new ValueError(`${label}: activatedAt is not a date`);
        return format(parts(ms));
      };
    }
    case 'text':
      if (field === 'idempotencyKey') {
        if (fmt.lineKey === 'line-id') return (line) => line.lineId;
        return (line) => lineHashKey(line.ispId, line.lineId);
      }
      return (line) => line[field as 'lineId'];
  }
}

function withMap<T>(
  getter: (input: T) => string,
  map: Record<string, string> | undefined,
  field: string,
  label: string,
): (input: T) => string {
  if (map === undefined) return getter;
  const table = new Map(Object.entries(map));
  // A customer ref is personal: the message says a value is missing, not which.
  const shown = field === 'customerRef' || field === 'subscriberId';
  return (input) => {
    const raw = getter(input);
    const mapped = table.get(raw);
    if (mapped === undefined) {
      const what = shown ? 'a value' : `"${raw}"`;
      throw new ValueError(`${label}: ${field} ${what} is not in map`);
    }
    return mapped;
  };
}

function compileTemplate<T>(
  template: string,
  getter: (name: string) => (input: T) => string,
): (input: T) => string {
  const parts = template.split(/\{([^{}]*)\}/);
  const steps = parts.map((part, i) => (i % 2 === 0 ? () => part : getter(part)));
  return (input) => {
    let out = '';
    for (const step of steps) out += step(input);
    return out;
  };
}

/** A line value as text, ready for escaping or padding. `label` is its config path. */
export function compileLineValue(spec: ValueSpec, fmt: Formatting, label: string): LineGetter {
  if (spec.value !== undefined) {
    const constant = spec.value;
    return () => constant;
  }
  if (spec.template !== undefined) {
    return compileTemplate(spec.template, (name) =>
      lineFieldGetter(name as LineField, fmt, {}, label),
    );
  }
  const field = spec.field as LineField;
  return withMap(lineFieldGetter(field, fmt, spec, label), spec.map, field, label);
}

/** A line decimal as sign and body, for layouts that place the sign (fixed width). */
export function compileLineNumber(
  spec: ValueSpec & { impliedDecimals?: boolean },
  fmt: Formatting,
  label: string,
): (line: IspInvoiceLine) => NumberParts {
  const field = spec.field as LineField;
  if (LINE_FIELD_KINDS[field] === 'integer') {
    return (line) => {
      const n = line[field as 'days'];
      return { negative: n < 0, body: String(Math.abs(n)) };
    };
  }
  const options = {
    separator: fmt.decimalSeparator,
    decimals: spec.decimals,
    implied: spec.impliedDecimals ?? false,
  };
  const at = `${label} (${field})`;
  return (line) => decimalParts(line[field as 'amount'], options, at);
}

// ---------------------------------------------------------------------------------------------
// File values

function fileFieldGetter(
  field: FileField,
  fmt: Formatting,
  spec: { date?: string | undefined; decimals?: number | undefined },
  label: string,
): FileGetter {
  const pattern = spec.date ?? fmt.dateFormat;
  switch (field) {
    case 'period': {
      const text = periodFormatter(spec.date ?? 'iso', 'none')(fmt.period);
      return () => text;
    }
    case 'periodStart':
    case 'periodEnd': {
      const text = periodFormatter(pattern, field === 'periodEnd' ? 'last' : 'first')(fmt.period);
      return () => text;
    }
    case 'ispId':
      return () => fmt.ispId;
    case 'currency':
      return () => fmt.currency;
    case 'count':
      return (totals) => String(totals.count);
    case 'total': {
      const options = { separator: fmt.decimalSeparator, decimals: spec.decimals };
      return (totals) => decimalText(decimalParts(totals.total, options, `${label} (total)`));
    }
  }
}

export function compileFileValue(spec: ValueSpec, fmt: Formatting, label: string): FileGetter {
  if (spec.value !== undefined) {
    const constant = spec.value;
    return () => constant;
  }
  if (spec.template !== undefined) {
    return compileTemplate(spec.template, (name) =>
      fileFieldGetter(name as FileField, fmt, {}, label),
    );
  }
  const field = spec.field as FileField;
  return withMap(fileFieldGetter(field, fmt, spec, label), spec.map, field, label);
}

export function compileFileNumber(
  spec: ValueSpec & { impliedDecimals?: boolean },
  fmt: Formatting,
  label: string,
): (totals: FileTotals) => NumberParts {
  if (spec.field === 'count') return (t) => ({ negative: false, body: String(t.count) });
  const options = {
    separator: fmt.decimalSeparator,
    decimals: spec.decimals,
    implied: spec.impliedDecimals ?? false,
  };
  return (t) => decimalParts(t.total, options, `${label} (total)`);
}

/** The kind of what a value writes: numbers are laid out differently in fixed width. */
export function kindOf(spec: ValueSpec, scope: 'line' | 'file'): FieldKind | 'constant' {
  if (spec.field === undefined) return 'constant';
  const kinds: Record<string, FieldKind> = scope === 'line' ? LINE_FIELD_KINDS : FILE_FIELD_KINDS;
  return kinds[spec.field] ?? 'constant';
}
