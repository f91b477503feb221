/**
 * Moves committed provisioning batches from the database outbox to the BullMQ queue. Safe to
 * run anywhere and any number of times: job ids come from batch ids and creation instants (a
 * second add is a no-op), a batch is marked queued only after its job exists, and a crash in
 * between only means the next flush adds the same job id again.
 */

import { crashPoint } from '../platform/crash-points.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { batchJobId, JOB_NAMES, type Queues } from './queues.js';

const FLUSH_CHUNK = 200;

export async function flushOutbox(
  db: Db,
  queues: Pick<Queues, 'provisioning'>,
  log: Logger,
): Promise<number> {
  let total = 0;
  for (;;) {
    const pending: { id: string | number; isp_id: string; created_at: Date }[] = await db(
      'provisioning_batches',
    )
      .select('id', 'isp_id', 'created_at')
      .where({ state: 'pending' })
      .orderBy('id')
      .limit(FLUSH_CHUNK);
    if (pending.length === 0) break;
    await queues.provisioning.addBulk(
      pending.map((b) => ({
        name: JOB_NAMES.provisionBatch,
        data: { ispId: b.isp_id, batchId: Number(b.id) },
        opts: { jobId: batchJobId(Number(b.id), b.created_at) },
      })),
    );
    crashPoint('outbox-added');
    const ids = pending.map((b) => b.id);
    await db('provisioning_batches')
      .whereIn('id', ids)
      .where({ state: 'pending' })
      .update({ state: 'queued', queued_at: new Date() });
    total += pending.length;
  }
  if (total > 0) log.info({ batches: total }, 'provisioning batches queued');
  return total;
}
