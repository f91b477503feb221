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

const EVENT_COLUMNS =
  'isp_id, subscriber_id, licence_id, type, data, idempotency_key, occurred_at, recorded_at';

/** One event's values, in the order of {@link EVENT_COLUMNS}. */
export function eventValues(e: LedgerEvent, recordedAt: Date): (string | Date | null)[] {
  return [
    e.ispId,
    e.subscriberId,
    e.licenceId ?? null,
    e.type,
    e.data ? JSON.stringify(e.data) : null,
    e.idempotencyKey ?? null,
    e.occurredAt,
    recordedAt,
  ];
}

/**
 * The INSERT of `events` as text with placeholders: cheaper than knex's builder, and a part a
 * caller can send in one multi-statement query with its other writes. INSERT IGNORE skips an
 * event whose idempotency key is already in the ledger.
 */
export function eventsStatement(
  events: readonly LedgerEvent[],
  recordedAt: Date,
): { sql: string; values: unknown[] } {
  const values = events.flatMap((e) => eventValues(e, recordedAt));
  const rows = events.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
  return {
    sql: `INSERT IGNORE INTO subscription_events (${EVENT_COLUMNS}) VALUES ${rows}`,
    values,
  };
}

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
    const { sql, values } = eventsStatement(events.slice(i, i + CHUNK), recordedAt);
    await trx.raw(sql, values as Knex.RawBinding[]);
  }
}
