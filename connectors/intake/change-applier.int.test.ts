import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCommands } from '../../mappings/provisioning-command.js';
import type { SubscriberChange } from '../../mappings/subscriber-store.js';
import { newId } from '../../platform/ids.js';
import { silentLogger } from '../../platform/logger.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { syncIsps } from '../isp-registry.js';
import {
  type ApplyOptions,
  applyChangeList,
  ChangeApplier,
  ChangeListWriter,
} from './change-applier.js';

const demo = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');
const ctx = useTestContext({ isps: { 'isp-a': demo } });
beforeAll(async () => {
  await syncIsps(ctx().connectorDb, ctx().config.isps, silentLogger());
});
const dir = mkdtempSync(join(tmpdir(), 'relais-change-list-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OPTIONS: ApplyOptions = { batchSize: 2, transactionSize: 4, concurrency: 2 };

/** A first subscribe of `ref`. */
function subscribe(ref: string, modules = ['antivirus', 'firewall']): SubscriberChange {
  const subscriberId = newId('sub');
  const effectiveAt = '2026-12-01T23:00:00.000Z';
  return {
    customerRef: ref,
    subscriberId,
    isNew: true,
    status: 'active',
    offer: 'SECU_FAMILLE',
    modules,
    effectiveAt: new Date(effectiveAt),
    version: 1,
    commands: [
      {
        key: `${subscriberId}:v1`,
        kind: 'subscribe',
        subscriberId,
        modules,
        status: 'active',
        effectiveAt,
        version: 1,
      },
    ],
  };
}

/** A first subscribe and a suspension a day later, in one change of two commands. */
function subscribeThenSuspend(ref: string): SubscriberChange {
  const first = subscribe(ref);
  const { subscriberId } = first;
  return {
    ...first,
    status: 'suspended',
    version: 2,
    effectiveAt: new Date('2026-12-02T23:00:00.000Z'),
    commands: [
      ...first.commands,
      {
        key: `${subscriberId}:v2`,
        kind: 'suspend',
        subscriberId,
        modules: first.modules,
        status: 'suspended',
        effectiveAt: '2026-12-02T23:00:00.000Z',
        version: 2,
      },
    ],
  };
}

async function rowsOf(feedId: string) {
  const subscribers = await ctx()
    .connectorDb('subscribers')
    .where({ isp_id: 'isp-a', last_feed_id: feedId })
    .orderBy('customer_ref')
    .select('customer_ref', 'subscriber_id', 'status', 'modules', 'version');
  const batches = await ctx()
    .connectorDb('provisioning_batches')
    .where({ feed_id: feedId })
    .orderBy('id');
  return { subscribers, batches };
}

describe('a change list', () => {
  it('applies every change and its commands, refs with quotes and backslashes included', async () => {
    const feedId = newId('feed');
    const refs = ["O'Brien", 'back\\slash', 'line\nbreak', '"quoted"', 'plain-1', 'plain-2', 'x'];
    const changes = [...refs.map((ref) => subscribe(ref)), subscribeThenSuspend('y')];
    // Module names are config, but nothing stops one from holding a quote or a backslash.
    changes[6] = subscribe('x', ["it's", 'back\\slash', 'say "hi"', 'nul\u0000', 'eof\u001a']);

    const path = join(dir, 'list.ndjson');
    const writer = new ChangeListWriter(path, 'isp-a', feedId, OPTIONS);
    for (const change of changes) await writer.write(change);
    await writer.close();
    await applyChangeList(ctx().connectorDb, path, OPTIONS.concurrency);

    const { subscribers, batches } = await rowsOf(feedId);
    expect(subscribers.map((s) => s.customer_ref).sort()).toEqual([...refs, 'y'].sort());
    for (const change of changes) {
      const row = subscribers.find((s) => s.customer_ref === change.customerRef);
      expect(row).toMatchObject({
        subscriber_id: change.subscriberId,
        status: change.status,
        modules: change.modules.join(','),
        version: change.version,
      });
    }
    // Two changes a batch: four batches, in two transactions of four changes.
    expect(batches).toHaveLength(4);
    const commands = batches.flatMap((b) => decodeCommands(b.commands));
    expect(commands).toEqual(changes.flatMap((c) => c.commands));
    expect(batches.map((b) => Number(b.command_count))).toEqual([2, 2, 2, 3]);
    expect(batches.every((b) => b.state === 'pending')).toBe(true);
  });

  it('applies as it goes with the applier, the last transaction smaller', async () => {
    const feedId = newId('feed');
    const applier = new ChangeApplier(ctx().connectorDb, 'isp-a', feedId, OPTIONS);
    for (let i = 0; i < 9; i++) await applier.write(subscribe(`direct-${i}`));
    await applier.close();

    const { subscribers, batches } = await rowsOf(feedId);
    expect(subscribers).toHaveLength(9);
    expect(batches.map((b) => Number(b.command_count))).toEqual([2, 2, 2, 2, 1]);
  });

  it('stops at the first failed transaction, which leaves nothing of itself behind', async () => {
    const feedId = newId('feed');
    const applier = new ChangeApplier(ctx().connectorDb, 'isp-a', feedId, {
      ...OPTIONS,
      concurrency: 1,
    });
    const tooLong = subscribe(`bad-2-${'x'.repeat(80)}`);
    const changes = [subscribe('ok-1'), subscribe('ok-2'), subscribe('ok-3'), subscribe('ok-4')];
    changes.push(subscribe('bad-1'), tooLong, subscribe('bad-3'), subscribe('bad-4'));

    const run = async () => {
      for (const change of changes) await applier.write(change);
      await applier.close();
    };

    await expect(run()).rejects.toThrow(/customer_ref/);
    const { subscribers, batches } = await rowsOf(feedId);
    expect(subscribers.map((s) => s.customer_ref).sort()).toEqual(['ok-1', 'ok-2', 'ok-3', 'ok-4']);
    expect(batches).toHaveLength(2);
  });
});
