/**
 * The whole pipeline's end state, for the fault tests (test/chaos/): when a running Relais has
 * nothing left to do, and whether what it did adds up on both sides. "Nothing lost, nothing
 * doubled" is checked from the records themselves, whatever the faults were:
 *
 * - every command the outbox ever held was applied by the server exactly once (one replay record
 *   per idempotency key, none the outbox never held) and no two batches carry one key;
 * - every connector subscriber has its subscription on the server in the same state (status,
 *   modules, version), and the server holds no subscription the connector does not know;
 * - every subscription has exactly one licence, and every licence one key delivery, delivered.
 */
import type { Queue } from 'bullmq';
import { expect } from 'vitest';
import { decodeCommands } from '../../mappings/provisioning-command.js';
import type { Db } from '../../platform/db.js';
import { waitFor } from './wait.js';

export interface PipelineDbs {
  connectorDb: Db;
  licensingDb: Db;
}

/** Counts of what is still to do; all zero once the pipeline is settled. */
export interface Backlog {
  feedsWaiting: number;
  batchesUnsent: number;
  deliveriesPending: number;
  jobsQueued: number;
}

async function count(query: Promise<{ n: number | string }[]>): Promise<number> {
  const [row] = await query;
  return Number(row?.n ?? 0);
}

export async function backlogOf(dbs: PipelineDbs, queues: Queue[]): Promise<Backlog> {
  const db = dbs.connectorDb;
  const failed = await db('provisioning_batches').where({ state: 'failed' }).first();
  if (failed) throw new Error(`provisioning batch ${failed.id} failed: ${failed.last_error}`);
  let jobsQueued = 0;
  for (const queue of queues) {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    jobsQueued += Object.values(counts).reduce((sum, n) => sum + n, 0);
  }
  return {
    feedsWaiting: await count(
      db('feeds').whereIn('status', ['received', 'parsing']).count({ n: '*' }),
    ),
    batchesUnsent: await count(
      db('provisioning_batches').whereNot({ state: 'sent' }).count({ n: '*' }),
    ),
    deliveriesPending: await count(db('deliveries').where({ state: 'pending' }).count({ n: '*' })),
    jobsQueued,
  };
}

/** Waits until no feed, batch, delivery or job is left to do; the last backlog on time-out. */
export async function waitSettled(
  dbs: PipelineDbs,
  queues: Queue[],
  timeoutMs: number,
): Promise<void> {
  let last: Backlog | undefined;
  try {
    await waitFor(
      'the pipeline to settle',
      async () => {
        last = await backlogOf(dbs, queues);
        return Object.values(last).every((n) => n === 0) ? true : undefined;
      },
      timeoutMs,
      250,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; still to do: ${JSON.stringify(last)}`);
  }
}

interface SubscriberRow {
  isp_id: string;
  customer_ref: string;
  subscriber_id: string;
  status: string;
  modules: string;
  version: number;
}

/** The connector's subscribers of `ispId`, by customer ref. */
export async function subscribersByRef(db: Db, ispId: string): Promise<Map<string, SubscriberRow>> {
  const rows: SubscriberRow[] = await db('subscribers')
    .where({ isp_id: ispId })
    .select('isp_id', 'customer_ref', 'subscriber_id', 'status', 'modules', 'version');
  return new Map(rows.map((r) => [r.customer_ref, r]));
}

/** Every command key of every outbox batch, with the ISP; fails on a key held twice. */
async function outboxKeys(db: Db): Promise<Map<string, string>> {
  const batches: { id: number; isp_id: string; commands: string }[] = await db(
    'provisioning_batches',
  ).select('id', 'isp_id', 'commands');
  const keys = new Map<string, string>();
  const doubled: string[] = [];
  for (const batch of batches) {
    for (const command of decodeCommands(batch.commands)) {
      if (keys.has(command.key)) doubled.push(`${command.key} (batch ${batch.id})`);
      keys.set(command.key, batch.isp_id);
    }
  }
  expect(doubled, 'command keys written to the outbox twice').toEqual([]);
  return keys;
}

/**
 * Every command the server holds a replay record of, with its ISP (of one ISP when given). The
 * server keeps it on the event it wrote under the command's key, or in a
 * `provisioning_requests` row when it wrote none (licensing/provisioning.ts).
 */
export async function replayRecords(
  licensingDb: Db,
  ispId?: string,
): Promise<{ isp_id: string; idempotency_key: string }[]> {
  const of = <Q extends { where(column: string, value: string): Q }>(query: Q): Q =>
    ispId === undefined ? query : query.where('isp_id', ispId);
  return [
    ...(await of(licensingDb('provisioning_requests')).select('isp_id', 'idempotency_key')),
    ...(await of(licensingDb('subscription_events'))
      .whereNotNull('command_hash')
      .select('isp_id', 'idempotency_key')),
  ];
}

/**
 * Checks that the two sides agree and nothing was applied twice or lost (see the header).
 * Returns the number of commands checked, so a caller can tell the run did something.
 */
export async function expectConsistent(dbs: PipelineDbs): Promise<number> {
  const { connectorDb, licensingDb } = dbs;
  const keys = await outboxKeys(connectorDb);
  const applied = await replayRecords(licensingDb);
  const appliedKeys = new Map(applied.map((r) => [r.idempotency_key, r.isp_id]));
  const lost = [...keys].filter(([key, isp]) => appliedKeys.get(key) !== isp).map(([k]) => k);
  const unknown = [...appliedKeys.keys()].filter((key) => !keys.has(key));
  expect(lost.slice(0, 5), `${lost.length} outbox commands the server never applied`).toEqual([]);
  expect(unknown.slice(0, 5), 'commands applied that no batch holds').toEqual([]);
  expect(applied.length, 'replay records, one per command').toBe(keys.size);

  const subscribers: SubscriberRow[] = await connectorDb('subscribers').select(
    'isp_id',
    'customer_ref',
    'subscriber_id',
    'status',
    'modules',
    'version',
  );
  const subscriptions: {
    subscriber_id: string;
    isp_id: string;
    status: string;
    modules: string;
    version: number;
  }[] = await licensingDb('subscriptions').select(
    'subscriber_id',
    'isp_id',
    'status',
    'modules',
    'version',
  );
  const server = new Map(subscriptions.map((s) => [s.subscriber_id, s]));
  const differing = subscribers.filter((s) => {
    const there = server.get(s.subscriber_id);
    return (
      there?.isp_id !== s.isp_id ||
      there.status !== s.status ||
      there.modules !== s.modules ||
      Number(there.version) !== Number(s.version)
    );
  });
  expect(
    differing.slice(0, 5).map((s) => ({ connector: s, server: server.get(s.subscriber_id) })),
    `${differing.length} subscribers whose state differs between the two sides`,
  ).toEqual([]);
  expect(subscriptions.length, 'subscriptions on the server, one per subscriber').toBe(
    subscribers.length,
  );

  const licences: { subscriber_id: string; n: number }[] = await licensingDb('licences')
    .select('subscriber_id')
    .count({ n: '*' })
    .groupBy('subscriber_id');
  const notOne = licences.filter((l) => Number(l.n) !== 1);
  expect(notOne.slice(0, 5), 'subscribers with more than one licence').toEqual([]);
  expect(licences.length, 'licences, one per subscription').toBe(subscriptions.length);

  const deliveries: { licence_id: string; n: number }[] = await connectorDb('deliveries')
    .select('licence_id')
    .count({ n: '*' })
    .groupBy('licence_id');
  const doubled = deliveries.filter((d) => Number(d.n) !== 1);
  expect(doubled.slice(0, 5), 'licences with more than one key delivery').toEqual([]);
  expect(deliveries.length, 'key deliveries, one per licence').toBe(licences.length);
  const undelivered = await count(
    connectorDb('deliveries').whereNot({ state: 'delivered' }).count({ n: '*' }),
  );
  expect(undelivered, 'key deliveries not delivered').toBe(0);
  return keys.size;
}

/**
 * The warn and error lines of a Relais log captured as JSON lines, shortened, for the output
 * of a failing fault test: what Relais said about the fault is the first thing to read.
 */
export function problemsIn(lines: readonly string[], max = 40): string {
  const problems: string[] = [];
  for (const line of lines.join('').split('\n')) {
    if (!line) continue;
    const entry = JSON.parse(line) as {
      level?: string;
      time?: string;
      msg?: string;
      err?: unknown;
    };
    if (entry.level !== 'warn' && entry.level !== 'error') continue;
    const err = (entry.err ?? {}) as { code?: string; message?: string };
    const why = err.message ? ` (${err.code ?? 'no code'}: ${err.message.slice(0, 160)})` : '';
    problems.push(`${entry.time} ${entry.level} ${entry.msg}${why}`);
  }
  const shown = problems.slice(-max);
  const skipped = problems.length - shown.length;
  return [skipped > 0 ? `... ${skipped} earlier lines` : '', ...shown].filter(Boolean).join('\n');
}
