/**
 * The statements of a provisioning batch, built as text with every value escaped by
 * platform/sql-literal.ts rather than through knex's builder: for a 1000-row batch the
 * builder's compile step cost more than MariaDB's own work on the rows.
 */

import { type SqlValue, sqlLiteral } from '../platform/sql-literal.js';
import { eventValues, type LedgerEvent } from './ledger.js';
import type { LicenceRow } from './licences.js';

export interface SubscriptionRow {
  subscriber_id: string;
  isp_id: string;
  status: 'active' | 'suspended' | 'cancelled';
  modules: string;
  version: number;
  erased_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** A value as a MySQL literal (default SQL mode: backslash escapes on; dates as UTC). */
export const literal = sqlLiteral;
export type { SqlValue };

function valuesList(rows: readonly SqlValue[][]): string {
  let text = '';
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as SqlValue[];
    text += r === 0 ? '(' : ',(';
    for (let c = 0; c < row.length; c++) {
      if (c > 0) text += ',';
      text += literal(row[c] as SqlValue);
    }
    text += ')';
  }
  return text;
}

export function inList(values: readonly string[]): string {
  return values.map(literal).join(',');
}

export const SUBSCRIPTION_COLUMNS = [
  'subscriber_id',
  'isp_id',
  'status',
  'modules',
  'version',
  'erased_at',
  'created_at',
  'updated_at',
];
export const subscriptionValues = (r: SubscriptionRow): SqlValue[] => [
  r.subscriber_id,
  r.isp_id,
  r.status,
  r.modules,
  r.version,
  r.erased_at,
  r.created_at,
  r.updated_at,
];

export const LICENCE_COLUMNS = [
  'id',
  'subscriber_id',
  'isp_id',
  'key_hash',
  'status',
  'valid_until',
  'activated_at',
  'period',
  'device_limit',
  'link_generation',
  'revoked_at',
  'created_at',
  'updated_at',
];
export const licenceValues = (r: LicenceRow): SqlValue[] => [
  r.id,
  r.subscriber_id,
  r.isp_id,
  r.key_hash,
  r.status,
  r.valid_until,
  r.activated_at,
  r.period,
  r.device_limit,
  r.link_generation,
  r.revoked_at,
  r.created_at,
  r.updated_at,
];
/** What provisioning may change on an existing licence (never activated_at: activation's). */
export const LICENCE_MERGE = [
  'key_hash',
  'status',
  'valid_until',
  'period',
  'device_limit',
  'link_generation',
  'updated_at',
];

export function insertSql(
  table: string,
  columns: readonly string[],
  rows: readonly SqlValue[][],
): string {
  return `INSERT INTO \`${table}\` (${columns.join(',')}) VALUES ${valuesList(rows)}`;
}

/** For rows this transaction holds locked: an upsert is one statement for any number. */
export function upsertSql(
  table: string,
  columns: readonly string[],
  rows: readonly SqlValue[][],
  merged: readonly string[],
): string {
  const updates = merged.map((c) => `${c}=VALUES(${c})`).join(',');
  return `${insertSql(table, columns, rows)} ON DUPLICATE KEY UPDATE ${updates}`;
}

/** A ledger event of a provisioning command, with the command's replay record if it has one. */
export interface ProvisioningEvent extends LedgerEvent {
  /** SHA-256 of the command body: a resend with another body is a conflict. */
  commandHash?: Buffer;
  /** The answer sent, without the activation key (JSON). */
  commandReply?: string;
}

/** The ledger rows, as `appendEvents` writes them: a known idempotency key is skipped. */
export function eventsSql(events: readonly ProvisioningEvent[], recordedAt: Date): string {
  const rows = events.map((e): SqlValue[] => [
    ...eventValues(e, recordedAt),
    e.commandHash ?? null,
    e.commandReply ?? null,
  ]);
  return `INSERT IGNORE INTO subscription_events (isp_id,subscriber_id,licence_id,type,data,idempotency_key,occurred_at,recorded_at,command_hash,command_reply) VALUES ${valuesList(rows)}`;
}
