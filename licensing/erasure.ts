/**
 * Erasure of a subscriber at its ISP's request. The server holds nothing personal, but a
 * subscriber's devices, downloads and activation key tie the pseudonymous subscriber id to a
 * person's computer and to the letter or e-mail they received; erasure cuts those ties and
 * keeps only what billing of closed (and the current) periods needs:
 *
 * - deleted: device rows (fingerprint hashes), download rows, and the ledger events that only
 *   describe devices or downloads (`device-added`, `device-removed`, `downloaded`); billing
 *   rates activated licences and their modules, never downloads or which computer ran them.
 * - scrubbed: device ids and any device-, fingerprint- or address-derived field in the data of
 *   the events kept.
 * - revoked: every licence (status `revoked`, `revoked_at`), with its key hash overwritten by
 *   random bytes, so the delivered key no longer leads to this subscriber (it answers as an
 *   unknown key) and the next check-in of a device gets no document.
 * - kept: the subscription row (subscriber id, ISP, modules, status `cancelled`, dates), the
 *   licence rows (ids, period, validity and activation dates), and the ledger's lifecycle
 *   events: what an invoice line of a closed period is computed from and must be re-computable
 *   from, byte for byte.
 *
 * The whole erasure, its `erased` event and its signed receipt commit in one transaction on the
 * locked subscription row; a repeated request finds `erased_at` set and returns the stored
 * receipt, so nothing changes twice.
 */
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { RequestError } from '../platform/errors.js';
import { isId, newId } from '../platform/ids.js';
import type { LicensingDeps } from './context.js';
import { appendEvents, type EventType } from './ledger.js';
import { type SignedDocument, signDocument } from './signed-document.js';

export const ERASURE_RECEIPT_TYPE = 'relais-erasure-receipt/1';

/** Ledger events that describe only devices or downloads: gone with an erasure. */
export const ERASED_EVENT_TYPES: readonly EventType[] = [
  'device-added',
  'device-removed',
  'downloaded',
];

/**
 * Event data fields that could tie an event to a device or a network. Counts and limits
 * (`deviceLimit`) are kept: they describe the offer, not a machine.
 */
const DEVICE_FIELD =
  /^(device|deviceId|devices|deviceIds|previousDevice|fingerprint\w*|\w*FingerprintHash|\w*Address|ip|userAgent|host|hostname)$/i;

export const KEPT_RECORDS = [
  'subscription: subscriber id, ISP, modules, status cancelled, created/updated/erased dates',
  'licences: id, status revoked, period, valid-until, activated and revoked dates',
  'ledger events other than device and download events, without device data',
] as const;

export interface ErasureClaims {
  receiptId: string;
  ispId: string;
  subscriberId: string;
  /** ISO 8601 UTC. */
  erasedAt: string;
  revokedLicences: string[];
  deleted: { devices: number; downloads: number; ledgerEvents: number };
  scrubbed: { ledgerEvents: number };
  kept: string[];
}

export interface Erasure {
  receipt: SignedDocument;
  claims: ErasureClaims;
  /** True when the subscriber was erased before this call (the stored receipt is returned). */
  repeated: boolean;
}

/** Event data without device ids or device-derived fields; the same object when clean. */
export function scrubEventData(data: unknown): unknown {
  if (Array.isArray(data)) {
    const items = data
      .filter((v) => !(typeof v === 'string' && isId(v, 'dev')))
      .map(scrubEventData);
    const same = items.length === data.length && items.every((v, i) => v === data[i]);
    return same ? data : items;
  }
  if (typeof data !== 'object' || data === null) return data;
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (DEVICE_FIELD.test(key) || (typeof value === 'string' && isId(value, 'dev'))) {
      changed = true;
      continue;
    }
    const scrubbed = scrubEventData(value);
    if (scrubbed !== value) changed = true;
    out[key] = scrubbed;
  }
  return changed ? out : data;
}

function parseData(raw: unknown): unknown {
  if (typeof raw === 'string') return JSON.parse(raw);
  return raw;
}

async function storedReceipt(trx: Knex | Knex.Transaction, subscriberId: string) {
  const row = (await trx('erasure_receipts').where({ subscriber_id: subscriberId }).first()) as
    | { receipt: string }
    | undefined;
  return row ? (JSON.parse(row.receipt) as SignedDocument) : undefined;
}

function claimsOf(receipt: SignedDocument): ErasureClaims {
  return JSON.parse(Buffer.from(receipt.payload, 'base64url').toString('utf8')) as ErasureClaims;
}

/**
 * Erases one subscriber of `ispId`. An unknown subscriber, or one of another ISP, is
 * SUBSCRIBER_NOT_FOUND alike: an ISP cannot learn which ids exist elsewhere.
 */
export async function eraseSubscriber(
  deps: LicensingDeps,
  ispId: string,
  subscriberId: string,
): Promise<Erasure> {
  if (!isId(subscriberId, 'sub')) {
    throw new RequestError(
      'SUBSCRIBER_NOT_FOUND',
      'subscriber id must be sub_ and 26 base32 characters',
    );
  }
  const notFound = () =>
    new RequestError('SUBSCRIBER_NOT_FOUND', `no subscriber ${subscriberId} at ISP ${ispId}`);

  return deps.db.transaction(async (trx) => {
    const subscription = (await trx('subscriptions')
      .where({ subscriber_id: subscriberId })
      .forUpdate()
      .first()) as { isp_id: string; erased_at: Date | null } | undefined;
    if (!subscription || subscription.isp_id !== ispId) throw notFound();
    if (subscription.erased_at !== null) {
      const receipt = await storedReceipt(trx, subscriberId);
      if (receipt) return { receipt, claims: claimsOf(receipt), repeated: true };
    }

    const now = deps.now();
    const licences = (await trx('licences')
      .where({ subscriber_id: subscriberId })
      .orderBy('id')
      .forUpdate()
      .select('id', 'revoked_at')) as { id: string; revoked_at: Date | null }[];
    const licenceIds = licences.map((l) => l.id);

    const devices =
      licenceIds.length > 0 ? await trx('devices').whereIn('licence_id', licenceIds).del() : 0;
    const downloads = await trx('downloads').where({ subscriber_id: subscriberId }).del();
    const ledgerEvents = await trx('subscription_events')
      .where({ subscriber_id: subscriberId })
      .whereIn('type', ERASED_EVENT_TYPES)
      .del();

    let scrubbed = 0;
    const withData = (await trx('subscription_events')
      .where({ subscriber_id: subscriberId })
      .whereNotNull('data')
      .select('id', 'data')) as { id: number; data: unknown }[];
    for (const event of withData) {
      const data = parseData(event.data);
      const clean = scrubEventData(data);
      if (clean === data) continue;
      await trx('subscription_events')
        .where({ id: event.id })
        .update({ data: JSON.stringify(clean) });
      scrubbed++;
    }

    for (const licence of licences) {
      await trx('licences')
        .where({ id: licence.id })
        .update({
          status: 'revoked',
          revoked_at: licence.revoked_at ?? now,
          key_hash: randomBytes(32),
          updated_at: now,
        });
    }
    await trx('subscriptions')
      .where({ subscriber_id: subscriberId })
      .update({ status: 'cancelled', erased_at: now, updated_at: now });

    const claims: ErasureClaims = {
      receiptId: newId('rcp'),
      ispId,
      subscriberId,
      erasedAt: now.toISOString(),
      revokedLicences: licenceIds,
      deleted: { devices, downloads, ledgerEvents },
      scrubbed: { ledgerEvents: scrubbed },
      kept: [...KEPT_RECORDS],
    };
    const receipt = signDocument(deps.keystore.signing, ERASURE_RECEIPT_TYPE, claims);
    await appendEvents(
      trx,
      [
        {
          ispId,
          subscriberId,
          type: 'erased',
          data: { receiptId: claims.receiptId },
          idempotencyKey: `erased:${subscriberId}`,
          occurredAt: now,
        },
      ],
      now,
    );
    await trx('erasure_receipts').insert({
      id: claims.receiptId,
      isp_id: ispId,
      subscriber_id: subscriberId,
      receipt: JSON.stringify(receipt),
      erased_at: now,
    });
    deps.log.info(
      { isp: ispId, receiptId: claims.receiptId, devices, downloads, ledgerEvents, scrubbed },
      'subscriber erased',
    );
    return { receipt, claims, repeated: false };
  });
}
