import { describe, expect, it } from 'vitest';
import { billingSchema } from '../../config/billing-schema.js';
import { zonedToUtc } from '../../platform/zoned-time.js';
import { pricesFor } from './prices.js';
import { ratedLineSchema } from './rated-line.js';
import { periodFrame, type RatingEvent, type RatingRules, rateSubscriber } from './rating.js';

const ZONE = 'Europe/Paris';
const NOVEMBER = periodFrame('2026-11', ZONE);

/** An instant written as Paris wall-clock time: `2026-11-10 10:00`. */
function paris(text: string): number {
  const [date, time = '00:00'] = text.split(' ');
  const [year, month, day] = (date as string).split('-').map(Number);
  const [hour, minute] = time.split(':').map(Number);
  return zonedToUtc(
    {
      year: year as number,
      month: month as number,
      day: day as number,
      hour: hour as number,
      minute: minute as number,
      second: 0,
      millisecond: 0,
      offsetMinutes: null,
    },
    ZONE,
  ).getTime();
}

let nextId = 100;
function event(
  type: RatingEvent['type'],
  at: string,
  extra: Partial<RatingEvent> = {},
): RatingEvent {
  nextId += 1;
  return { id: String(nextId), type, licenceId: 'lic_a', occurredAtMs: paris(at), ...extra };
}

const subscribed = (at: string, modules = ['antivirus']) => event('provisioned', at, { modules });
const activated = (at: string) => event('activated', at, { id: '42' });

const prices = {
  from: '2026-01-01',
  modules: { antivirus: '1.20', firewall: '0.80', backup: '0.25' },
};
const rules = (
  proration: 'none' | 'daily',
  rounding: 'half-up' | 'half-even' = 'half-up',
): RatingRules => ({
  ispId: 'demo-fai',
  currency: 'EUR',
  proration,
  rounding,
  prices,
});

/** module → [days, amount] of the lines rated for November. */
function rate(
  events: RatingEvent[],
  proration: 'none' | 'daily',
  rounding?: 'half-up' | 'half-even',
) {
  const lines = rateSubscriber('sub_a', events, NOVEMBER, rules(proration, rounding));
  for (const line of lines) ratedLineSchema.parse(line);
  return Object.fromEntries(lines.map((l) => [l.module, [l.days, l.amount]]));
}

describe('rateSubscriber', () => {
  it('bills a whole month of an activated licence, with its activation event', () => {
    const events = [subscribed('2026-10-01 09:00'), activated('2026-10-02 12:00')];
    expect(rate(events, 'daily')).toEqual({ antivirus: [30, '1.20'] });
    expect(rate(events, 'none')).toEqual({ antivirus: [30, '1.20'] });
    const [line] = rateSubscriber('sub_a', events, NOVEMBER, rules('none'));
    expect(line).toMatchObject({
      lineId: '2026-11/sub_a/lic_a/antivirus',
      kind: 'charge',
      quantity: '1',
      unitPrice: '1.20',
      activationEventId: '42',
      activatedAt: '2026-10-02T10:00:00.000Z', // 12:00 CEST,
    });
  });

  it('bills a suspension and reactivation within the month by the days with an active moment', () => {
    // 1-10 November (suspended at 10:00 on the 10th) and 20-30 (resumed at 09:00): 21 days.
    const events = [
      subscribed('2026-10-01'),
      activated('2026-10-02'),
      event('suspended', '2026-11-10 10:00'),
      event('resumed', '2026-11-20 09:00'),
    ];
    expect(rate(events, 'daily')).toEqual({ antivirus: [21, '0.84'] }); // 1.20 × 21 / 30
    expect(rate(events, 'none')).toEqual({ antivirus: [30, '1.20'] });
  });

  it('bills nothing for a month spent suspended', () => {
    const events = [
      subscribed('2026-10-01'),
      activated('2026-10-02'),
      event('suspended', '2026-10-20'),
      event('resumed', '2026-12-01 08:00'),
    ];
    expect(rate(events, 'daily')).toEqual({});
    expect(rate(events, 'none')).toEqual({});
  });

  it('bills a module added and removed within the month for its days only', () => {
    // Firewall from the 16th to 12:00 on the 25th: 10 days, 0.80 × 10 / 30 = 0.2666… → 0.27.
    const events = [
      subscribed('2026-10-01'),
      activated('2026-10-02'),
      event('modules-changed', '2026-11-16 15:00', { modules: ['antivirus', 'firewall'] }),
      event('modules-changed', '2026-11-25 12:00', { modules: ['antivirus'] }),
    ];
    expect(rate(events, 'daily')).toEqual({ antivirus: [30, '1.20'], firewall: [10, '0.27'] });
    expect(rate(events, 'none')).toEqual({ antivirus: [30, '1.20'], firewall: [30, '0.80'] });
  });

  it('bills an activation on the last day of the month as one day (daily) or the month (none)', () => {
    const events = [subscribed('2026-11-03'), activated('2026-11-30 23:30')];
    expect(rate(events, 'daily')).toEqual({ antivirus: [1, '0.04'] }); // 1.20 / 30
    expect(rate(events, 'none')).toEqual({ antivirus: [30, '1.20'] });
  });

  it('bills nothing for a cancel effective at 00:00 on the 1st', () => {
    const events = [
      subscribed('2026-10-01'),
      activated('2026-10-02'),
      event('cancelled', '2026-11-01 00:00'),
    ];
    expect(rate(events, 'daily')).toEqual({});
    expect(rate(events, 'none')).toEqual({});
  });

  it('bills the 1st for a cancel effective at 10:00 on the 1st', () => {
    const events = [
      subscribed('2026-10-01'),
      activated('2026-10-02'),
      event('cancelled', '2026-11-01 10:00'),
    ];
    expect(rate(events, 'daily')).toEqual({ antivirus: [1, '0.04'] });
    expect(rate(events, 'none')).toEqual({ antivirus: [30, '1.20'] });
  });

  it('bills nothing for a subscription cancelled before the period began', () => {
    const events = [
      subscribed('2026-09-01'),
      activated('2026-09-02'),
      event('cancelled', '2026-10-15'),
    ];
    expect(rate(events, 'daily')).toEqual({});
    expect(rate(events, 'none')).toEqual({});
  });

  it('bills a subscriber who cancelled before the period and subscribed again within it', () => {
    const events = [
      subscribed('2026-09-01'),
      activated('2026-09-02'),
      event('cancelled', '2026-10-15'),
      event('provisioned', '2026-11-21 08:00', { modules: ['antivirus'] }),
    ];
    expect(rate(events, 'daily')).toEqual({ antivirus: [10, '0.40'] }); // 21st to 30th
  });

  it('never bills a licence that was never activated', () => {
    const events = [subscribed('2026-10-01', ['antivirus', 'firewall'])];
    expect(rate(events, 'daily')).toEqual({});
    expect(rate(events, 'none')).toEqual({});
  });

  it('bills nothing when the activation comes after the period', () => {
    const events = [subscribed('2026-10-01'), activated('2026-12-01 00:00')];
    expect(rate(events, 'daily')).toEqual({});
    expect(rate(events, 'none')).toEqual({});
  });

  it('does not bill a subscribe that left the subscription suspended', () => {
    const events = [
      event('provisioned', '2026-10-01', { modules: ['antivirus'], status: 'suspended' }),
      activated('2026-10-02'),
    ];
    expect(rate(events, 'daily')).toEqual({});
  });

  it('orders events of the same instant by ledger id', () => {
    // Suspended and resumed in the same millisecond, resume recorded last: active all month.
    const events = [
      subscribed('2026-10-01'),
      activated('2026-10-02'),
      event('resumed', '2026-11-05 10:00', { id: '901' }),
      event('suspended', '2026-11-05 10:00', { id: '900' }),
    ];
    expect(rate(events, 'daily')).toEqual({ antivirus: [30, '1.20'] });
  });

  it.each([
    ['half-up', '0.13'],
    ['half-even', '0.12'],
  ] as const)('rounds a half cent %s: 0.25 × 15 / 30 = 0.125 → %s', (rounding, amount) => {
    // Active from 00:00 on the 16th: 15 days of 30.
    const events = [subscribed('2026-10-01', ['backup']), activated('2026-11-16 00:00')];
    expect(rate(events, 'daily', rounding)).toEqual({ backup: [15, amount] });
  });

  it('rounds from the exact fraction, not from the 4-decimal quantity', () => {
    // 7/30 displays as 0.2333; 1000.00 × 0.2333 would be 233.30, the exact amount is 233.33.
    const big: RatingRules = {
      ...rules('daily'),
      prices: { from: '2026-01-01', modules: { antivirus: '1000' } },
    };
    const events = [subscribed('2026-10-01'), activated('2026-11-24 08:00')];
    const [line] = rateSubscriber('sub_a', events, NOVEMBER, big);
    expect(line).toMatchObject({
      days: 7,
      quantity: '0.2333',
      amount: '233.33',
      unitPrice: '1000.00',
    });
  });

  it('counts calendar days in the ISP zone across the autumn clock change', () => {
    const october = periodFrame('2026-10', ZONE);
    expect(october.daysInPeriod).toBe(31);
    // 25 October lasts 25 hours in Paris; a suspension from its 01:00 to the 26th 00:30 leaves
    // the 25th and 26th each with an active moment: every day of the month counts.
    const events = [
      subscribed('2026-09-01'),
      activated('2026-09-02'),
      event('suspended', '2026-10-25 01:00'),
      event('resumed', '2026-10-26 00:30'),
    ];
    const [line] = rateSubscriber('sub_a', events, october, rules('daily'));
    expect(line?.days).toBe(31);
  });
});

describe('pricesFor', () => {
  const billing = billingSchema.parse({
    prices: [
      { from: '2026-01-01', modules: { antivirus: '1.20' } },
      { from: '2026-07-15', modules: { antivirus: '1.50' } },
    ],
  });

  it('rates a period with the list in force on its first day, so a mid-year change applies from the next month', () => {
    expect(pricesFor('demo-fai', billing, '2026-07').modules.antivirus).toBe('1.20');
    expect(pricesFor('demo-fai', billing, '2026-08').modules.antivirus).toBe('1.50');
    const july = rateSubscriber(
      'sub_a',
      [subscribed('2026-06-01'), activated('2026-06-02')],
      periodFrame('2026-07', ZONE),
      { ...rules('none'), prices: pricesFor('demo-fai', billing, '2026-07') },
    );
    const august = rateSubscriber(
      'sub_a',
      [subscribed('2026-06-01'), activated('2026-06-02')],
      periodFrame('2026-08', ZONE),
      { ...rules('none'), prices: pricesFor('demo-fai', billing, '2026-08') },
    );
    expect([july[0]?.amount, august[0]?.amount]).toEqual(['1.20', '1.50']);
  });

  it('refuses a period before the first list, naming ISP and period', () => {
    expect(() => pricesFor('demo-fai', billing, '2025-12')).toThrow(
      'ISP demo-fai has no price list in force on 2025-12-01 for period 2025-12',
    );
  });

  it('refuses to rate a module without a price, naming the module', () => {
    const events = [subscribed('2026-10-01', ['antivirus', 'vpn']), activated('2026-10-02')];
    expect(() => rateSubscriber('sub_a', events, NOVEMBER, rules('none'))).toThrow(
      'ISP demo-fai cannot be rated for period 2026-11: no price for module vpn',
    );
  });
});
