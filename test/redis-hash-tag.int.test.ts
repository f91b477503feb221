/**
 * Redis Cluster through key prefixes with hash tags (docs/operations.md, "Redis Cluster"). A
 * cluster runs a Lua script or a multi-key command only when all its keys hash to one slot;
 * BullMQ's scripts and the activation guard's take several keys each, so Relais' keys must
 * share a slot, which `redis.prefix: "{name}"` gives: Redis hashes only the part in braces.
 *
 * The Redis here is a throw-away single node in cluster mode owning all 16384 slots. It enforces
 * the rule a real cluster does (a cross-slot script fails with CROSSSLOT) without needing six
 * nodes; the control test shows it does. Relais then runs every role in one process on it with
 * a hash-tagged prefix: a signed push, its intake, provisioning, key delivery, an activation
 * attempt and a replayed push all succeed, and every key the server holds afterwards starts
 * with the prefix and sits in the prefix's slot. It runs once with a plain client and once with
 * the cluster client (`redis.cluster: true`); redirection across several nodes is not exercised
 * by one node (see the docs).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { signPush } from '../api/feed-push.routes.js';
import { type RunningRelais, startRelais } from '../cli/commands/start.js';
import { loadConfigOrThrow } from '../config/load.js';
import { generateKey } from '../licensing/activation-key.js';
import { createActivationGuard, guardMetrics } from '../licensing/guard.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { JOB_NAMES, QUEUE_NAMES } from '../queue/queues.js';
import { encode, generateCustomers, renderXml } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { type RedisServer, startRedisServer } from './harness/redis-server.js';
import { waitFor } from './harness/wait.js';

const ISP = 'alpha';
const SECRET = 'hash-tag-push-secret-0123456789abcdef';
const CUSTOMERS = 5;
const TAG = `t${randomBytes(4).toString('hex')}`;
const PREFIX = `{${TAG}}`;

/** The shipped Alpha Télécom config, pushed over HTTP, its keys handed over as return files. */
function pushIsp(): string {
  const shipped = parse(
    readFileSync(join(packageRoot(), 'config/isps/alpha-telecom.yaml'), 'utf8'),
  );
  const { pickup: _pickup, schedule: _schedule, ...intake } = shipped.intake;
  return stringify({
    name: shipped.name,
    timeZone: shipped.timeZone,
    intake: { ...intake, transport: { type: 'http', secret: SECRET } },
    offers: shipped.offers,
    delivery: { mode: 'return-file' },
  });
}

const ctx = useTestContext({ isps: { [ISP]: pushIsp() } });

/** A single-node Redis Cluster: cluster mode on, every slot assigned to this node. */
async function startClusterNode(): Promise<RedisServer> {
  const server = await startRedisServer([
    '--cluster-enabled',
    'yes',
    // A lone node does not know its address until it meets another; a cluster client needs it.
    '--cluster-announce-ip',
    '127.0.0.1',
    '--maxmemory-policy',
    'noeviction',
  ]);
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  try {
    await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await waitFor('the cluster state to be ok', async () => {
      const info = (await admin.call('CLUSTER', 'INFO')) as string;
      return info.includes('cluster_state:ok') ? true : undefined;
    });
  } finally {
    admin.disconnect();
  }
  return server;
}

/** Every key the server holds, and the slot of each. */
async function keysAndSlots(redis: Redis): Promise<{ key: string; slot: number }[]> {
  const keys = await redis.keys('*');
  return Promise.all(
    keys.map(async (key) => ({ key, slot: Number(await redis.call('CLUSTER', 'KEYSLOT', key)) })),
  );
}

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startClusterNode();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe('a single-node Redis Cluster', () => {
  it('refuses Relais keys without a hash tag, as a real cluster would', async () => {
    const queue = new Queue(QUEUE_NAMES.feeds, { connection: redis, prefix: 'plain' });
    try {
      await expect(queue.add(JOB_NAMES.pollIsp, { ispId: ISP })).rejects.toThrow(/CROSSSLOT/);
    } finally {
      await queue.close();
    }
    const guard = createActivationGuard(
      redis,
      'plain',
      ctx().config.deployment.server.activation,
      guardMetrics(new Registry()),
    );
    await expect(guard.admit('203.0.113.9', { activation: true })).rejects.toThrow(/CROSSSLOT/);
  });
});

/**
 * The same run twice: with the plain client, and with the cluster client (`redis.cluster`),
 * which discovers the nodes through CLUSTER SLOTS and follows redirections as on a real
 * multi-node cluster.
 */
describe.each([
  { client: 'a plain client', cluster: false },
  { client: 'the cluster client', cluster: true },
])('Relais with redis.prefix "{tag}" on a Redis Cluster, through $client', ({ cluster }) => {
  let running: RunningRelais;
  let lifecycle: Lifecycle;

  beforeAll(async () => {
    await redis.flushall();
    const { mysql } = ctx().config.deployment;
    const file = join(ctx().dir, 'cluster.yaml');
    writeFileSync(
      file,
      stringify({
        mysql: {
          connectorDatabase: mysql.connectorDatabase,
          licensingDatabase: mysql.licensingDatabase,
          poolMax: 4,
        },
        redis: { url: server.url, prefix: PREFIX, cluster },
        paths: { dataDir: 'var', ispConfigDir: 'isps' },
        log: { level: 'silent' },
        shutdownTimeoutMs: 5_000,
      }),
    );
    const config = loadConfigOrThrow({ file, env: {} });
    expect(config.deployment.redis).toMatchObject({ prefix: PREFIX, cluster });
    const log = silentLogger();
    lifecycle = new Lifecycle(log, 5_000);
    running = await startRelais(config, 'all', log, lifecycle, { port: 0 });
  });

  afterAll(async () => {
    await lifecycle?.shutdown('test done');
  });

  it('takes a push through intake, provisioning and delivery, and guards activations', async () => {
    // The two runs share the databases: the second snapshot keeps the first one's customers
    // and adds as many, whose keys only this run's workers can deliver.
    const customers = cluster ? 2 * CUSTOMERS : CUSTOMERS;
    const body = encode(renderXml([...generateCustomers(customers, 7)]));
    const push = (timestampS: number) =>
      fetch(`${running.apiUrl}/v1/isps/${ISP}/feeds`, {
        method: 'POST',
        headers: {
          'content-type': 'application/xml',
          'x-relais-timestamp': String(timestampS),
          'x-relais-signature': signPush(SECRET, timestampS, body),
        },
        body,
      });
    const timestampS = Math.floor(Date.now() / 1000);
    expect((await push(timestampS)).status).toBe(202);

    const db = ctx().connectorDb;
    const delivered = await waitFor(
      'every key of the pushed feed to be delivered',
      async () => {
        const rows = await db('deliveries').where({ isp_id: ISP }).select('state');
        const done = rows.length === customers && rows.every((r) => r.state === 'delivered');
        return done ? rows.length : undefined;
      },
      60_000,
      250,
    );
    expect(delivered).toBeGreaterThan(0);

    // The replay key is a plain SET: it must live under the prefix too.
    expect((await push(timestampS)).status).toBe(409);
    const activation = await fetch(`${running.apiUrl}/v1/activations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: generateKey(), fingerprint: 'hash-tag-device-0123456789' }),
    });
    expect(activation.status).toBe(404);
  }, 90_000);

  it('left every key under the prefix, all in the hash tag’s one slot', async () => {
    const found = await keysAndSlots(redis);
    const tagSlot = Number(await redis.call('CLUSTER', 'KEYSLOT', TAG));
    const names = found.map((k) => k.key);
    // What the run above must have written: each queue, the push replay key, the guard.
    for (const part of [
      `:${QUEUE_NAMES.feeds}:`,
      `:${QUEUE_NAMES.provisioning}:`,
      `:${QUEUE_NAMES.delivery}:`,
      `:push-signature:${ISP}:`,
      ':activation:',
    ]) {
      expect(
        names.some((n) => n.includes(part)),
        `a key with ${part}`,
      ).toBe(true);
    }
    expect(names.filter((n) => !n.startsWith(`${PREFIX}:`))).toEqual([]);
    expect(found.filter((k) => k.slot !== tagSlot)).toEqual([]);
  });
});
