import { describe, expect, it } from 'vitest';
import { formatMicros, parseMicros } from './money.js';

describe('parseMicros', () => {
  it.each([
    ['12', 12_000_000n],
    ['12.5', 12_500_000n],
    ['-0.01', -10_000n],
    ['+3.000001', 3_000_001n],
    ['0', 0n],
  ])('reads %s', (text, micros) => {
    expect(parseMicros(text)).toBe(micros);
  });

  it.each(['', '1,50', '1.5000001', '1 000', '12€', '.5', '1.', '--1', 'NaN'])(
    'refuses "%s"',
    (text) => {
      expect(parseMicros(text)).toBeUndefined();
    },
  );
});

describe('formatMicros', () => {
  it.each([
    [1_500_000n, '1.50'],
    [1_234_500n, '1.2345'],
    [-10_000n, '-0.01'],
    [0n, '0.00'],
    [123_000_000_000n, '123000.00'],
  ])('writes %s as %s', (micros, text) => {
    expect(formatMicros(micros)).toBe(text);
  });
});
