/**
 * Wall-clock dates in an IANA time zone, with no date library. ISP exports write dates as local
 * text (`29/03/2026`) and a period is a calendar month in the ISP's zone; both need the zone's
 * UTC offset on a given day. Intl knows it but is slow to ask, so offsets are cached per
 * (zone, local day): a million conversions cost a million map lookups, not a million Intl calls.
 */
import { ConfigError, InternalError } from './errors.js';

/** A date and time as written in text: a wall clock, plus the offset when the text gave one. */
export interface LocalDateTime {
  /** 1 to 9999. */
  year: number;
  /** 1 to 12. */
  month: number;
  /** 1 to the last day of the month. */
  day: number;
  /** 0 to 23; 0 for a date written without a time (local midnight). */
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
  /** Minutes east of UTC written in the text (`+05:30` is 330, `Z` is 0); null when none. */
  offsetMinutes: number | null;
}

/**
 * Reads one value. A string result is the reason the value is not a date, lowercase and
 * specific (`no 31 February 2026`); it never repeats the value.
 */
export type DateParser = (text: string) => LocalDateTime | string;

/** A period: a calendar month in an ISP's time zone, written `YYYY-MM`. */
export const PERIOD_PATTERN = /^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])$/;

const MS_PER_MINUTE = 60_000;
const MS_PER_HOUR = 3_600_000;
const MS_PER_DAY = 86_400_000;
/** The Gregorian calendar repeats every 400 years, which are exactly 146,097 days. */
const GREGORIAN_CYCLE_MS = 146_097 * MS_PER_DAY;
/** Bounds the per-zone day cache (about 55 years of distinct days); past it, start afresh. */
const MAX_CACHED_DAYS_PER_ZONE = 20_000;

/** English month names, for reasons such as `no 31 February 2026`. */
const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const DIGIT_0 = 48;
const DIGIT_9 = 57;

/**
 * Compiles a date pattern once, for use on every record of a file.
 *
 * @param pattern - `iso`, or yyyy, MM, dd, HH, mm, ss and literal separators, each field
 *   written with exactly as many digits as its letters (`dd/MM/yyyy` reads `05/03/2026`, not
 *   `5/3/2026`). `iso` reads ISO 8601 extended format: `2026-03-29`, `2026-03-29T14:30`,
 *   `2026-03-29T14:30:00.250`, each optionally followed by `Z` or an offset (`+02:00`,
 *   `+0200`, `+02`); a space may stand for the `T`.
 * @throws ConfigError when the pattern has an unknown or repeated field (any letter other than
 *   those fields and a literal `T` is refused, so `dd/MM/yy` fails here, not on every record),
 *   or lacks yyyy, MM or dd.
 */
export function compileDatePattern(pattern: string): DateParser {
  if (pattern === 'iso') return parseIso;
  const layout = compileLayout(pattern);
  return (text) => parseWithLayout(layout, text);
}

/**
 * The UTC instant of a wall-clock time in a zone. Parts with an offset (an ISO value ending in
 * `Z` or `+02:00`) ignore the zone.
 *
 * @remarks Twice a year a wall clock is ambiguous, and the choices match java.time and
 * Temporal's default (`compatible`):
 * - spring forward (a gap, e.g. 02:30 on 2026-03-29 in Europe/Paris never happens): the time
 *   is moved forward by the length of the gap, to the instant after it (03:30 CEST, 01:30Z).
 *   Times in the gap keep their order, and midnight in a zone that skips it lands on the
 *   first instant of the day.
 * - fall back (an overlap, e.g. 02:30 on 2026-10-25 in Europe/Paris happens twice): the
 *   earlier instant (02:30 CEST, 00:30Z).
 *
 * Offsets are cached per (zone, local day). The cache assumes a zone changes its offset at
 * most once in the 56 hours around a day; real zones change a few times a year at most.
 *
 * @throws ConfigError when the time zone is unknown to the runtime.
 */
export function zonedToUtc(parts: LocalDateTime, timeZone: string): Date {
  return new Date(zonedToEpochMs(parts, timeZone));
}

/**
 * The period (`YYYY-MM`, a calendar month in the zone) that holds an instant.
 *
 * @throws ConfigError when the time zone is unknown to the runtime.
 */
export function periodOf(instant: Date, timeZone: string): string {
  const ms = instant.getTime();
  if (Number.isNaN(ms)) throw new InternalError('INTERNAL', 'periodOf needs a valid date');
  const zone = zoneState(timeZone);
  // Offsets stay under a day, so the zone's month is the UTC month or one of its neighbours.
  const monthIndex = instant.getUTCFullYear() * 12 + instant.getUTCMonth();
  const bounds = monthBounds(zone, monthIndex);
  if (ms < bounds.startMs) return monthBounds(zone, monthIndex - 1).period;
  if (ms >= bounds.endMs) return monthBounds(zone, monthIndex + 1).period;
  return bounds.period;
}

/**
 * The instants a period covers in a zone: from local midnight on the 1st (`start`, included)
 * to local midnight on the 1st of the next month (`end`, excluded). Consecutive periods meet
 * exactly, so every instant belongs to one period.
 *
 * @throws InternalError when `period` does not match {@link PERIOD_PATTERN}: edges validate
 *   user input with it first. ConfigError when the time zone is unknown to the runtime.
 */
export function periodBounds(period: string, timeZone: string): { start: Date; end: Date } {
  if (!PERIOD_PATTERN.test(period)) {
    throw new InternalError('INTERNAL', `not a period: expected YYYY-MM, found "${period}"`);
  }
  const year = Number(period.slice(0, 4));
  const month = Number(period.slice(5, 7));
  const bounds = monthBounds(zoneState(timeZone), year * 12 + month - 1);
  return { start: new Date(bounds.startMs), end: new Date(bounds.endMs) };
}

// Patterns

type FieldName = 'year' | 'month' | 'day' | 'hour' | 'minute' | 'second';

const PATTERN_FIELDS: Readonly<Record<string, FieldName>> = {
  yyyy: 'year',
  MM: 'month',
  dd: 'day',
  HH: 'hour',
  mm: 'minute',
  ss: 'second',
};

/** A fixed-width pattern, compiled: where each field and each separator sits. */
interface Layout {
  length: number;
  /** Index of each field's first digit, -1 when the pattern has no such field. */
  at: Record<FieldName, number>;
  literalAt: number[];
  literalCode: number[];
  shapeReason: string;
}

function compileLayout(pattern: string): Layout {
  const at: Record<FieldName, number> = {
    year: -1,
    month: -1,
    day: -1,
    hour: -1,
    minute: -1,
    second: -1,
  };
  const literalAt: number[] = [];
  const literalCode: number[] = [];
  let i = 0;
  while (i < pattern.length) {
    const letter = pattern.charAt(i);
    if (!isLetter(letter) || letter === 'T') {
      literalAt.push(i);
      literalCode.push(pattern.charCodeAt(i));
      i += 1;
      continue;
    }
    let end = i;
    while (pattern.charAt(end) === letter) end += 1;
    const token = pattern.slice(i, end);
    const field = PATTERN_FIELDS[token];
    if (field === undefined) throw patternError(pattern, `unknown field "${token}"`);
    if (at[field] !== -1) throw patternError(pattern, `"${token}" appears twice`);
    at[field] = i;
    i = end;
  }
  if (at.year === -1 || at.month === -1 || at.day === -1) {
    throw patternError(pattern, 'a date pattern needs yyyy, MM and dd');
  }
  return {
    length: pattern.length,
    at,
    literalAt,
    literalCode,
    shapeReason: `not a date written ${pattern}`,
  };
}

function isLetter(char: string): boolean {
  return (char >= 'a' && char <= 'z') || (char >= 'A' && char <= 'Z');
}

function patternError(pattern: string, problem: string): ConfigError {
  return new ConfigError('CONFIG_INVALID', `date pattern "${pattern}": ${problem}`, { pattern });
}

function parseWithLayout(layout: Layout, text: string): LocalDateTime | string {
  if (text.length !== layout.length) return layout.shapeReason;
  for (let i = 0; i < layout.literalAt.length; i++) {
    if (text.charCodeAt(layout.literalAt[i] as number) !== layout.literalCode[i]) {
      return layout.shapeReason;
    }
  }
  const { at } = layout;
  const year = digitsAt(text, at.year, 4);
  const month = digitsAt(text, at.month, 2);
  const day = digitsAt(text, at.day, 2);
  const hour = at.hour === -1 ? 0 : digitsAt(text, at.hour, 2);
  const minute = at.minute === -1 ? 0 : digitsAt(text, at.minute, 2);
  const second = at.second === -1 ? 0 : digitsAt(text, at.second, 2);
  if ((year | month | day | hour | minute | second) < 0) return layout.shapeReason;
  return checkedDateTime(year, month, day, hour, minute, second, 0, null);
}

/** The number written by `count` digits at `start`, or -1 when one of them is not a digit. */
function digitsAt(text: string, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) {
    const code = text.charCodeAt(i);
    if (code < DIGIT_0 || code > DIGIT_9) return -1;
    value = value * 10 + (code - DIGIT_0);
  }
  return value;
}

const ISO_SHAPE_REASON =
  'not an ISO 8601 date: expected 2026-03-29, 2026-03-29T14:30:00 or 2026-03-29T14:30:00+02:00';

/** ISO 8601 extended format, read by hand: this runs for every record of large files. */
function parseIso(text: string): LocalDateTime | string {
  if (text.length < 10 || text.charAt(4) !== '-' || text.charAt(7) !== '-') {
    return ISO_SHAPE_REASON;
  }
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  if ((year | month | day) < 0) return ISO_SHAPE_REASON;
  if (text.length === 10) return checkedDateTime(year, month, day, 0, 0, 0, 0, null);

  const separator = text.charAt(10);
  if (separator !== 'T' && separator !== 't' && separator !== ' ') return ISO_SHAPE_REASON;
  if (text.length < 16 || text.charAt(13) !== ':') return ISO_SHAPE_REASON;
  const hour = digitsAt(text, 11, 2);
  const minute = digitsAt(text, 14, 2);
  let second = 0;
  let millisecond = 0;
  let pos = 16;
  if (text.charAt(pos) === ':') {
    second = digitsAt(text, pos + 1, 2);
    pos += 3;
    if (text.charAt(pos) === '.' || text.charAt(pos) === ',') {
      const fractionEnd = endOfDigits(text, pos + 1);
      if (fractionEnd === pos + 1 || fractionEnd - pos - 1 > 9) return ISO_SHAPE_REASON;
      millisecond = millisecondsOf(text, pos + 1, fractionEnd);
      pos = fractionEnd;
    }
  }
  if ((hour | minute | second) < 0) return ISO_SHAPE_REASON;

  const offsetMinutes = isoOffsetAt(text, pos);
  if (typeof offsetMinutes === 'string') return offsetMinutes;
  return checkedDateTime(year, month, day, hour, minute, second, millisecond, offsetMinutes);
}

function endOfDigits(text: string, start: number): number {
  let end = start;
  while (end < text.length) {
    const code = text.charCodeAt(end);
    if (code < DIGIT_0 || code > DIGIT_9) break;
    end += 1;
  }
  return end;
}

/** Milliseconds of a decimal fraction of a second; digits past the third are dropped. */
function millisecondsOf(text: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < start + 3; i++) {
    value = value * 10 + (i < end ? text.charCodeAt(i) - DIGIT_0 : 0);
  }
  return value;
}

/** The offset written at `pos` to the end of the text: null for none, a string when invalid. */
function isoOffsetAt(text: string, pos: number): number | null | string {
  if (pos === text.length) return null;
  const sign = text.charAt(pos);
  if (sign === 'Z' || sign === 'z') return pos + 1 === text.length ? 0 : ISO_SHAPE_REASON;
  if (sign !== '+' && sign !== '-') return ISO_SHAPE_REASON;
  const rest = text.length - pos - 1;
  const hasColon = text.charAt(pos + 3) === ':';
  const expected = rest === 2 || (rest === 4 && !hasColon) || (rest === 5 && hasColon);
  if (!expected) return ISO_SHAPE_REASON;
  const hours = digitsAt(text, pos + 1, 2);
  const minutes = rest === 2 ? 0 : digitsAt(text, pos + (hasColon ? 4 : 3), 2);
  if ((hours | minutes) < 0) return ISO_SHAPE_REASON;
  if (hours > 23 || minutes > 59) return `no offset ${text.slice(pos)}`;
  const total = hours * 60 + minutes;
  return sign === '-' && total !== 0 ? -total : total;
}

function checkedDateTime(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  millisecond: number,
  offsetMinutes: number | null,
): LocalDateTime | string {
  if (year === 0) return 'no year 0';
  if (month < 1 || month > 12) return `no month ${month}`;
  if (day < 1 || day > daysInMonth(year, month)) {
    return `no ${day} ${MONTH_NAMES[month - 1]} ${year}`;
  }
  if (hour > 23) return `no hour ${hour}`;
  if (minute > 59) return `no minute ${minute}`;
  if (second > 59) return `no second ${second}`;
  return { year, month, day, hour, minute, second, millisecond, offsetMinutes };
}

function daysInMonth(year: number, month: number): number {
  if (month === 2 && isLeapYear(year)) return 29;
  return DAYS_IN_MONTH[month - 1] as number;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

// Offsets

/** The offsets in force around one local day: one, or two with the instant of the change. */
interface DayOffsets {
  /** Offset (wall minus UTC, ms) before the change, or all day when there is none. */
  beforeMs: number;
  afterMs: number;
  /** First UTC instant (ms) of `afterMs`; Infinity when the offset does not change. */
  changeMs: number;
}

interface MonthBounds {
  startMs: number;
  endMs: number;
  period: string;
}

interface ZoneState {
  formatter: Intl.DateTimeFormat;
  /** Keyed by the local day's midnight as wall-clock milliseconds. */
  days: Map<number, DayOffsets>;
  /** Keyed by year * 12 + month - 1. */
  months: Map<number, MonthBounds>;
}

const zones = new Map<string, ZoneState>();

function zoneState(timeZone: string): ZoneState {
  const cached = zones.get(timeZone);
  if (cached !== undefined) return cached;
  const state: ZoneState = {
    formatter: formatterFor(timeZone),
    days: new Map(),
    months: new Map(),
  };
  zones.set(timeZone, state);
  return state;
}

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  try {
    return new Intl.DateTimeFormat('en-US', {
      timeZone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch (err) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `unknown time zone "${timeZone}"`,
      { timeZone },
      {
        cause: err,
      },
    );
  }
}

function zonedToEpochMs(parts: LocalDateTime, timeZone: string): number {
  const midnight = wallMs(parts.year, parts.month, parts.day);
  const wall =
    midnight +
    parts.hour * MS_PER_HOUR +
    parts.minute * MS_PER_MINUTE +
    parts.second * 1000 +
    parts.millisecond;
  if (parts.offsetMinutes !== null) return wall - parts.offsetMinutes * MS_PER_MINUTE;
  return wallToUtcMs(zoneState(timeZone), midnight, wall);
}

/** See {@link zonedToUtc} for the choices in a gap and in an overlap. */
function wallToUtcMs(zone: ZoneState, midnight: number, wall: number): number {
  const day = dayOffsets(zone, midnight);
  const early = wall - day.beforeMs;
  // Before the change, or in an overlap, where the earlier offset gives the earlier instant.
  if (early < day.changeMs) return early;
  const late = wall - day.afterMs;
  if (late >= day.changeMs) return late;
  // In a gap: the offset before the change moves the time forward by the gap's length.
  return early;
}

/**
 * A wall-clock time as if it were UTC, in milliseconds. Date.UTC reads years 0-99 as 1900-1999,
 * so the year is shifted by one Gregorian cycle and the cycle taken off again.
 */
function wallMs(year: number, month: number, day: number): number {
  return Date.UTC(year + 400, month - 1, day) - GREGORIAN_CYCLE_MS;
}

/**
 * Offsets for the local day starting at `midnight` (wall ms). Any instant of that day lies
 * within 16 hours before its wall midnight and 40 hours after (offsets run from -12:00 to
 * +14:00, historically a little wider), so comparing the offsets at both ends of that window
 * tells whether the day may see a change, and a search between them finds its instant.
 */
function dayOffsets(zone: ZoneState, midnight: number): DayOffsets {
  const cached = zone.days.get(midnight);
  if (cached !== undefined) return cached;

  const low = midnight - 16 * MS_PER_HOUR;
  const high = midnight + 40 * MS_PER_HOUR;
  const beforeMs = offsetAt(zone, low);
  const afterMs = offsetAt(zone, high);
  const changeMs =
    beforeMs === afterMs ? Number.POSITIVE_INFINITY : findChange(zone, low, high, beforeMs);
  const offsets: DayOffsets = { beforeMs, afterMs, changeMs };

  if (zone.days.size >= MAX_CACHED_DAYS_PER_ZONE) zone.days.clear();
  zone.days.set(midnight, offsets);
  return offsets;
}

/** First whole second in (low, high] whose offset differs from the one at `low`. */
function findChange(zone: ZoneState, low: number, high: number, first: number): number {
  let lo = low;
  let hi = high;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(zone, mid) === first) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Wall clock minus UTC at an instant, in ms, as the runtime's tz database says. */
function offsetAt(zone: ZoneState, utcMs: number): number {
  const atSecond = Math.floor(utcMs / 1000) * 1000;
  let era = 'AD';
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  for (const part of zone.formatter.formatToParts(atSecond)) {
    if (part.type === 'era') era = part.value;
    else if (part.type === 'year') year = Number(part.value);
    else if (part.type === 'month') month = Number(part.value);
    else if (part.type === 'day') day = Number(part.value);
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
    else if (part.type === 'second') second = Number(part.value);
  }
  if (era === 'BC' || era === 'B') year = 1 - year;
  const wall = wallMs(year, month, day) + hour * MS_PER_HOUR + minute * MS_PER_MINUTE;
  return wall + second * 1000 - atSecond;
}

function monthBounds(zone: ZoneState, monthIndex: number): MonthBounds {
  const cached = zone.months.get(monthIndex);
  if (cached !== undefined) return cached;
  const year = Math.floor(monthIndex / 12);
  const month = (monthIndex % 12) + 1;
  const bounds: MonthBounds = {
    startMs: localMidnightMs(zone, year, month),
    endMs:
      month === 12 ? localMidnightMs(zone, year + 1, 1) : localMidnightMs(zone, year, month + 1),
    period: `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}`,
  };
  zone.months.set(monthIndex, bounds);
  return bounds;
}

function localMidnightMs(zone: ZoneState, year: number, month: number): number {
  const midnight = wallMs(year, month, 1);
  return wallToUtcMs(zone, midnight, midnight);
}
