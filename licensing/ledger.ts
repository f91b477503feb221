/**
 * The usage ledger: one append-only row in `subscription_events` per state change, with the
 * subscriber id, the ISP and the time. Billing rates these rows; nothing updates or deletes
 * them except an erasure, which keeps what billing of closed periods needs. An event may carry
 * an idempotency key (unique), so a replayed command or a second renewal run cannot record it
 * twice. `data` holds ids, module codes and dates only, never anything personal.
 */
import type { Knex } from 'knex';

export const EVENT_TYPES = [
  'provisioned',
  'delivered',
  'downloaded',
  'activated',
  'device-added',
  'device-removed',
  'modules-changed',
  'suspended',
  'resumed',
  'cancelled',
  'renewed',
  'lapsed',
  'key-reissued',
  'link-reissued',
  'erased',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface LedgerEvent {
  ispId: string;
  subscriberId: string;
  licenceId?: string | null;
  type: EventType;
  data?: Record<string, unknown> | null;
  /** Unique across the ledger; a second event with the same key is dropped. */
  idempotencyKey?: string | null;
  occurredAt: Date;
}

const CHUNK = 1000;

/**
 * Appends events inside the caller's transaction. Events whose idempotency key is already in
 * the ledger are skipped (INSERT IGNORE on the unique key), which is what makes repeats safe.
 */
export async function appendEvents(
  trx: Knex | Knex.Transaction,
  events: readonly LedgerEvent[],
  recordedAt = new Date(),
): Promise<void> {
  for (let i = 0; i < events.length; i += CHUNK) {
    const rows = events.slice(i, i + CHUNK).map((e) => ({
      isp_id: e.ispId,
      subscriber_id: e.subscriberId,
      licence_id: e.licenceId ?? null,
      type: e.type,
      data: e.data ? JSON.stringify(e.data) : null,
      idempotency_key: e.idempotencyKey ?? null,
      occurred_at: e.occurredAt,
      recorded_at: recordedAt,
    }));
    await trx('subscription_events').insert(rows).onConflict('idempotency_key').ignore();
  }
}
