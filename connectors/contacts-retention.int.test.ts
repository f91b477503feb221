/**
 * Sealed addresses are deleted whenever no e-mail will use them: at the final answer of a
 * batch (subscribes refused or answered without a key), when a batch fails for good, and by the
 * retention sweep (ISPs not in e-mail mode, old addresses). Real MariaDB, real vault.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  commandKey,
  encodeCommands,
  type ProvisioningCommand,
} from '../mappings/provisioning-command.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { purgeStaleContacts } from './contacts-retention.js';
import { syncIsps } from './isp-registry.js';
import { markBatchFailed } from './provisioning/batch-store.js';
import { type BatchOutcome, recordBatchResults } from './provisioning/record-results.js';
import { openVault, type Vault } from './vault.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const email = {
  mode: 'email',
  email: { from: 'Demo <cles@demo.example>', smtp: { host: '127.0.0.1', port: 2525 } },
};

const ctx = useTestContext({
  isps: {
    mail: { ...demo, delivery: email },
    files: { ...demo, delivery: { mode: 'return-file' } },
  },
});

let vault: Vault;

beforeAll(async () => {
  const { connectorDb, config } = ctx();
  vault = openVault(config.deployment.signing.keysDir);
  await syncIsps(connectorDb, config.isps, silentLogger());
});

interface Customer {
  subscriberId: string;
  licenceId: string;
}

let refs = 0;

/** A subscriber the intake wrote: its map row at `version` and its sealed address. */
async function customer(ispId: string, version = 1, createdAt = new Date()): Promise<Customer> {
  const db = ctx().connectorDb;
  const subscriberId = newId('sub');
  await db('subscribers').insert({
    isp_id: ispId,
    customer_ref: `C${String(++refs).padStart(7, '0')}`,
    subscriber_id: subscriberId,
    status: 'active',
    modules: 'antivirus',
    version,
    created_at: createdAt,
    updated_at: createdAt,
  });
  await db('contacts').insert({
    subscriber_id: subscriberId,
    isp_id: ispId,
    email: vault.seal('someone@example.org', `email:${subscriberId}`),
    language: 'fr',
    created_at: createdAt,
  });
  return { subscriberId, licenceId: newId('lic') };
}

function subscribe(c: Customer, version = 1): ProvisioningCommand {
  return {
    key: commandKey(c.subscriberId, version),
    kind: 'subscribe',
    subscriberId: c.subscriberId,
    version,
    modules: ['antivirus'],
    status: 'active',
    effectiveAt: '2026-12-01T08:00:00.000Z',
  };
}

async function queuedBatch(ispId: string, commands: ProvisioningCommand[]): Promise<number> {
  const now = new Date();
  const [id] = await ctx()
    .connectorDb('provisioning_batches')
    .insert({
      isp_id: ispId,
      feed_id: 'feed_test',
      command_count: commands.length,
      subscribes: commands.length,
      commands: encodeCommands(commands),
      state: 'queued',
      created_at: now,
    });
  return Number(id);
}

function keyFor(c: Customer, version = 1) {
  return {
    subscriberId: c.subscriberId,
    licenceId: c.licenceId,
    version,
    key: 'KEY',
    downloadUrl: `http://server/v1/downloads/${c.licenceId}`,
    downloadExpiresAt: '2027-01-01T00:00:00.000Z',
  };
}

function refusal(c: Customer, code: string) {
  return {
    commandKey: commandKey(c.subscriberId, 1),
    subscriberId: c.subscriberId,
    code,
    message: code,
  };
}

async function hasContact(c: Customer): Promise<boolean> {
  const row = await ctx().connectorDb('contacts').where({ subscriber_id: c.subscriberId }).first();
  return row !== undefined;
}

describe('addresses at the final answer of a batch', () => {
  it('deletes the address of refused and keyless subscribes, keeps the one a key waits for', async () => {
    const { connectorDb: db } = ctx();
    const keyed = await customer('mail');
    const erased = await customer('mail');
    const stale = await customer('mail');
    const reactivated = await customer('mail');
    const batchId = await queuedBatch(
      'mail',
      [keyed, erased, stale, reactivated].map((c) => subscribe(c)),
    );
    const outcome: BatchOutcome = {
      ispId: 'mail',
      batchId,
      channel: 'email',
      issued: [keyFor(keyed)],
      refused: [refusal(erased, 'SUBSCRIBER_ERASED'), refusal(stale, 'PROVISIONING_STALE_VERSION')],
      // `reactivated` was applied, answered without a key (its licence is already activated).
      applied: 2,
      isComplete: true,
    };
    await recordBatchResults(db, vault, outcome, new Date());
    expect(await hasContact(keyed)).toBe(true);
    expect(await hasContact(erased)).toBe(false);
    expect(await hasContact(stale)).toBe(false);
    expect(await hasContact(reactivated)).toBe(false);
  });

  it('keeps every address while the batch still waits for deferred commands', async () => {
    const refused = await customer('mail');
    const batchId = await queuedBatch('mail', [subscribe(refused)]);
    await recordBatchResults(
      ctx().connectorDb,
      vault,
      {
        ispId: 'mail',
        batchId,
        channel: 'email',
        issued: [],
        refused: [refusal(refused, 'SUBSCRIBER_ERASED')],
        applied: 0,
        isComplete: false,
        pendingReason: 'deferred',
      },
      new Date(),
    );
    expect(await hasContact(refused)).toBe(true);
  });

  it('keeps the address of a subscriber the intake changed since the batch', async () => {
    // Version 3 is stored: a later feed re-subscribed it and wrote the address its key needs.
    const resubscribed = await customer('mail', 3);
    const batchId = await queuedBatch('mail', [subscribe(resubscribed, 1)]);
    await recordBatchResults(
      ctx().connectorDb,
      vault,
      {
        ispId: 'mail',
        batchId,
        channel: 'email',
        issued: [],
        refused: [refusal(resubscribed, 'SUBSCRIBER_ERASED')],
        applied: 0,
        isComplete: true,
      },
      new Date(),
    );
    expect(await hasContact(resubscribed)).toBe(true);
  });

  it('keeps the address of a key waiting from an earlier batch', async () => {
    const { connectorDb: db } = ctx();
    const waiting = await customer('mail');
    const first = await queuedBatch('mail', [subscribe(waiting)]);
    await recordBatchResults(
      db,
      vault,
      {
        ispId: 'mail',
        batchId: first,
        channel: 'email',
        issued: [keyFor(waiting)],
        refused: [],
        applied: 1,
        isComplete: true,
      },
      new Date(),
    );
    // A replay of the subscribe in another batch, answered without a key.
    const second = await queuedBatch('mail', [subscribe(waiting)]);
    await recordBatchResults(
      db,
      vault,
      {
        ispId: 'mail',
        batchId: second,
        channel: 'email',
        issued: [],
        refused: [],
        applied: 1,
        isComplete: true,
      },
      new Date(),
    );
    expect(await hasContact(waiting)).toBe(true);
  });
});

describe('addresses of a batch that failed for good', () => {
  it('deletes the addresses of its subscribes, but not one a pending e-mail needs', async () => {
    const { connectorDb: db } = ctx();
    const lost = await customer('mail');
    const waiting = await customer('mail');
    const earlier = await queuedBatch('mail', [subscribe(waiting)]);
    await recordBatchResults(
      db,
      vault,
      {
        ispId: 'mail',
        batchId: earlier,
        channel: 'email',
        issued: [keyFor(waiting)],
        refused: [],
        applied: 1,
        isComplete: true,
      },
      new Date(),
    );
    const batchId = await queuedBatch('mail', [subscribe(lost), subscribe(waiting)]);
    await markBatchFailed(db, 'mail', batchId, 'PROVISIONING_INVALID: refused');
    expect(await db('provisioning_batches').where({ id: batchId }).first()).toMatchObject({
      state: 'failed',
    });
    expect(await hasContact(lost)).toBe(false);
    expect(await hasContact(waiting)).toBe(true);
  });
});

describe('purgeStaleContacts', () => {
  it('deletes addresses of ISPs not in e-mail mode and old ones no e-mail waits for', async () => {
    const { connectorDb: db, config } = ctx();
    const now = new Date();
    const old = new Date(now.getTime() - 31 * 86_400_000);
    const fresh = await customer('mail');
    const expired = await customer('mail', 1, old);
    const oldButWaiting = await customer('mail', 1, old);
    const batchId = await queuedBatch('mail', [subscribe(oldButWaiting)]);
    await recordBatchResults(
      db,
      vault,
      {
        ispId: 'mail',
        batchId,
        channel: 'email',
        issued: [keyFor(oldButWaiting)],
        refused: [],
        applied: 1,
        isComplete: true,
      },
      now,
    );
    // Written while `files` still delivered by e-mail; it has since switched to return files.
    const switched = await customer('files');
    // An ISP whose config file is gone.
    const gone = newId('sub');
    await db('contacts').insert({
      subscriber_id: gone,
      isp_id: 'removed',
      email: null,
      created_at: now,
    });

    const purged = await purgeStaleContacts(db, config, now);
    expect(purged).toEqual({ notEmailIsp: 2, expired: 1 });
    expect(await hasContact(fresh)).toBe(true);
    expect(await hasContact(oldButWaiting)).toBe(true);
    expect(await hasContact(expired)).toBe(false);
    expect(await hasContact(switched)).toBe(false);
    expect(await db('contacts').where({ subscriber_id: gone })).toEqual([]);
    // Running it again changes nothing.
    expect(await purgeStaleContacts(db, config, now)).toEqual({ notEmailIsp: 0, expired: 0 });
  });
});
