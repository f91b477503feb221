/**
 * The outbox flush against real MariaDB and Redis: each pending batch becomes one job, a
 * second flush adds nothing, and a connector database recreated from scratch (its batch ids
 * start at 1 again) still gets its batches queued although BullMQ keeps the old jobs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCommands } from '../mappings/provisioning-command.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { useTestContext } from '../test/harness/context.js';
import { flushOutbox } from './outbox.js';
import { openQueues } from './queues.js';

const ctx = useTestContext();
const queues = () => openQueues(ctx().redis, ctx().prefix);
let opened: ReturnType<typeof queues> | undefined;
afterAll(async () => {
  await opened?.close();
});

async function pendingBatch(createdAt: Date): Promise<number> {
  const subscriberId = newId('sub');
  const commands = encodeCommands([
    {
      key: `${subscriberId}:v1`,
      kind: 'subscribe',
      subscriberId,
      modules: ['antivirus'],
      status: 'active',
      effectiveAt: createdAt.toISOString(),
      version: 1,
    },
  ]);
  const [id] = await ctx().connectorDb('provisioning_batches').insert({
    isp_id: 'demo-fai',
    feed_id: 'feed_outbox_test',
    command_count: 1,
    subscribes: 1,
    commands,
    state: 'pending',
    created_at: createdAt,
  });
  return Number(id);
}

describe('the outbox flush', () => {
  it('queues each batch once, even for a database recreated with the same batch ids', async () => {
    opened = queues();
    const db = ctx().connectorDb;
    const first = await pendingBatch(new Date('2026-12-01T10:00:00.000Z'));
    expect(await flushOutbox(db, opened, silentLogger())).toBe(1);
    expect(await flushOutbox(db, opened, silentLogger())).toBe(0);
    expect(await opened.provisioning.getJobCounts('waiting')).toEqual({ waiting: 1 });

    // The database is recreated: the table is emptied and its ids start again, Redis is not.
    await db('provisioning_batches').truncate();
    const again = await pendingBatch(new Date('2026-12-02T10:00:00.000Z'));
    expect(again).toBe(first);
    expect(await flushOutbox(db, opened, silentLogger())).toBe(1);

    const jobs = await opened.provisioning.getJobs(['waiting']);
    expect(jobs).toHaveLength(2);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(2);
    expect(jobs.every((j) => j.data.batchId === first)).toBe(true);
  });
});
