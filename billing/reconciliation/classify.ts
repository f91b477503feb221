/**
 * The reconciliation verdict for one customer ref, from its three sides: what the ISP billed
 * (its export), what Relais knows (the subscriber map) and what the vendor billed the ISP
 * (rated lines of the period). Pure: no I/O, so every rule and its precedence is unit-tested.
 *
 * Precedence, first that applies wins (docs/reconciliation.md explains each):
 * 1. UNKNOWN_REF: in the export, not in the subscriber map and not billed by the vendor.
 * 2. EXPORT_ROW_REJECTED: one of the ref's export rows was rejected, so its ISP side is
 *    incomplete; comparing it would invent a leak or a mismatch.
 * 3. BILLED_NOT_ACTIVATED / ACTIVATED_NOT_BILLED / MISSING_FROM_EXPORT: one side is absent.
 * 4. MODULES_DIFFER: both billed, not the same modules (or a module billed twice).
 * 5. AMOUNT_DIFFERS: same modules, amount off the retail prices by more than the tolerance.
 * 6. MATCHED.
 */
import type { SubscriptionStatus } from '../../config/isp-schema.js';
import { absMicros } from './money.js';

export const CATEGORIES = [
  'MATCHED',
  'BILLED_NOT_ACTIVATED',
  'ACTIVATED_NOT_BILLED',
  'MODULES_DIFFER',
  'AMOUNT_DIFFERS',
  'UNKNOWN_REF',
  'MISSING_FROM_EXPORT',
  'EXPORT_ROW_REJECTED',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** The finer reason within a category; see docs/reconciliation.md for the table. */
export type ReasonCode =
  | 'MATCHED'
  | 'CREDIT_ONLY'
  | 'NEVER_ACTIVATED'
  | 'SUBSCRIBER_SUSPENDED'
  | 'SUBSCRIBER_CANCELLED'
  | 'ISP_DID_NOT_BILL'
  | 'ISP_CREDITED'
  | 'SUBSCRIBER_ERASED'
  | 'ISP_BILLED_TWICE'
  | 'ISP_BILLED_EXTRA'
  | 'ISP_BILLED_FEWER'
  | 'MODULES_SWAPPED'
  | 'ISP_CHARGED_MORE'
  | 'ISP_CHARGED_LESS'
  | 'NOT_IN_SUBSCRIBER_MAP'
  | 'NOT_ACTIVATED'
  | 'ROW_REJECTED';

export interface IspSide {
  /** Modules of the ref's charge lines (amount >= 0), sorted, repeats kept. */
  modules: string[];
  amountMicros: bigint;
  lines: number;
  rejectedLines: number;
}

export interface KnownSide {
  status: SubscriptionStatus;
  modules: string[];
}

export interface VendorSide {
  /** Modules with a positive net quantity in the period, sorted, no repeats. */
  modules: string[];
  amountMicros: bigint;
}

export interface RefSides {
  ref: string;
  isp?: IspSide;
  known?: KnownSide;
  vendor?: VendorSide;
}

export interface Verdict {
  category: Category;
  reason: ReasonCode;
  /** Retail amount the ISP should have charged, when every billed module has a price. */
  expectedMicros?: bigint;
  /** ISP amount minus expected amount, when an expected amount exists. */
  differenceMicros?: bigint;
}

export interface ClassifyRules {
  toleranceMicros: bigint;
  /** Retail price of one month of each module; undefined: amounts are not compared. */
  retailMicros?: ReadonlyMap<string, bigint>;
}

/**
 * The verdict for one ref, or undefined for a ref with nothing to reconcile: known at Relais
 * but not active, absent from the export and not billed by the vendor.
 */
export function classify(sides: RefSides, rules: ClassifyRules): Verdict | undefined {
  const { isp, known, vendor } = sides;
  const vendorBilled = vendor !== undefined && vendor.modules.length > 0;
  const ispBilled = isp !== undefined && isp.modules.length > 0;
  const amounts = expectedAmount(isp, vendorBilled ? vendor : undefined, rules);

  if (isp && !known && !vendorBilled)
    return { category: 'UNKNOWN_REF', reason: 'NOT_IN_SUBSCRIBER_MAP' };
  if (isp && isp.rejectedLines > 0) {
    return { category: 'EXPORT_ROW_REJECTED', reason: 'ROW_REJECTED', ...amounts };
  }

  if (!ispBilled && vendorBilled) {
    const reason = isp ? 'ISP_CREDITED' : statusReason(known, 'ISP_DID_NOT_BILL');
    return { category: 'ACTIVATED_NOT_BILLED', reason, ...amounts };
  }
  if (ispBilled && !vendorBilled) {
    return { category: 'BILLED_NOT_ACTIVATED', reason: statusReason(known, 'NEVER_ACTIVATED') };
  }
  if (!ispBilled && !vendorBilled) {
    if (isp) return { category: 'MATCHED', reason: 'CREDIT_ONLY' };
    if (known?.status === 'active')
      return { category: 'MISSING_FROM_EXPORT', reason: 'NOT_ACTIVATED' };
    return undefined;
  }

  // Both sides billed something.
  const ispModules = (isp as IspSide).modules;
  const vendorModules = (vendor as VendorSide).modules;
  const ispSet = new Set(ispModules);
  if (ispSet.size !== ispModules.length) {
    return { category: 'MODULES_DIFFER', reason: 'ISP_BILLED_TWICE', ...amounts };
  }
  const extra = ispModules.some((m) => !vendorModules.includes(m));
  const missing = vendorModules.some((m) => !ispSet.has(m));
  if (extra || missing) {
    const reason =
      extra && missing ? 'MODULES_SWAPPED' : extra ? 'ISP_BILLED_EXTRA' : 'ISP_BILLED_FEWER';
    return { category: 'MODULES_DIFFER', reason, ...amounts };
  }
  const difference = amounts.differenceMicros;
  if (difference !== undefined && absMicros(difference) > rules.toleranceMicros) {
    const reason = difference > 0n ? 'ISP_CHARGED_MORE' : 'ISP_CHARGED_LESS';
    return { category: 'AMOUNT_DIFFERS', reason, ...amounts };
  }
  return { category: 'MATCHED', reason: 'MATCHED', ...amounts };
}

/** Why a side is absent, from the subscriber's status at Relais. */
function statusReason(known: KnownSide | undefined, ifActive: ReasonCode): ReasonCode {
  if (known === undefined) return 'SUBSCRIBER_ERASED';
  if (known.status === 'suspended') return 'SUBSCRIBER_SUSPENDED';
  if (known.status === 'cancelled') return 'SUBSCRIBER_CANCELLED';
  return ifActive;
}

/**
 * The retail amount expected for what the vendor billed (what the ISP should charge for the
 * modules actually activated), and the ISP's difference from it. Undefined without retail
 * prices, or when a billed module has none.
 */
function expectedAmount(
  isp: IspSide | undefined,
  vendor: VendorSide | undefined,
  rules: ClassifyRules,
): { expectedMicros?: bigint; differenceMicros?: bigint } {
  const prices = rules.retailMicros;
  if (!prices || !vendor) return {};
  let expected = 0n;
  for (const module of vendor.modules) {
    const price = prices.get(module);
    if (price === undefined) return {};
    expected += price;
  }
  const ispAmount = isp?.amountMicros ?? 0n;
  return { expectedMicros: expected, differenceMicros: ispAmount - expected };
}
