import { describe, expect, it } from 'vitest';
import { ConfigError, InternalError } from './errors.js';
import {
  compileDatePattern,
  type LocalDateTime,
  periodBounds,
  periodOf,
  zonedToUtc,
} from './zoned-time.js';

function parsed(pattern: string, text: string): LocalDateTime {
  const result = compileDatePattern(pattern)(text);
  if (typeof result === 'string') throw new InternalError('INTERNAL', `unexpected: ${result}`);
  return result;
}

/** Wall clock `YYYY-MM-DDTHH:mm[:ss[.sss]]` (ISO, no offset) read in `zone`, as ISO UTC. */
function utcOf(wall: string, zone: string): string {
  return zonedToUtc(parsed('iso', wall), zone).toISOString();
}

describe('compileDatePattern', () => {
  it.each([
    ['dd/MM/yyyy', '29/03/2026', [2026, 3, 29, 0, 0, 0, 0]],
    ['yyyyMMdd', '20260329', [2026, 3, 29, 0, 0, 0, 0]],
    ['yyyy-MM-dd HH:mm:ss', '2026-03-29 14:05:09', [2026, 3, 29, 14, 5, 9, 0]],
    ['dd.MM.yyyy HH:mm', '01.12.2026 23:59', [2026, 12, 1, 23, 59, 0, 0]],
    ['MM/dd/yyyy', '12/31/2026', [2026, 12, 31, 0, 0, 0, 0]],
    ['yyyy-MM-ddTHH:mm', '2026-03-29T02:30', [2026, 3, 29, 2, 30, 0, 0]],
    ['dd/MM/yyyy', '29/02/2024', [2024, 2, 29, 0, 0, 0, 0]],
    ['dd/MM/yyyy', '29/02/2000', [2000, 2, 29, 0, 0, 0, 0]],
    ['iso', '2026-03-29', [2026, 3, 29, 0, 0, 0, 0]],
    ['iso', '2026-03-29T14:30', [2026, 3, 29, 14, 30, 0, 0]],
    ['iso', '2026-03-29T14:30:15', [2026, 3, 29, 14, 30, 15, 0]],
    ['iso', '2026-03-29 14:30:15.25', [2026, 3, 29, 14, 30, 15, 250]],
    ['iso', '2026-03-29t14:30:15.123456789', [2026, 3, 29, 14, 30, 15, 123]],
  ])('reads %s %s', (pattern, text, [year, month, day, hour, minute, second, millisecond]) => {
    expect(parsed(pattern, text)).toEqual({
      year,
      month,
      day,
      hour,
      minute,
      second,
      millisecond,
      offsetMinutes: null,
    });
  });

  it.each([
    ['2026-03-29T14:30:00Z', 0],
    ['2026-03-29T14:30:00z', 0],
    ['2026-03-29T14:30:00+05:30', 330],
    ['2026-03-29T14:30-0330', -210],
    ['2026-03-29T14:30:00,5+02', 120],
    ['2026-03-29T14:30:00-00:00', 0],
  ])('reads the offset of %s', (text, offsetMinutes) => {
    expect(parsed('iso', text).offsetMinutes).toBe(offsetMinutes);
  });

  it.each([
    ['dd/MM/yyyy', '31/02/2026', 'no 31 February 2026'],
    ['dd/MM/yyyy', '29/02/2025', 'no 29 February 2025'],
    ['dd/MM/yyyy', '29/02/1900', 'no 29 February 1900'],
    ['dd/MM/yyyy', '31/04/2026', 'no 31 April 2026'],
    ['dd/MM/yyyy', '00/03/2026', 'no 0 March 2026'],
    ['dd/MM/yyyy', '01/13/2026', 'no month 13'],
    ['dd/MM/yyyy', '01/00/2026', 'no month 0'],
    ['dd/MM/yyyy', '01/01/0000', 'no year 0'],
    ['yyyy-MM-dd HH:mm:ss', '2026-03-29 24:00:00', 'no hour 24'],
    ['yyyy-MM-dd HH:mm:ss', '2026-03-29 23:60:00', 'no minute 60'],
    ['yyyy-MM-dd HH:mm:ss', '2026-03-29 23:59:60', 'no second 60'],
    ['dd/MM/yyyy', '1/3/2026', 'not a date written dd/MM/yyyy'],
    ['dd/MM/yyyy', '29-03-2026', 'not a date written dd/MM/yyyy'],
    ['dd/MM/yyyy', '2a/03/2026', 'not a date written dd/MM/yyyy'],
    ['dd/MM/yyyy', '29/03/2026 ', 'not a date written dd/MM/yyyy'],
    ['dd/MM/yyyy', '', 'not a date written dd/MM/yyyy'],
    ['yyyyMMdd', '2026032', 'not a date written yyyyMMdd'],
    ['iso', '2026-02-30', 'no 30 February 2026'],
    ['iso', '2026-13-01', 'no month 13'],
    ['iso', '2026-03-29T24:00', 'no hour 24'],
    ['iso', '2026-03-29T10:00+24:00', 'no offset +24:00'],
    ['iso', '2026-03-29T10:00+05:60', 'no offset +05:60'],
  ])('refuses %s %j: %s', (pattern, text, reason) => {
    expect(compileDatePattern(pattern)(text)).toBe(reason);
  });

  it.each([
    '29/03/2026',
    '2026-3-29',
    '2026-03-29T10',
    '2026-03-29T10:00:00.',
    '2026-03-29T10:00Zjunk',
    '2026-03-29T10:00+5',
    '2026-03-29X10:00',
    '+2026-03-29',
  ])('refuses %j as iso with the expected shapes', (text) => {
    expect(compileDatePattern('iso')(text)).toMatch(/^not an ISO 8601 date: expected 2026-03-29/);
  });

  it.each([
    ['dd/MM/yy', 'unknown field "yy"'],
    ['dd/MM/yyyyy', 'unknown field "yyyyy"'],
    ['dd/MM/yyyy hh:mm', 'unknown field "hh"'],
    ['dd/MM/yyyy dd', '"dd" appears twice'],
    ['MM/yyyy', 'needs yyyy, MM and dd'],
  ])('refuses the pattern %s at compile time', (pattern, problem) => {
    expect(() => compileDatePattern(pattern)).toThrow(ConfigError);
    expect(() => compileDatePattern(pattern)).toThrow(problem);
  });
});

describe('zonedToUtc', () => {
  it.each([
    ['Europe/Paris', '2026-01-15T12:00', '2026-01-15T11:00:00.000Z'],
    ['Europe/Paris', '2026-07-15T12:00', '2026-07-15T10:00:00.000Z'],
    ['Europe/Paris', '2024-02-29', '2024-02-28T23:00:00.000Z'],
    ['Asia/Kolkata', '2026-06-01', '2026-05-31T18:30:00.000Z'],
    ['Asia/Kolkata', '2026-03-29T02:30', '2026-03-28T21:00:00.000Z'],
    ['UTC', '2024-02-29T23:59:59.999', '2024-02-29T23:59:59.999Z'],
    ['UTC', '0099-06-15', '0099-06-15T00:00:00.000Z'],
    ['UTC', '0001-01-01', '0001-01-01T00:00:00.000Z'],
    ['America/New_York', '2026-12-31T19:00', '2027-01-01T00:00:00.000Z'],
  ])('reads %s %s as %s', (zone, wall, utc) => {
    expect(utcOf(wall, zone)).toBe(utc);
  });

  describe('when the clocks spring forward (a gap)', () => {
    it.each([
      ['Europe/Paris', '2026-03-29', '2026-03-28T23:00:00.000Z'],
      ['Europe/Paris', '2026-03-29T01:59:59', '2026-03-29T00:59:59.000Z'],
      ['Europe/Paris', '2026-03-29T02:00', '2026-03-29T01:00:00.000Z'],
      ['Europe/Paris', '2026-03-29T02:30', '2026-03-29T01:30:00.000Z'],
      ['Europe/Paris', '2026-03-29T02:59:59', '2026-03-29T01:59:59.000Z'],
      ['Europe/Paris', '2026-03-29T03:00', '2026-03-29T01:00:00.000Z'],
      ['America/New_York', '2026-03-08T02:30', '2026-03-08T07:30:00.000Z'],
      ['America/Santiago', '2026-09-06', '2026-09-06T04:00:00.000Z'],
    ])('moves %s %s forward by the gap, to %s', (zone, wall, utc) => {
      expect(utcOf(wall, zone)).toBe(utc);
    });
  });

  describe('when the clocks fall back (an overlap)', () => {
    it.each([
      ['Europe/Paris', '2026-10-25', '2026-10-24T22:00:00.000Z'],
      ['Europe/Paris', '2026-10-25T01:59', '2026-10-24T23:59:00.000Z'],
      ['Europe/Paris', '2026-10-25T02:00', '2026-10-25T00:00:00.000Z'],
      ['Europe/Paris', '2026-10-25T02:30', '2026-10-25T00:30:00.000Z'],
      ['Europe/Paris', '2026-10-25T03:00', '2026-10-25T02:00:00.000Z'],
      ['America/New_York', '2026-11-01T01:30', '2026-11-01T05:30:00.000Z'],
      ['Australia/Lord_Howe', '2026-04-05T01:45', '2026-04-04T14:45:00.000Z'],
    ])('reads %s %s as the earlier instant %s', (zone, wall, utc) => {
      expect(utcOf(wall, zone)).toBe(utc);
    });
  });

  it.each([
    ['Asia/Kolkata', '2026-03-29T02:30:00Z', '2026-03-29T02:30:00.000Z'],
    ['Europe/Paris', '2026-03-29T02:30+05:30', '2026-03-28T21:00:00.000Z'],
    ['UTC', '2026-10-25T02:30:00.5-02:00', '2026-10-25T04:30:00.500Z'],
  ])('ignores the zone (%s) when %s carries an offset', (zone, text, utc) => {
    expect(utcOf(text, zone)).toBe(utc);
  });

  it.each([
    'Europe/Paris',
    'America/New_York',
    'Asia/Kolkata',
    'Australia/Lord_Howe',
    'Asia/Tehran',
    'UTC',
  ])('agrees with Intl on 3,000 instants from 1990 to 2040 in %s', (zone) => {
    const wallOf = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    const from = Date.UTC(1990, 0, 1);
    const spanS = (Date.UTC(2040, 0, 1) - from) / 1000;
    let seed = 20_260_329;
    const mismatches: string[] = [];
    for (let i = 0; i < 3000; i++) {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      const instant = from + Math.floor((seed / 4_294_967_296) * spanS) * 1000;
      const wall = Object.fromEntries(wallOf.formatToParts(instant).map((p) => [p.type, p.value]));
      const parts: LocalDateTime = {
        year: Number(wall.year),
        month: Number(wall.month),
        day: Number(wall.day),
        hour: Number(wall.hour),
        minute: Number(wall.minute),
        second: Number(wall.second),
        millisecond: 0,
        offsetMinutes: null,
      };
      const back = zonedToUtc(parts, zone).getTime();
      const sameWall = wallOf.format(back) === wallOf.format(instant);
      // In an overlap the earlier instant is chosen, which may precede the sampled one.
      if (!sameWall || back > instant) mismatches.push(new Date(instant).toISOString());
    }
    expect(mismatches).toEqual([]);
  });

  it('refuses an unknown zone with a config error', () => {
    const parts = parsed('iso', '2026-03-29');
    expect(() => zonedToUtc(parts, 'Europe/Atlantis')).toThrow(ConfigError);
    expect(() => zonedToUtc(parts, 'Europe/Atlantis')).toThrow(
      'unknown time zone "Europe/Atlantis"',
    );
  });
});

describe('periodOf', () => {
  it.each([
    ['2026-02-28T23:30:00.000Z', 'Europe/Paris', '2026-03'],
    ['2026-02-28T23:30:00.000Z', 'UTC', '2026-02'],
    ['2026-03-31T21:59:59.999Z', 'Europe/Paris', '2026-03'],
    ['2026-03-31T22:00:00.000Z', 'Europe/Paris', '2026-04'],
    ['2026-10-31T22:59:59.999Z', 'Europe/Paris', '2026-10'],
    ['2026-10-31T23:00:00.000Z', 'Europe/Paris', '2026-11'],
    ['2026-01-31T18:29:59.999Z', 'Asia/Kolkata', '2026-01'],
    ['2026-01-31T18:30:00.000Z', 'Asia/Kolkata', '2026-02'],
    ['2026-03-01T04:59:59.000Z', 'America/New_York', '2026-02'],
    ['2024-12-31T23:00:00.000Z', 'Europe/Paris', '2025-01'],
    ['2024-02-29T12:00:00.000Z', 'UTC', '2024-02'],
  ])('puts %s in %s into %s', (instant, zone, period) => {
    expect(periodOf(new Date(instant), zone)).toBe(period);
  });

  it('refuses an invalid date', () => {
    expect(() => periodOf(new Date(Number.NaN), 'UTC')).toThrow(InternalError);
  });
});

describe('periodBounds', () => {
  it.each([
    ['2026-03', 'Europe/Paris', '2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z'],
    ['2026-10', 'Europe/Paris', '2026-09-30T22:00:00.000Z', '2026-10-31T23:00:00.000Z'],
    ['2026-12', 'Europe/Paris', '2026-11-30T23:00:00.000Z', '2026-12-31T23:00:00.000Z'],
    ['2024-02', 'UTC', '2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z'],
    ['2026-12', 'Asia/Kolkata', '2026-11-30T18:30:00.000Z', '2026-12-31T18:30:00.000Z'],
    ['2026-03', 'America/New_York', '2026-03-01T05:00:00.000Z', '2026-04-01T04:00:00.000Z'],
  ])('bounds %s in %s from %s to %s', (period, zone, start, end) => {
    const bounds = periodBounds(period, zone);
    expect(bounds.start.toISOString()).toBe(start);
    expect(bounds.end.toISOString()).toBe(end);
    expect(periodOf(bounds.start, zone)).toBe(period);
    expect(periodOf(new Date(bounds.end.getTime() - 1), zone)).toBe(period);
    expect(periodOf(bounds.end, zone)).not.toBe(period);
  });

  it.each(['2026-13', '2026-00', '2026-3', '26-03', '0000-01', '2026-03-01'])(
    'refuses the period %j',
    (period) => {
      expect(() => periodBounds(period, 'UTC')).toThrow(InternalError);
    },
  );
});
