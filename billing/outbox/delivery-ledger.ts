/**
 * The delivery ledger (`billing_deliveries`, connector database): one row per ISP, period and
 * file name, holding the checksum and size of the file as delivered and how far its delivery
 * got. deliver.ts reads it before touching the outbox and moves it forward after each step, so
 * a crash at any point leaves a row that says what the retry must check.
 */
import type { Db } from '../../platform/db.js';
import { InternalError } from '../../platform/errors.js';

export type DeliveryStatus = 'uploading' | 'uploaded' | 'delivered';

export interface DeliveryRow {
  id: string;
  ispId: string;
  period: string;
  fileName: string;
  sha256: string;
  sizeBytes: number;
  status: DeliveryStatus;
  target: string;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
}

interface StoredRow {
  id: number | string;
  isp_id: string;
  period: string;
  file_name: string;
  sha256: string;
  size_bytes: number | string;
  status: DeliveryStatus;
  target: string;
  attempts: number;
  created_at: Date;
  updated_at: Date;
  delivered_at: Date | null;
}

const TABLE = 'billing_deliveries';

function fromStored(row: StoredRow): DeliveryRow {
  return {
    id: String(row.id),
    ispId: row.isp_id,
    period: row.period,
    fileName: row.file_name,
    sha256: row.sha256,
    sizeBytes: Number(row.size_bytes),
    status: row.status,
    target: row.target,
    attempts: row.attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deliveredAt: row.delivered_at,
  };
}

export async function findDelivery(
  db: Db,
  ispId: string,
  period: string,
  fileName: string,
): Promise<DeliveryRow | undefined> {
  const row: StoredRow | undefined = await db(TABLE)
    .where({ isp_id: ispId, period, file_name: fileName })
    .first();
  return row ? fromStored(row) : undefined;
}

export async function listDeliveries(
  db: Db,
  ispId: string,
  period: string,
): Promise<DeliveryRow[]> {
  const rows: StoredRow[] = await db(TABLE).where({ isp_id: ispId, period }).orderBy('file_name');
  return rows.map(fromStored);
}

export interface NewDelivery {
  ispId: string;
  period: string;
  fileName: string;
  sha256: string;
  sizeBytes: number;
  target: string;
}

/** Records the start of a first attempt: status `uploading`. */
export async function startDelivery(db: Db, file: NewDelivery, now: Date): Promise<DeliveryRow> {
  await db(TABLE).insert({
    isp_id: file.ispId,
    period: file.period,
    file_name: file.fileName,
    sha256: file.sha256,
    size_bytes: file.sizeBytes,
    status: 'uploading',
    target: file.target,
    attempts: 1,
    created_at: now,
    updated_at: now,
  });
  const row = await findDelivery(db, file.ispId, file.period, file.fileName);
  if (!row) throw new InternalError('INTERNAL', `billing delivery ${file.fileName} vanished`);
  return row;
}

/** Starts another attempt on an existing row (possibly with new content: see deliver.ts). */
export async function restartDelivery(
  db: Db,
  id: string,
  file: Pick<NewDelivery, 'sha256' | 'sizeBytes' | 'target'>,
  now: Date,
): Promise<void> {
  await db(TABLE)
    .where({ id })
    .update({
      sha256: file.sha256,
      size_bytes: file.sizeBytes,
      target: file.target,
      status: 'uploading',
      attempts: db.raw('attempts + 1'),
      updated_at: now,
    });
}

/** Moves a row to `uploaded` or `delivered`. */
export async function advanceDelivery(
  db: Db,
  id: string,
  status: Exclude<DeliveryStatus, 'uploading'>,
  now: Date,
): Promise<void> {
  const deliveredAt = status === 'delivered' ? { delivered_at: now } : {};
  await db(TABLE)
    .where({ id })
    .update({ status, updated_at: now, ...deliveredAt });
}
