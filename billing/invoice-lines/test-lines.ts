/**
 * A fixed, hand-built list of invoice lines for the golden files and writer tests: charges and
 * adjustments, a credit (negative amount), a daily-prorated quantity, customer refs with leading
 * zeros, and activation times either side of midnight in Paris. Test data only.
 */
import type { IspInvoiceLine } from '../invoice-line.js';

type Draft = Omit<IspInvoiceLine, 'ispId' | 'period' | 'currency' | 'lineId'>;

const DRAFTS: Draft[] = [
  {
    kind: 'charge',
    servicePeriod: '2026-03',
    customerRef: '00012345',
    subscriberId: 'sub_0b4d7m2q9r3s5t6v8w1x3y5z7a',
    licenceId: 'lic_1c5e8n3r0s4t6v7w9x2y4z6a8b',
    module: 'antivirus',
    days: 31,
    daysInPeriod: 31,
    quantity: '1',
    unitPrice: '1.20',
    amount: '1.20',
    activationEventId: '1001',
    activatedAt: '2026-02-14T09:30:00.000Z',
  },
  {
    kind: 'charge',
    servicePeriod: '2026-03',
    customerRef: '00012345',
    subscriberId: 'sub_0b4d7m2q9r3s5t6v8w1x3y5z7a',
    licenceId: 'lic_1c5e8n3r0s4t6v7w9x2y4z6a8b',
    module: 'firewall',
    days: 31,
    daysInPeriod: 31,
    quantity: '1',
    unitPrice: '0.80',
    amount: '0.80',
    activationEventId: '1001',
    activatedAt: '2026-02-14T09:30:00.000Z',
  },
  {
    // Activated at 00:30 on 15 March in Paris (23:30 UTC the day before): 17 of 31 days.
    kind: 'charge',
    servicePeriod: '2026-03',
    customerRef: '00000042',
    subscriberId: 'sub_2d6f9p4s1t5v7w8x0y3z5a7b9c',
    licenceId: 'lic_3e7g0q5t2v6w8x9y1z4a6b8c0d',
    module: 'parental-control',
    days: 17,
    daysInPeriod: 31,
    quantity: '0.5484',
    unitPrice: '0.90',
    amount: '0.49',
    activationEventId: '2417',
    activatedAt: '2026-03-14T23:30:00.000Z',
  },
  {
    // Activated on the last second of March in Paris (summer time since the 29th).
    kind: 'charge',
    servicePeriod: '2026-03',
    customerRef: '98765432',
    subscriberId: 'sub_4f8h1r6v3w7x9y0z2a5b7c9d1e',
    licenceId: 'lic_5g9j2s7w4x8y0z1a3b6c8d0e2f',
    module: 'backup',
    days: 1,
    daysInPeriod: 31,
    quantity: '0.0323',
    unitPrice: '1.50',
    amount: '0.05',
    activationEventId: '3999',
    activatedAt: '2026-03-31T21:59:59.000Z',
  },
  {
    // A late activation of February, recorded after February closed.
    kind: 'adjustment',
    servicePeriod: '2026-02',
    customerRef: '00000042',
    subscriberId: 'sub_2d6f9p4s1t5v7w8x0y3z5a7b9c',
    licenceId: 'lic_6h0k3t8x5y9z1a2b4c7d9e1f3g',
    module: 'antivirus',
    days: 28,
    daysInPeriod: 28,
    quantity: '1',
    unitPrice: '1.20',
    amount: '1.20',
    activationEventId: '2201',
    activatedAt: '2026-02-01T08:00:00.000Z',
  },
  {
    // A correction: February's backup was billed but the module had been removed.
    kind: 'adjustment',
    servicePeriod: '2026-02',
    customerRef: '00012345',
    subscriberId: 'sub_0b4d7m2q9r3s5t6v8w1x3y5z7a',
    licenceId: 'lic_1c5e8n3r0s4t6v7w9x2y4z6a8b',
    module: 'backup',
    days: 28,
    daysInPeriod: 28,
    quantity: '-1',
    unitPrice: '1.50',
    amount: '-1.50',
    activationEventId: '1001',
    activatedAt: '2026-02-14T09:30:00.000Z',
  },
];

export const GOLDEN_PERIOD = '2026-03';

/** The lines of one ISP for March 2026, in lineId order as the server streams them. */
export function goldenLines(ispId: string): IspInvoiceLine[] {
  return DRAFTS.map((d) => ({
    ...d,
    ispId,
    period: GOLDEN_PERIOD,
    currency: 'EUR',
    lineId:
      d.kind === 'charge'
        ? `${d.servicePeriod}/${d.subscriberId}/${d.licenceId}/${d.module}`
        : `${GOLDEN_PERIOD}/adj/${d.servicePeriod}/${d.subscriberId}/${d.licenceId}/${d.module}`,
  })).sort((a, b) => (a.lineId < b.lineId ? -1 : 1));
}

export async function* streamOf<T>(items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield item;
}
