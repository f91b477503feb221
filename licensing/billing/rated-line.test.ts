import { describe, expect, it } from 'vitest';
import { checkRatedLine, type RatedLine, ratedLineSchema } from './rated-line.js';

const line: RatedLine = {
  lineId: '2026-11/lic000000000001/antivirus',
  kind: 'charge',
  period: '2026-11',
  servicePeriod: '2026-11',
  ispId: 'demo-fai',
  subscriberId: 'sub000000000001',
  licenceId: 'lic000000000001',
  module: 'antivirus',
  days: 30,
  daysInPeriod: 30,
  quantity: '1',
  unitPrice: '1.20',
  amount: '1.20',
  currency: 'EUR',
  activationEventId: '2',
  activatedAt: '2026-10-10T18:30:00.000Z',
};

/** Values each field may not take (and a few it may), whatever the checker. */
const BAD: Record<keyof RatedLine, unknown[]> = {
  lineId: ['', 'x'.repeat(161), 7, null],
  kind: ['credit', '', undefined],
  period: ['2026-13', '2026-1', '26-11', 202611],
  servicePeriod: ['2026-00', '', null],
  ispId: ['', 'x'.repeat(33), 1],
  subscriberId: ['', 'x'.repeat(33)],
  licenceId: ['', 'x'.repeat(33)],
  module: ['', 'x'.repeat(33)],
  days: [-1, 32, 1.5, '3'],
  daysInPeriod: [27, 32, '30'],
  quantity: ['1.23456', '', '1,5', 1, '+1'],
  unitPrice: ['-1.20', '1.1234567', '', 1.2],
  amount: ['1.2', '1', '1.234', '', 1.2, '-1.2'],
  currency: ['eur', 'EURO', ''],
  activationEventId: ['', 'a1', 12, '-3'],
  activatedAt: ['2026-10-10', '2026-10-10T18:30:00', 'yesterday', '', 0],
};
const GOOD: Partial<Record<keyof RatedLine, unknown[]>> = {
  kind: ['adjustment'],
  quantity: ['-1', '0.3871', '12'],
  amount: ['-0.48', '0.00', '123456.78'],
  unitPrice: ['1', '0.123456'],
  activatedAt: ['2026-10-10T20:30:00+02:00', '2026-10-10T18:30:00Z'],
  days: [0, 31],
};

describe('checkRatedLine', () => {
  it('accepts the lines the wire schema accepts', () => {
    expect(checkRatedLine(line)).toBeNull();
    for (const [field, values] of Object.entries(GOOD)) {
      for (const value of values) {
        const candidate = { ...line, [field]: value };
        expect(ratedLineSchema.safeParse(candidate).success, `${field}=${value}`).toBe(true);
        expect(checkRatedLine(candidate), `${field}=${value}`).toBeNull();
      }
    }
  });

  it.each(Object.keys(BAD) as (keyof RatedLine)[])(
    'refuses what the schema refuses in %s',
    (field) => {
      for (const value of BAD[field]) {
        const candidate = { ...line, [field]: value };
        expect(ratedLineSchema.safeParse(candidate).success, `${field}=${String(value)}`).toBe(
          false,
        );
        expect(checkRatedLine(candidate), `${field}=${String(value)}`).toBe(field);
      }
    },
  );

  it('refuses a missing field, an unknown field, and what is not an object', () => {
    const { amount: _, ...missing } = line;
    expect(checkRatedLine(missing)).toBe('amount');
    expect(ratedLineSchema.safeParse({ ...line, customerRef: '42' }).success).toBe(false);
    expect(checkRatedLine({ ...line, customerRef: '42' })).toBe('(line)');
    for (const value of [null, [], 'line', 3]) expect(checkRatedLine(value)).toBe('(line)');
  });
});
