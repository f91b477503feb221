/**
 * The licence document: what the desktop software holds after activating, and what lets it run
 * offline. A signed `relais-licence/1` document (see signed-document.ts) whose claims say which
 * modules the licence covers, for which device, until when, and when to check in again. It
 * names ids, module codes and dates only: never anything personal.
 *
 * The status the document carries is derived here from the licence and its subscription, so
 * activation, check-in and the reference client agree on what "expired" or "revoked" means.
 */
import type { Keystore, PublicSigningKey } from './keystore.js';
import { type SignedDocument, signDocument, verifyDocument } from './signed-document.js';

export const LICENCE_DOCUMENT_TYPE = 'relais-licence/1';

export const LICENCE_STATUSES = ['active', 'suspended', 'cancelled', 'expired', 'revoked'] as const;
export type LicenceStatus = (typeof LICENCE_STATUSES)[number];

export interface LicenceClaims {
  licenceId: string;
  subscriberId: string;
  ispId: string;
  /**
   * `active`; `cancelled` (runs until validUntil, will not be renewed); `suspended`, `expired`
   * and `revoked` unlock nothing.
   */
  status: LicenceStatus;
  modules: string[];
  device: { id: string };
  deviceLimit: number;
  /** ISO 8601 UTC. */
  issuedAt: string;
  /** ISO 8601 UTC; null for a licence without an end (never issued by provisioning). */
  validUntil: string | null;
  /** The last period (YYYY-MM) the licence was issued or renewed for. */
  period: string | null;
  /** ISO 8601 UTC: when the software should check in for a fresh document. */
  checkInAfter: string;
}

/** The state of a licence and its subscription a document is built from. */
export interface LicenceState {
  licenceId: string;
  subscriberId: string;
  ispId: string;
  licenceStatus: string;
  subscriptionStatus: string;
  erasedAt: Date | null;
  validUntil: Date | null;
  period: string | null;
  /** Comma-joined, as stored. */
  modules: string;
  deviceLimit: number;
}

/**
 * What a licence currently allows. Revocation and erasure are final, then the end date wins
 * (an active subscription whose renewal has not run past grace is expired), then the ISP's
 * suspension, then a cancellation that still runs to the end of its paid period.
 */
export function licenceStatus(state: LicenceState, now: Date): LicenceStatus {
  if (state.licenceStatus === 'revoked' || state.erasedAt !== null) return 'revoked';
  if (state.validUntil !== null && state.validUntil.getTime() <= now.getTime()) return 'expired';
  if (state.subscriptionStatus === 'suspended') return 'suspended';
  if (state.subscriptionStatus === 'cancelled') return 'cancelled';
  return 'active';
}

export function moduleList(modules: string): string[] {
  return modules === '' ? [] : modules.split(',');
}

export interface DocumentInput {
  state: LicenceState;
  deviceId: string;
  now: Date;
  checkInHours: number;
}

export function licenceClaims({
  state,
  deviceId,
  now,
  checkInHours,
}: DocumentInput): LicenceClaims {
  return {
    licenceId: state.licenceId,
    subscriberId: state.subscriberId,
    ispId: state.ispId,
    status: licenceStatus(state, now),
    modules: moduleList(state.modules),
    device: { id: deviceId },
    deviceLimit: state.deviceLimit,
    issuedAt: now.toISOString(),
    validUntil: state.validUntil ? state.validUntil.toISOString() : null,
    period: state.period,
    checkInAfter: new Date(now.getTime() + checkInHours * 3_600_000).toISOString(),
  };
}

export function buildLicenceDocument(
  signing: Keystore['signing'],
  input: DocumentInput,
): SignedDocument {
  return signDocument(signing, LICENCE_DOCUMENT_TYPE, licenceClaims(input));
}

export type LicenceCheck =
  | { ok: true; claims: LicenceClaims; usable: boolean; reason?: string }
  | { ok: false; reason: string };

function isIso(value: unknown): value is string {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}

function shapeProblem(c: Record<string, unknown>): string | undefined {
  for (const field of ['licenceId', 'subscriberId', 'ispId'] as const) {
    if (typeof c[field] !== 'string') return `claim ${field} is missing`;
  }
  if (!LICENCE_STATUSES.includes(c.status as LicenceStatus)) return 'claim status is unknown';
  if (!Array.isArray(c.modules) || !c.modules.every((m) => typeof m === 'string'))
    return 'claim modules is not a list of module codes';
  const device = c.device as { id?: unknown } | null;
  if (typeof device !== 'object' || device === null || typeof device.id !== 'string')
    return 'claim device is missing';
  if (!isIso(c.issuedAt) || !isIso(c.checkInAfter)) return 'claim dates are malformed';
  if (c.validUntil !== null && !isIso(c.validUntil)) return 'claim validUntil is malformed';
  return undefined;
}

/**
 * Offline check of a licence document, as the desktop software does it: signature against the
 * published keys, shape of the claims, then whether it unlocks the modules now. `ok` says the
 * document is genuine; `usable` whether it lets the software run (with `reason` when not).
 */
export function checkLicenceDocument(
  keys: readonly PublicSigningKey[],
  document: unknown,
  now: Date,
): LicenceCheck {
  const verified = verifyDocument<Record<string, unknown>>(keys, document, LICENCE_DOCUMENT_TYPE);
  if (!verified.ok) return verified;
  const problem = shapeProblem(verified.claims);
  if (problem) return { ok: false, reason: problem };
  const claims = verified.claims as unknown as LicenceClaims;
  if (claims.status !== 'active' && claims.status !== 'cancelled') {
    return { ok: true, claims, usable: false, reason: `the licence is ${claims.status}` };
  }
  if (claims.validUntil !== null && Date.parse(claims.validUntil) <= now.getTime()) {
    return {
      ok: true,
      claims,
      usable: false,
      reason: `the licence expired at ${claims.validUntil}`,
    };
  }
  return { ok: true, claims, usable: true };
}
