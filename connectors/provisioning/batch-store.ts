/**
 * The connector's side of a provisioning batch once it leaves the outbox: reading it back for
 * the worker, and noting each attempt, a permanent failure, or keys still waiting for delivery.
 * Batch states: pending (written by the intake) → queued (its job exists) → sent | failed.
 */
import { decodeCommands, type ProvisioningCommand } from '../../mappings/provisioning-command.js';
import type { Db } from '../../platform/db.js';
import { releaseBatchContacts } from '../contacts-retention.js';

export interface StoredBatch {
  id: number;
  ispId: string;
  state: 'pending' | 'queued' | 'sent' | 'failed';
  /** The encoded commands (mappings/provisioning-command.ts). */
  commands: string;
  attempts: number;
  /** When the intake wrote the batch to the outbox. */
  createdAt: Date;
}

const LAST_ERROR_CHARS = 255;

export async function loadBatch(db: Db, batchId: number): Promise<StoredBatch | undefined> {
  const row = await db('provisioning_batches')
    .select('id', 'isp_id', 'state', 'commands', 'attempts', 'created_at')
    .where({ id: batchId })
    .first();
  if (!row) return undefined;
  return {
    id: Number(row.id),
    ispId: row.isp_id,
    state: row.state,
    commands: row.commands,
    attempts: Number(row.attempts),
    createdAt: new Date(row.created_at),
  };
}

/** One more attempt that did not finish the batch, and why (a code and message, no data). */
export async function noteAttempt(db: Db, batchId: number, error: string): Promise<void> {
  await db('provisioning_batches')
    .where({ id: batchId })
    .whereNot({ state: 'sent' })
    .update({ attempts: db.raw('attempts + 1'), last_error: error.slice(0, LAST_ERROR_CHARS) });
}

/**
 * The server refused the whole batch for good: it is not sent again, and the addresses of its
 * subscribes are deleted with it: nothing says it will ever be sent, and an address is not kept
 * on a chance (a person who retries it finds those keys failed with "no address").
 */
export async function markBatchFailed(
  db: Db,
  ispId: string,
  batchId: number,
  error: string,
): Promise<void> {
  await db.transaction(async (trx) => {
    const failed = await trx('provisioning_batches')
      .where({ id: batchId, isp_id: ispId })
      .whereNot({ state: 'sent' })
      .update({
        state: 'failed',
        attempts: trx.raw('attempts + 1'),
        last_error: error.slice(0, LAST_ERROR_CHARS),
      });
    if (failed === 0) return;
    const row = await trx('provisioning_batches').select('commands').where({ id: batchId }).first();
    let commands: ProvisioningCommand[];
    try {
      commands = decodeCommands(row.commands);
    } catch {
      return; // an unreadable batch is still marked failed; the retention sweep takes its addresses
    }
    await releaseBatchContacts(trx, ispId, commands);
  });
}

/**
 * The licences this batch already holds a delivery row for. Per batch, not per licence: a
 * cancelled customer who subscribes again later gets a new key in a later batch, and that key
 * needs a row of its own.
 */
export async function recordedLicences(db: Db, batchId: number): Promise<Set<string>> {
  const rows: { licence_id: string }[] = await db('deliveries')
    .select('licence_id')
    .where({ batch_id: batchId });
  return new Set(rows.map((row) => row.licence_id));
}

export async function hasPendingDeliveries(db: Db, batchId: number): Promise<boolean> {
  const row = await db('deliveries')
    .select('id')
    .where({ batch_id: batchId, state: 'pending' })
    .first();
  return row !== undefined;
}

/** Batches of an ISP, in any state, whose keys still wait for delivery (for the sweep). */
export async function batchesWithPendingDeliveries(db: Db, ispId: string): Promise<number[]> {
  const rows: { batch_id: string | number }[] = await db('deliveries')
    .distinct('batch_id')
    .where({ isp_id: ispId, state: 'pending' })
    .whereNotNull('batch_id');
  return rows.map((r) => Number(r.batch_id));
}
