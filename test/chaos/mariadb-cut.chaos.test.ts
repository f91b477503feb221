/**
 * MariaDB made unreachable in the middle of the work, then reachable again. A whole Relais
 * (`startRelais`, role all) reaches the shared MariaDB through a TCP proxy the test cuts
 * (test/harness/tcp-proxy.ts: every connection reset, new ones refused), the documented fake,
 * since stopping the shared server would break every other test file. The test itself reads
 * both databases directly, so it sees what a cut left behind.
 *
 * Two ISPs get the same first export. The first one's run is clean and measures how many
 * bytes the whole run sends to MariaDB; the second one's is cut after a seeded share of that
 * count: in the middle of the intake's writes, a provisioning batch the server is applying, or
 * the connector recording the server's answer. At the cut, once MariaDB has rolled back what
 * the reset sessions left open, nothing is half done:
 *
 * - the server applied each outbox batch whole or not at all (one transaction per batch);
 * - each subscription it created has its one licence;
 * - every subscriber change the intake committed has its outbox command, and no command runs
 *   ahead of its subscriber (one transaction per chunk of the feed);
 * - the connector recorded keys only of commands the server applied, and a batch marked sent
 *   has all its keys recorded.
 *
 * After the proxy comes back the queues' retries finish the work with nobody's help, and the
 * second ISP ends exactly as the first: same subscribers, licences and deliveries by customer
 * ref, every command applied once (test/harness/pipeline-state.ts).
 *
 * RELAIS_CHAOS_SEED picks the cut and its length; the seed is printed on failure.
 */
import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RunningRelais } from '../../cli/commands/start.js';
import type { RelaisConfig } from '../../config/load.js';
import { decodeCommands } from '../../mappings/provisioning-command.js';
import type { Db } from '../../platform/db.js';
import type { Lifecycle } from '../../platform/lifecycle.js';
import { packageRoot } from '../../platform/package-root.js';
import { queueList } from '../../queue/queue-metrics.js';
import { JOB_NAMES } from '../../queue/queues.js';
import { encode, generateCustomers, renderCsv, seededRandom } from '../generators/isp-exports.js';
import { createTestContext, type TestContext } from '../harness/context.js';
import { dropInInbox, explainFailure, startLoggedRelais } from '../harness/logged-relais.js';
import {
  expectConsistent,
  replayRecords,
  subscribersByRef,
  waitSettled,
} from '../harness/pipeline-state.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? randomInt(1, 2 ** 31));
const random = seededRandom(SEED);
const CLEAN = 'clean-fai';
const CUT = 'cut-fai';
/** Five outbox batches of 500 commands (connectors/intake/read-and-diff.ts). */
const CUSTOMERS = 2_500;
const FILE = 'abonnes_20261201.csv';

function demoFai(): Record<string, unknown> {
  const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
  // Polls are asked by the test; the schedule must not take a file on its own meanwhile.
  return { ...shipped, intake: { ...shipped.intake, schedule: { cron: '0 0 1 1 *' } } };
}

/** `config` with every MariaDB connection of Relais going through `port`. */
function throughProxy(config: RelaisConfig, port: number): RelaisConfig {
  const { deployment } = config;
  return { ...config, deployment: { ...deployment, mysql: { ...deployment.mysql, port } } };
}

let proxy: TcpProxy;
let ctx: TestContext;
let lifecycle: Lifecycle;
let running: RunningRelais;
let logLines: string[] = [];

const exportFile = encode(renderCsv(generateCustomers(CUSTOMERS, SEED)), 'windows-1252');

beforeAll(async () => {
  proxy = await startTcpProxy({ host: '127.0.0.1', port: 3306 });
  ctx = await createTestContext({
    deployment: { shutdownTimeoutMs: 10_000 },
    isps: { [CLEAN]: demoFai(), [CUT]: demoFai() },
  });
  ({ running, lifecycle, logLines } = await startLoggedRelais(
    throughProxy(ctx.config, proxy.port),
  ));
});

afterAll(async () => {
  try {
    proxy?.restore();
    await lifecycle?.shutdown('mariadb cut test done');
    await ctx?.cleanup();
  } finally {
    await proxy?.close();
  }
});

/** Drops the export into the ISP's inbox the way an ISP should, and asks for a poll. */
async function dropAndPoll(ispId: string): Promise<void> {
  const inbox = join(ctx.config.isps.get(ispId)?.workDir as string, 'inbox');
  mkdirSync(inbox, { recursive: true });
  dropInInbox(inbox, FILE, exportFile);
  await running.runtime.queues.feeds.add(
    JOB_NAMES.pollIsp,
    { ispId },
    { jobId: `mariadb-cut-poll-${ispId}` },
  );
}

const dbs = () => ({ connectorDb: ctx.connectorDb, licensingDb: ctx.licensingDb });
const settle = () => waitSettled(dbs(), queueList(running.runtime.queues), 120_000);

/** Waits until MariaDB has ended every session the cut reset (rolling back what they held). */
async function untilCutSessionsEnd(): Promise<void> {
  const hosts = proxy.lastCutPorts.filter(Boolean).map((port) => `127.0.0.1:${port}`);
  await waitFor(
    'the sessions of the cut connections to end',
    async () => {
      const [rows] = await ctx.connectorDb.raw(
        'SELECT host FROM information_schema.processlist WHERE host IN (?)',
        [hosts.length > 0 ? hosts : ['none']],
      );
      return (rows as unknown[]).length === 0 ? true : undefined;
    },
    20_000,
    50,
  );
}

/** Every idempotency key the server holds a replay record of, for one ISP. */
async function appliedKeys(db: Db, ispId: string): Promise<Set<string>> {
  return new Set((await replayRecords(db, ispId)).map((r) => r.idempotency_key));
}

/** The invariants of the header, on what the cut left behind. */
async function expectNothingHalfDone(ispId: string): Promise<string> {
  const { connectorDb, licensingDb } = dbs();
  const applied = await appliedKeys(licensingDb, ispId);
  const batches: { id: number; state: string; commands: string }[] = await connectorDb(
    'provisioning_batches',
  )
    .where({ isp_id: ispId })
    .select('id', 'state', 'commands');
  const commandsOf = new Map(batches.map((b) => [Number(b.id), decodeCommands(b.commands)]));

  // The server: each batch whole or not at all, each subscription with its licence.
  const partly = batches.filter((b) => {
    const keys = (commandsOf.get(Number(b.id)) ?? []).map((c) => c.key);
    const done = keys.filter((k) => applied.has(k)).length;
    return done !== 0 && done !== keys.length;
  });
  expect(
    partly.map((b) => b.id),
    'batches the server applied in part',
  ).toEqual([]);
  const subscriptions = await licensingDb('subscriptions')
    .where({ isp_id: ispId })
    .pluck('subscriber_id');
  const licensed = await licensingDb('licences')
    .where({ isp_id: ispId })
    .select('subscriber_id')
    .count({ n: '*' })
    .groupBy('subscriber_id');
  expect(
    licensed.filter((l) => Number(l.n) !== 1),
    'subscriptions with 2+ licences',
  ).toEqual([]);
  expect(licensed.length, 'subscriptions with their licence').toBe(subscriptions.length);
  expect(subscriptions.length, 'subscriptions, one per applied subscribe').toBe(applied.size);

  // The intake: every committed change has its command, none runs ahead of its subscriber.
  const versions = new Map<string, number>();
  for (const commands of commandsOf.values()) {
    for (const c of commands) {
      versions.set(c.subscriberId, Math.max(versions.get(c.subscriberId) ?? 0, c.version));
    }
  }
  const subscribers = [...(await subscribersByRef(connectorDb, ispId)).values()];
  const unannounced = subscribers.filter((s) => versions.get(s.subscriber_id) !== s.version);
  expect(unannounced.length, 'subscriber changes without their command').toBe(0);
  expect(versions.size, 'commands of subscribers never committed').toBe(subscribers.length);

  // The connector's record of the answers: only what the server applied, whole for a sent batch.
  const recorded: { batch_id: number; subscriber_id: string }[] = await connectorDb('deliveries')
    .where({ isp_id: ispId })
    .select('batch_id', 'subscriber_id');
  const unapplied = recorded.filter((d) => {
    const command = commandsOf
      .get(Number(d.batch_id))
      ?.find((c) => c.subscriberId === d.subscriber_id);
    return !command || !applied.has(command.key);
  });
  expect(unapplied.length, 'keys recorded for commands the server never applied').toBe(0);
  for (const b of batches.filter((batch) => batch.state === 'sent')) {
    const keys = recorded.filter((d) => Number(d.batch_id) === Number(b.id)).length;
    expect(keys, `keys recorded of sent batch ${b.id}`).toBe(commandsOf.get(Number(b.id))?.length);
  }
  return `${applied.size} commands applied, ${subscribers.length} subscribers, ${recorded.length} keys recorded, batches ${batches.map((b) => b.state).join(',')}`;
}

/** What a customer ref ended as on both sides, for comparing two ISPs fed the same export. */
async function endStateByRef(ispId: string): Promise<Map<string, unknown>> {
  const { connectorDb, licensingDb } = dbs();
  const subscribers = await subscribersByRef(connectorDb, ispId);
  const subscriptions = new Map(
    (
      await licensingDb('subscriptions')
        .where({ isp_id: ispId })
        .select('subscriber_id', 'status', 'modules', 'version')
    ).map((s) => [s.subscriber_id, s]),
  );
  const licences = await licensingDb('licences')
    .where({ isp_id: ispId })
    .select('subscriber_id', 'status', 'device_limit');
  const deliveries = await connectorDb('deliveries')
    .where({ isp_id: ispId })
    .select('subscriber_id', 'state', 'channel');
  const state = new Map<string, unknown>();
  for (const [ref, s] of subscribers) {
    const sid = s.subscriber_id;
    const sub = subscriptions.get(sid);
    state.set(ref, {
      connector: [s.status, s.modules, s.version],
      server: sub && [sub.status, sub.modules, Number(sub.version)],
      licences: licences
        .filter((l) => l.subscriber_id === sid)
        .map((l) => [l.status, l.device_limit]),
      deliveries: deliveries
        .filter((d) => d.subscriber_id === sid)
        .map((d) => [d.state, d.channel]),
    });
  }
  return state;
}

describe('MariaDB unreachable mid-batch', () => {
  let cleanBytes = 0;

  it('has a clean run through the proxy to compare with and to measure', async () => {
    const before = proxy.bytesUp;
    await dropAndPoll(CLEAN);
    await waitFor('the clean feed to be applied', async () => {
      const feed = await ctx.connectorDb('feeds').where({ isp_id: CLEAN }).first();
      return feed?.status === 'applied' ? true : undefined;
    });
    await settle();
    cleanBytes = proxy.bytesUp - before;
    expect(cleanBytes).toBeGreaterThan(100_000);
    expect(await expectConsistent(dbs())).toBe(CUSTOMERS);
  });

  it('leaves nothing half done at the cut, and ends as the clean run once MariaDB is back', async () => {
    explainFailure('mariadb cut test', SEED, logLines);
    expect(cleanBytes, 'the clean run ran first').toBeGreaterThan(0);
    const cutAt = Math.floor(cleanBytes * (0.05 + 0.9 * random()));
    const outageMs = 3_000 + Math.floor(random() * 5_000);

    const cut = proxy.cutAfter(cutAt);
    await dropAndPoll(CUT);
    await cut;
    await untilCutSessionsEnd();
    const atCut = await expectNothingHalfDone(CUT);
    await sleep(outageMs);
    proxy.restore();

    await settle();
    console.info(`cut after ${cutAt} of ${cleanBytes} bytes for ${outageMs} ms: ${atCut}`);
    const feeds = await ctx.connectorDb('feeds').where({ isp_id: CUT });
    expect(feeds.map((f) => [f.name, f.status, Number(f.records)])).toEqual([
      [FILE, 'applied', CUSTOMERS],
    ]);
    expect(await expectConsistent(dbs())).toBe(2 * CUSTOMERS);
    const clean = await endStateByRef(CLEAN);
    const recovered = await endStateByRef(CUT);
    expect(recovered.size).toBe(CUSTOMERS);
    expect(recovered).toEqual(clean);
  });
});
