import { describe, expect, it } from 'vitest';
import { useTestContext } from '../../test/harness/context.js';
import { openVault } from '../vault.js';
import { loadBatch } from './batch-store.js';
import { type BatchOutcome, deliverySecretContext, recordBatchResults } from './record-results.js';

const ctx = useTestContext();

async function queuedBatch(): Promise<number> {
  const now = new Date();
  const [id] = await ctx().connectorDb('provisioning_batches').insert({
    isp_id: 'demo',
    feed_id: 'feed_test',
    command_count: 3,
    commands: '{"v":1,"m":[],"c":[]}',
    state: 'queued',
    created_at: now,
  });
  return Number(id);
}

const issued = (n: number, key: string, version = 1) => ({
  subscriberId: `sub_${String(n).padStart(26, '0')}`,
  licenceId: `lic_${String(n).padStart(26, '0')}`,
  version,
  key,
  downloadUrl: `http://server/v1/downloads/t${n}`,
  downloadExpiresAt: '2027-01-01T00:00:00.000Z',
});

describe('recordBatchResults', () => {
  it('records each key and rejection once over attempts, then marks the batch sent', async () => {
    const { connectorDb: db, config } = ctx();
    const vault = openVault(config.deployment.signing.keysDir);
    const batchId = await queuedBatch();
    const refused = {
      commandKey: 'sub_00000000000000000000000009:v1',
      subscriberId: 'sub_00000000000000000000000009',
      code: 'SUBSCRIBER_NOT_FOUND',
      message: 'no subscriber',
    };
    const base: BatchOutcome = {
      ispId: 'demo',
      batchId,
      channel: 'email',
      issued: [issued(1, 'KEY-ONE')],
      refused: [refused],
      applied: 1,
      isComplete: false,
      pendingReason: '1 of 3 commands deferred (PROVISIONING_OUT_OF_ORDER)',
    };
    const first = await recordBatchResults(db, vault, base, new Date());
    expect(first).toMatchObject({ wasFinal: false, deliveries: 1, state: 'queued' });
    expect(await loadBatch(db, batchId)).toMatchObject({ state: 'queued', attempts: 1 });

    // The retry: the same answers again, plus a licence that got two keys in this batch.
    const second = await recordBatchResults(
      db,
      vault,
      {
        ...base,
        issued: [issued(1, 'KEY-ONE'), issued(2, 'KEY-OLD', 1), issued(2, 'KEY-NEW', 3)],
        applied: 3,
        isComplete: true,
      },
      new Date(),
    );
    expect(second).toMatchObject({ wasFinal: false, deliveries: 1, state: 'sent' });
    const rows = await db('deliveries').where({ batch_id: batchId }).orderBy('id');
    expect(rows.map((r) => r.licence_id)).toEqual([
      issued(1, '').licenceId,
      issued(2, '').licenceId,
    ]);
    const secret = JSON.parse(
      vault.open(rows[1].secret, deliverySecretContext(rows[1].licence_id)),
    );
    expect(secret.key).toBe('KEY-NEW');
    expect(await db('provisioning_rejections').where({ batch_id: batchId })).toHaveLength(1);
    const batch = await db('provisioning_batches').where({ id: batchId }).first();
    expect(batch).toMatchObject({ state: 'sent', applied: 3, rejected: 1, attempts: 2 });
    expect(batch.last_error).toBeNull();

    const third = await recordBatchResults(db, vault, base, new Date());
    expect(third.wasFinal).toBe(true);
    expect(await db('deliveries').where({ batch_id: batchId })).toHaveLength(2);
  });

  it('keeps the key of the highest version when the answers come out of order', async () => {
    const { connectorDb: db, config } = ctx();
    const vault = openVault(config.deployment.signing.keysDir);
    const batchId = await queuedBatch();
    // The server applied v1, then v3 (version order); the request listed v3 first.
    await recordBatchResults(
      db,
      vault,
      {
        ispId: 'demo',
        batchId,
        channel: 'email',
        issued: [issued(5, 'KEY-V3', 3), issued(5, 'KEY-V1', 1)],
        refused: [],
        applied: 2,
        isComplete: true,
      },
      new Date(),
    );
    const rows = await db('deliveries').where({ batch_id: batchId });
    expect(rows).toHaveLength(1);
    expect(
      JSON.parse(vault.open(rows[0].secret, deliverySecretContext(rows[0].licence_id))).key,
    ).toBe('KEY-V3');
  });

  it('binds each sealed secret to its licence', async () => {
    const { connectorDb: db, config } = ctx();
    const vault = openVault(config.deployment.signing.keysDir);
    const batchId = await queuedBatch();
    await recordBatchResults(
      db,
      vault,
      {
        ispId: 'demo',
        batchId,
        channel: 'return-file',
        issued: [issued(3, 'KEY-THREE')],
        refused: [],
        applied: 1,
        isComplete: true,
      },
      new Date(),
    );
    const row = await db('deliveries').where({ batch_id: batchId }).first();
    expect(() => vault.open(row.secret, deliverySecretContext(issued(4, '').licenceId))).toThrow(
      /does not open/,
    );
  });
});
