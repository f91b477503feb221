/**
 * `relais demo` as the README runs it: the three example ISPs and their sample exports, through
 * inboxes, polls, the worker and the ledger, then provisioning, key delivery and an activation
 * by the reference client, on this file's own databases and Redis prefix.
 * Run twice, the second run must find only duplicates and change nothing.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../platform/package-root.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';

const SHIPPED = ['alpha-telecom', 'bretagne-net', 'demo-fai'];
const ctx = useTestContext({
  isps: Object.fromEntries(
    SHIPPED.map((id) => [id, readFileSync(join(packageRoot(), `config/isps/${id}.yaml`), 'utf8')]),
  ),
});

const demo = () =>
  runCli(['demo', '--config', join(ctx().dir, 'relais.yaml')], { timeoutMs: 90_000 });

async function ledger() {
  return ctx()
    .connectorDb('feeds')
    .orderBy('received_at')
    .select('isp_id', 'name', 'status', 'records', 'applied', 'rejected', 'duplicate_of');
}

describe('relais demo', () => {
  it('plays every sample export through its ISP and reports each feed', async () => {
    const run = await demo();

    expect(run.code, run.stderr).toBe(0);
    const feeds = await ledger();
    expect(feeds.map((f) => `${f.isp_id} ${f.name} ${f.status}`)).toEqual([
      'alpha-telecom clients-20261201.xml applied',
      'bretagne-net MVT20261201.txt applied',
      'demo-fai abonnes_20261201.csv applied',
      'bretagne-net MVT20261202.txt applied',
      'demo-fai abonnes_20261202.csv applied',
    ]);
    for (const feed of feeds) {
      expect(run.stdout).toContain(
        `${feed.records} records, ${feed.applied} applied, ${feed.rejected} rejected`,
      );
    }
    const withRejects = feeds.find((f) => f.rejected > 0);
    expect(withRejects).toMatchObject({ isp_id: 'demo-fai', name: 'abonnes_20261202.csv' });
    expect(run.stdout).toMatch(/line \d+ status: unknown status "EN ATTENTE"/);
    const rejectsDir = join(ctx().dir, 'var/isps/demo-fai/outbox/rejects');
    expect(existsSync(rejectsDir) && readdirSync(rejectsDir).length).toBe(1);
    // Every batch reached the server, every key was handed over, one was activated.
    const batches = await ctx().connectorDb('provisioning_batches').select('state', 'applied');
    expect(batches.length).toBeGreaterThan(0);
    expect(batches.every((b) => b.state === 'sent')).toBe(true);
    const licences = await ctx().licensingDb('licences').count({ n: '*' });
    expect(Number(licences[0]?.n)).toBeGreaterThan(0);
    const deliveries = await ctx().connectorDb('deliveries').select('state', 'secret');
    expect(deliveries.length).toBe(Number(licences[0]?.n));
    expect(deliveries.every((d) => d.state === 'delivered' && d.secret === null)).toBe(true);
    const keysDir = join(ctx().dir, 'var/isps/demo-fai/outbox/keys');
    expect(readdirSync(keysDir).filter((n) => n.endsWith('.csv')).length).toBeGreaterThan(0);
    const activated = await ctx().licensingDb('licences').whereNotNull('activated_at');
    expect(activated).toHaveLength(1);
    expect(run.stdout).toMatch(/download link lists: antivirus/);
    expect(run.stdout).toMatch(/stopped cleanly/);
  }, 120_000);

  it('changes nothing when run again: every file is a duplicate of its first feed', async () => {
    const batchesBefore = await ctx().connectorDb('provisioning_batches').count({ n: '*' });

    const run = await demo();

    expect(run.code, run.stderr).toBe(0);
    const feeds = await ledger();
    const again = feeds.slice(5);
    expect(again).toHaveLength(5);
    expect(again.every((f) => f.status === 'duplicate' && f.duplicate_of)).toBe(true);
    expect(run.stdout.match(/duplicate of feed_/g)).toHaveLength(5);
    const batchesAfter = await ctx().connectorDb('provisioning_batches').count({ n: '*' });
    expect(batchesAfter).toEqual(batchesBefore);
    // The client's device was bound by the first run: it re-activates without a second seat.
    const devices = await ctx().licensingDb('devices').count({ n: '*' });
    expect(Number(devices[0]?.n)).toBe(1);
    expect(await ctx().licensingDb('licences').whereNotNull('activated_at')).toHaveLength(1);
  }, 120_000);
});
