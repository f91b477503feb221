import { describe, expect, it } from 'vitest';
import {
  type ClassifyRules,
  classify,
  type IspSide,
  type KnownSide,
  type RefSides,
  type VendorSide,
} from './classify.js';

const M = 1_000_000n;
const rules: ClassifyRules = { toleranceMicros: 10_000n };
const priced: ClassifyRules = {
  toleranceMicros: 10_000n,
  retailMicros: new Map([
    ['antivirus', 3_990_000n],
    ['firewall', 2n * M],
  ]),
};

function isp(modules: string[], amount = 3_990_000n, extra: Partial<IspSide> = {}): IspSide {
  return { modules, amountMicros: amount, lines: 1, rejectedLines: 0, ...extra };
}
function known(status: KnownSide['status'] = 'active', modules = ['antivirus']): KnownSide {
  return { status, modules };
}
function vendor(modules: string[], amount = 1_200_000n): VendorSide {
  return { modules, amountMicros: amount };
}

describe('classify', () => {
  it.each<[string, Omit<RefSides, 'ref'>, string, string]>([
    [
      'both billed the same modules',
      { isp: isp(['antivirus']), known: known(), vendor: vendor(['antivirus']) },
      'MATCHED',
      'MATCHED',
    ],
    [
      'the ISP billed, the vendor did not',
      { isp: isp(['antivirus']), known: known() },
      'BILLED_NOT_ACTIVATED',
      'NEVER_ACTIVATED',
    ],
    [
      'the ISP billed a cancelled subscriber',
      { isp: isp(['antivirus']), known: known('cancelled') },
      'BILLED_NOT_ACTIVATED',
      'SUBSCRIBER_CANCELLED',
    ],
    [
      'the ISP billed a suspended subscriber',
      { isp: isp(['antivirus']), known: known('suspended') },
      'BILLED_NOT_ACTIVATED',
      'SUBSCRIBER_SUSPENDED',
    ],
    [
      'the vendor billed, the ISP did not',
      { known: known(), vendor: vendor(['antivirus']) },
      'ACTIVATED_NOT_BILLED',
      'ISP_DID_NOT_BILL',
    ],
    [
      'the vendor billed a subscriber cancelled during the month',
      { known: known('cancelled'), vendor: vendor(['antivirus']) },
      'ACTIVATED_NOT_BILLED',
      'SUBSCRIBER_CANCELLED',
    ],
    [
      'the vendor billed an erased subscriber',
      { vendor: vendor(['antivirus']) },
      'ACTIVATED_NOT_BILLED',
      'SUBSCRIBER_ERASED',
    ],
    [
      'the ISP only credited what the vendor billed',
      { isp: isp([], -3_990_000n), known: known(), vendor: vendor(['antivirus']) },
      'ACTIVATED_NOT_BILLED',
      'ISP_CREDITED',
    ],
    [
      'the ISP billed an extra module',
      { isp: isp(['antivirus', 'firewall']), known: known(), vendor: vendor(['antivirus']) },
      'MODULES_DIFFER',
      'ISP_BILLED_EXTRA',
    ],
    [
      'the ISP billed fewer modules',
      { isp: isp(['antivirus']), known: known(), vendor: vendor(['antivirus', 'firewall']) },
      'MODULES_DIFFER',
      'ISP_BILLED_FEWER',
    ],
    [
      'the modules are different ones',
      { isp: isp(['backup']), known: known(), vendor: vendor(['antivirus']) },
      'MODULES_DIFFER',
      'MODULES_SWAPPED',
    ],
    [
      'the ISP billed a module twice',
      { isp: isp(['antivirus', 'antivirus']), known: known(), vendor: vendor(['antivirus']) },
      'MODULES_DIFFER',
      'ISP_BILLED_TWICE',
    ],
    [
      'the ref is unknown to Relais',
      { isp: isp(['antivirus']) },
      'UNKNOWN_REF',
      'NOT_IN_SUBSCRIBER_MAP',
    ],
    [
      'an unknown ref has a rejected row',
      { isp: isp(['antivirus'], 0n, { rejectedLines: 1 }) },
      'UNKNOWN_REF',
      'NOT_IN_SUBSCRIBER_MAP',
    ],
    [
      'active at Relais, in neither billing',
      { known: known() },
      'MISSING_FROM_EXPORT',
      'NOT_ACTIVATED',
    ],
    [
      'a known ref has a rejected row',
      {
        isp: isp([], 0n, { lines: 0, rejectedLines: 1 }),
        known: known(),
        vendor: vendor(['antivirus']),
      },
      'EXPORT_ROW_REJECTED',
      'ROW_REJECTED',
    ],
    [
      'a credit only, not billed by the vendor',
      { isp: isp([], -1n), known: known() },
      'MATCHED',
      'CREDIT_ONLY',
    ],
  ])('%s', (_, sides, category, reason) => {
    expect(classify({ ref: 'R1', ...sides }, rules)).toMatchObject({ category, reason });
  });

  it('reports nothing for a ref not active at Relais and absent from both billings', () => {
    expect(classify({ ref: 'R1', known: known('cancelled') }, rules)).toBeUndefined();
    expect(classify({ ref: 'R1', known: known('suspended') }, rules)).toBeUndefined();
  });

  it('treats vendor lines that net to no module as not billed', () => {
    const sides = { ref: 'R1', isp: isp(['antivirus']), known: known(), vendor: vendor([], 0n) };
    expect(classify(sides, rules)?.category).toBe('BILLED_NOT_ACTIVATED');
  });

  describe('when retail prices are set', () => {
    const both = (amount: bigint): RefSides => ({
      ref: 'R1',
      isp: isp(['antivirus', 'firewall'], amount),
      known: known(),
      vendor: vendor(['antivirus', 'firewall']),
    });

    it.each<[string, bigint, string, string, bigint]>([
      ['exactly the expected amount', 5_990_000n, 'MATCHED', 'MATCHED', 0n],
      ['one tolerance above', 6_000_000n, 'MATCHED', 'MATCHED', 10_000n],
      ['one tolerance below', 5_980_000n, 'MATCHED', 'MATCHED', -10_000n],
      [
        'just beyond the tolerance above',
        6_000_001n,
        'AMOUNT_DIFFERS',
        'ISP_CHARGED_MORE',
        10_001n,
      ],
      [
        'just beyond the tolerance below',
        5_979_999n,
        'AMOUNT_DIFFERS',
        'ISP_CHARGED_LESS',
        -10_001n,
      ],
    ])('%s', (_, amount, category, reason, difference) => {
      expect(classify(both(amount), priced)).toEqual({
        category,
        reason,
        expectedMicros: 5_990_000n,
        differenceMicros: difference,
      });
    });

    it('does not compare amounts when a billed module has no retail price', () => {
      const sides: RefSides = {
        ref: 'R1',
        isp: isp(['backup'], 1n),
        known: known(),
        vendor: vendor(['backup']),
      };
      expect(classify(sides, priced)).toEqual({ category: 'MATCHED', reason: 'MATCHED' });
    });

    it('lets a module difference win over an amount difference', () => {
      const sides: RefSides = {
        ref: 'R1',
        isp: isp(['antivirus'], 50n * M),
        known: known(),
        vendor: vendor(['antivirus', 'firewall']),
      };
      expect(classify(sides, priced)?.category).toBe('MODULES_DIFFER');
    });

    it('expects the full retail amount of what the vendor billed from a ref the ISP forgot', () => {
      const sides: RefSides = { ref: 'R1', known: known(), vendor: vendor(['antivirus']) };
      expect(classify(sides, priced)).toMatchObject({
        expectedMicros: 3_990_000n,
        differenceMicros: -3_990_000n,
      });
    });
  });

  it('never compares amounts without retail prices', () => {
    const sides: RefSides = {
      ref: 'R1',
      isp: isp(['antivirus'], 999n * M),
      known: known(),
      vendor: vendor(['antivirus']),
    };
    expect(classify(sides, rules)).toEqual({ category: 'MATCHED', reason: 'MATCHED' });
  });
});
