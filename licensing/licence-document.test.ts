import { describe, expect, it } from 'vitest';
import { type LicenceState, licenceClaims, licenceStatus } from './licence-document.js';

const now = new Date('2026-12-04T10:00:00.000Z');
const state = (over: Partial<LicenceState> = {}): LicenceState => ({
  licenceId: 'lic_0',
  subscriberId: 'sub_0',
  ispId: 'demo-fai',
  licenceStatus: 'valid',
  subscriptionStatus: 'active',
  erasedAt: null,
  validUntil: new Date('2027-01-07T23:00:00.000Z'),
  period: '2026-12',
  modules: 'antivirus,firewall',
  deviceLimit: 2,
  ...over,
});

describe('licenceStatus', () => {
  it.each([
    ['active', {}, 'active'],
    ['suspended', { subscriptionStatus: 'suspended' }, 'suspended'],
    ['cancelled inside its period', { subscriptionStatus: 'cancelled' }, 'cancelled'],
    ['cancelled past its end', { subscriptionStatus: 'cancelled', validUntil: now }, 'expired'],
    ['suspended past its end', { subscriptionStatus: 'suspended', validUntil: now }, 'expired'],
    ['revoked', { licenceStatus: 'revoked' }, 'revoked'],
    ['erased, even if active', { erasedAt: now }, 'revoked'],
  ] as const)('reads %s', (_name, over, expected) => {
    expect(licenceStatus(state(over), now)).toBe(expected);
  });
});

describe('licenceClaims', () => {
  it('holds ids, modules and dates only, with the check-in time', () => {
    expect(licenceClaims({ state: state(), deviceId: 'dev_0', now, checkInHours: 24 })).toEqual({
      licenceId: 'lic_0',
      subscriberId: 'sub_0',
      ispId: 'demo-fai',
      status: 'active',
      modules: ['antivirus', 'firewall'],
      device: { id: 'dev_0' },
      deviceLimit: 2,
      issuedAt: '2026-12-04T10:00:00.000Z',
      validUntil: '2027-01-07T23:00:00.000Z',
      period: '2026-12',
      checkInAfter: '2026-12-05T10:00:00.000Z',
    });
    expect(
      licenceClaims({ state: state({ modules: '' }), deviceId: 'd', now, checkInHours: 1 }).modules,
    ).toEqual([]);
  });
});
