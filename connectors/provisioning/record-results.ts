/**
 * Records what the subscription server answered for one batch, in one connector transaction:
 * a delivery row per key to hand over (key and link sealed with the vault), a rejection row per
 * refused command, and the batch's final state when nothing is left to send. The batch row is
 * locked first and every insert skips what an earlier attempt already wrote, so a repeated job,
 * a retry after a deferral or two workers racing on one batch record each thing once.
 */
import type { Db } from '../../platform/db.js';
import { InternalError } from '../../platform/errors.js';
import type { Vault } from '../vault.js';
import { recordedLicences } from './batch-store.js';

/** How an ISP's keys reach its customers; `none`: they do not go through the connector. */
export type DeliveryChannel = 'email' | 'return-file' | 'none';

/** A key the server issued (first answer of a subscribe, or a re-issue). */
export interface IssuedKey {
  subscriberId: string;
  licenceId: string;
  key: string;
  downloadUrl: string;
  /** ISO 8601 UTC. */
  downloadExpiresAt: string;
}

/** A command the server refused for good. */
export interface RefusedCommand {
  commandKey: string;
  subscriberId: string;
  code: string;
  message: string;
}

export interface BatchOutcome {
  ispId: string;
  batchId: number;
  channel: DeliveryChannel;
  issued: IssuedKey[];
  refused: RefusedCommand[];
  /** Commands applied now or earlier (applied + replayed). */
  applied: number;
  /** Whether every command has a final answer; if not, the batch stays unsent. */
  isComplete: boolean;
  /** Why the batch is not complete (a code and counts), kept in `last_error`. */
  pendingReason?: string;
}

export interface RecordedBatch {
  /** The batch was already sent when the lock was taken: nothing was written. */
  wasFinal: boolean;
  deliveries: number;
  rejections: number;
  state: 'sent' | 'queued';
}

/** The context a delivery secret is sealed under: it opens for this licence and no other. */
export function deliverySecretContext(licenceId: string): string {
  return `delivery:${licenceId}`;
}

const ROWS_PER_INSERT = 500;
const MESSAGE_CHARS = 255;

export async function recordBatchResults(
  db: Db,
  vault: Vault,
  outcome: BatchOutcome,
  now: Date,
): Promise<RecordedBatch> {
  return db.transaction(async (trx) => {
    const batch = await trx('provisioning_batches')
      .select('state')
      .where({ id: outcome.batchId })
      .forUpdate()
      .first();
    if (!batch) {
      throw new InternalError('INTERNAL', `no provisioning batch ${outcome.batchId}`);
    }
    if (batch.state === 'sent') {
      return { wasFinal: true, deliveries: 0, rejections: 0, state: 'sent' as const };
    }

    const known = await recordedLicences(trx, outcome.batchId);
    // One licence can get two keys in one batch (a subscribe, a cancel, a subscribe again):
    // only the last one works, so only the last one is kept.
    const latest = new Map(outcome.issued.map((issued) => [issued.licenceId, issued]));
    const isHandedOver = outcome.channel !== 'none';
    const deliveryRows = [...latest.values()]
      .filter((issued) => !known.has(issued.licenceId))
      .map((issued) => ({
        isp_id: outcome.ispId,
        subscriber_id: issued.subscriberId,
        licence_id: issued.licenceId,
        batch_id: outcome.batchId,
        channel: outcome.channel,
        // An ISP that hands no key over through Relais gets no secret kept at all.
        secret: isHandedOver
          ? vault.seal(
              JSON.stringify({ key: issued.key, downloadUrl: issued.downloadUrl }),
              deliverySecretContext(issued.licenceId),
            )
          : null,
        link_expires_at: new Date(issued.downloadExpiresAt),
        state: isHandedOver ? 'pending' : 'skipped',
        attempts: 0,
        created_at: now,
      }));
    for (let i = 0; i < deliveryRows.length; i += ROWS_PER_INSERT) {
      await trx('deliveries').insert(deliveryRows.slice(i, i + ROWS_PER_INSERT));
    }

    const rejectionRows = outcome.refused.map((refused) => ({
      isp_id: outcome.ispId,
      batch_id: outcome.batchId,
      command_key: refused.commandKey,
      subscriber_id: refused.subscriberId,
      code: refused.code.slice(0, 64),
      message: refused.message.slice(0, MESSAGE_CHARS),
      created_at: now,
    }));
    for (let i = 0; i < rejectionRows.length; i += ROWS_PER_INSERT) {
      // INSERT IGNORE on the unique command key: a rejection seen again adds nothing.
      await trx('provisioning_rejections')
        .insert(rejectionRows.slice(i, i + ROWS_PER_INSERT))
        .onConflict()
        .ignore();
    }

    const update: Record<string, unknown> = { attempts: trx.raw('attempts + 1') };
    if (outcome.isComplete) {
      Object.assign(update, {
        state: 'sent',
        sent_at: now,
        applied: outcome.applied,
        rejected: outcome.refused.length,
        last_error: null,
      });
    } else {
      update.state = 'queued'; // a failed batch a person retried is back in the queue
      update.last_error = (outcome.pendingReason ?? 'not every command finished').slice(
        0,
        MESSAGE_CHARS,
      );
    }
    await trx('provisioning_batches').where({ id: outcome.batchId }).update(update);
    return {
      wasFinal: false,
      deliveries: deliveryRows.length,
      rejections: rejectionRows.length,
      state: outcome.isComplete ? ('sent' as const) : ('queued' as const),
    };
  });
}
