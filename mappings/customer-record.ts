/**
 * The canonical record: what one line of any ISP export means once mapped, whatever the format.
 * This is the only shape the rest of the intake sees. It still holds the customer ref (and
 * maybe an e-mail): it never leaves the connector side.
 */
import type { DeltaOperation, SubscriptionStatus } from '../config/isp-schema.js';

export interface CustomerRecord {
  /** 1-based line of the record in the file, for messages back to the ISP. */
  line: number;
  customerRef: string;
  offer: string | null;
  /** Module codes, sorted and without repeats; empty only for a cancellation. */
  modules: string[];
  status: SubscriptionStatus;
  /** When the change takes effect (UTC); null when the file does not say. */
  effectiveAt: Date | null;
  /** Delta mode: what this record does; null in snapshot mode. */
  operation: DeltaOperation | null;
  email: string | null;
  language: string | null;
}

/** Canonical field names, as they appear in `intake.fields` and in rejects. */
export type CanonicalField =
  | 'customerRef'
  | 'offer'
  | 'options'
  | 'status'
  | 'effectiveDate'
  | 'operation'
  | 'email'
  | 'language';

/** Fields whose values are personal: a reject never repeats them. */
export const PERSONAL_FIELDS: ReadonlySet<CanonicalField> = new Set(['email']);

/**
 * Why one record was refused. Goes to the ISP's rejects file and, without `value`, to the
 * ledger. `customerRef` is set when the ref itself was readable, so that a snapshot does not
 * cancel a customer just because their row had a mistake.
 */
export interface MappingReject {
  line: number;
  /** Canonical field at fault, or the format's source name for a format-level reject. */
  field: string | null;
  /** The offending value when it is not personal; never an e-mail. */
  value: string | null;
  reason: string;
  customerRef: string | null;
}

export type MappingResult =
  | { ok: true; record: CustomerRecord }
  | { ok: false; reject: MappingReject };
