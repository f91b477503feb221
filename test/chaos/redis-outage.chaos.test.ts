/**
 * Redis stopped for 30 s under a running Relais, then started again: a real `redis-server`
 * (its own, never the shared one) with the AOF on, as production runs it (docs/operations.md),
 * stopped with SIGTERM the way an operator or a host restart stops it.
 *
 * A whole Relais (`startRelais`, role all: api, workers and schedules in this process) takes a
 * stream of snapshots an ISP pushes over HTTP, one after another, each retried after a refusal
 * as docs/push-api.md asks. At a seeded moment of the stream Redis stops. While it is down:
 * every push is refused fast with 503 REDIS_UNAVAILABLE, `relais poll` gives up within its
 * bound with REDIS_UNAVAILABLE and takes nothing from the inbox, and an activation is refused
 * (fail closed) rather than let through unguarded. Once Redis is back the workers consume
 * again on their own, and the end state is that of one clean run: the last snapshot applied,
 * every command applied once, every key handed over (test/harness/pipeline-state.ts).
 *
 * RELAIS_CHAOS_SEED picks the stream and the moment of the stop; the seed is printed on failure.
 */
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { signPush } from '../../api/feed-push.routes.js';
import type { RunningRelais } from '../../cli/commands/start.js';
import { generateKey } from '../../licensing/activation-key.js';
import type { Lifecycle } from '../../platform/lifecycle.js';
import { packageRoot } from '../../platform/package-root.js';
import { queueList } from '../../queue/queue-metrics.js';
import {
  type Customer,
  encode,
  generateCustomers,
  nextDay,
  renderCsv,
  seededRandom,
} from '../generators/isp-exports.js';
import { type CliResult, runCli } from '../harness/cli.js';
import { createTestContext, type TestContext } from '../harness/context.js';
import { explainFailure, startLoggedRelais } from '../harness/logged-relais.js';
import { expectConsistent, subscribersByRef, waitSettled } from '../harness/pipeline-state.js';
import { type RedisServer, startRedisServer } from '../harness/redis-server.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? randomInt(1, 2 ** 31));
const random = seededRandom(SEED);
const OUTAGE_MS = 30_000;
/** How fast a producer must answer while Redis is down. */
const FAST_MS = 2_000;
/** `relais poll` waits this long for Redis at start (platform/redis.ts), then gives up. */
const CLI_REDIS_WAIT_MS = 5_000;
const PUSH_ISP = 'push-fai';
/** Pushes once, slowly: its body is halfway through when Redis stops. */
const SLOW_ISP = 'slow-fai';
const FOLDER_ISP = 'folder-fai';
const FOLDER_FILE = 'abonnes_20261201.csv';
const SECRET = 'redis-outage-push-secret-0123456789abcdef';
const SNAPSHOTS = 6;
const CUSTOMERS = 300;

/** The shipped demo-fai config: pushed over HTTP, or dropped in a folder nobody polls alone. */
function demoFai(transport: Record<string, unknown>): Record<string, unknown> {
  const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
  const { pickup, schedule: _schedule, ...intake } = shipped.intake;
  return {
    ...shipped,
    intake: {
      ...intake,
      transport,
      ...(transport.type === 'http' ? {} : { pickup, schedule: { cron: '0 0 1 1 *' } }),
    },
  };
}

/** The stream the ISP pushes: a first list, then a day of changes after another. */
function snapshots(): Customer[][] {
  const days: Customer[][] = [[...generateCustomers(CUSTOMERS, SEED)]];
  for (let day = 1; day < SNAPSHOTS; day++) {
    const before = days[day - 1] as Customer[];
    days.push([...nextDay(before, CUSTOMERS + day * 2, 0.06, SEED + day)]);
  }
  return days;
}

interface PushAnswer {
  status: number;
  code?: string;
  feedId?: string;
  ms: number;
}

async function push(
  apiUrl: string,
  ispId: string,
  name: string,
  body: Buffer,
): Promise<PushAnswer> {
  const timestamp = Math.floor(Date.now() / 1000);
  const started = performance.now();
  const res = await fetch(`${apiUrl}/v1/isps/${ispId}/feeds`, {
    method: 'POST',
    headers: {
      'x-relais-timestamp': String(timestamp),
      'x-relais-signature': signPush(SECRET, timestamp, body),
      'x-relais-filename': name,
      'content-type': 'text/csv',
    },
    body,
    signal: AbortSignal.timeout(20_000),
  });
  const answer = (await res.json()) as { code?: string; feedId?: string };
  return {
    status: res.status,
    code: answer.code,
    feedId: answer.feedId,
    ms: performance.now() - started,
  };
}

let redis: RedisServer;
let ctx: TestContext;
let lifecycle: Lifecycle;
let running: RunningRelais;
let logLines: string[] = [];

beforeAll(async () => {
  redis = await startRedisServer(['--appendonly', 'yes', '--appendfsync', 'everysec']);
  ctx = await createTestContext({
    deployment: { redis: { url: redis.url }, shutdownTimeoutMs: 10_000 },
    isps: {
      [PUSH_ISP]: demoFai({ type: 'http', secret: SECRET, maxBodyBytes: 10_000_000 }),
      [SLOW_ISP]: demoFai({ type: 'http', secret: SECRET, maxBodyBytes: 10_000_000 }),
      [FOLDER_ISP]: demoFai({ type: 'local' }),
    },
  });
  ctx.redis.on('error', () => {}); // the test's own client, idle during the outage
  ({ running, lifecycle, logLines } = await startLoggedRelais(ctx.config));
});

afterAll(async () => {
  try {
    await redis?.restart(); // a failed test may leave it down; the cleanup needs it
    await lifecycle?.shutdown('redis outage test done');
    await ctx?.cleanup();
  } finally {
    await redis?.stop();
  }
});

function cliEnv(): Record<string, string> {
  return { RELAIS_CONFIG: join(ctx.dir, 'relais.yaml') };
}

const feedName = (day: number) => `abonnes_202612${String(day + 1).padStart(2, '0')}.csv`;

/** What the producers met while Redis was down. */
interface Outage {
  /** A push whose body was still arriving when Redis stopped. */
  cutShort: PushAnswer;
  poll: CliResult;
  pollMs: number;
  activation: { status: number; code: string; ms: number };
}

/**
 * Stops Redis (a slow push of SLOW_ISP is halfway through its body), tries the other
 * producers against it, and starts it again OUTAGE_MS after the stop, whatever happened.
 */
async function playOutage(): Promise<Outage> {
  let stoppedAt = Date.now();
  const cutShort = pushInTwoHalves(running.apiUrl as string, SLOW_ISP, async () => {
    await redis.halt('SIGTERM');
    stoppedAt = Date.now();
  });
  try {
    return { cutShort: await cutShort, ...(await tryProducers()) };
  } finally {
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
    await redis.restart();
    restartedAt = Date.now();
  }
}

/** When Redis answered again. */
let restartedAt = 0;

async function tryProducers(): Promise<Omit<Outage, 'cutShort'>> {
  const inbox = join(ctx.config.isps.get(FOLDER_ISP)?.workDir as string, 'inbox');
  mkdirSync(inbox, { recursive: true });
  const file = join(inbox, FOLDER_FILE);
  writeFileSync(file, encode(renderCsv(generateCustomers(20, SEED + 99)), 'windows-1252'));
  const started = performance.now();
  const poll = await runCli(['poll', '--isp', FOLDER_ISP], { env: cliEnv() });
  const pollMs = performance.now() - started;
  expect(existsSync(file), 'the inbox file, untouched').toBe(true);
  expect(await ctx.connectorDb('feeds').where({ isp_id: FOLDER_ISP })).toEqual([]);

  const activationStarted = performance.now();
  const res = await fetch(`${running.apiUrl}/v1/activations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: generateKey(), fingerprint: 'desk-redis-outage-0001' }),
  });
  const { code } = (await res.json()) as { code: string };
  const activation = { status: res.status, code, ms: performance.now() - activationStarted };
  return { poll, pollMs, activation };
}

/** Pushes `slowBody` in two halves, running `between` after the first (the headers are in). */
function pushInTwoHalves(
  apiUrl: string,
  ispId: string,
  between: () => Promise<void>,
): Promise<PushAnswer> {
  const timestamp = Math.floor(Date.now() / 1000);
  const half = Math.floor(slowBody.length / 2);
  return new Promise((resolve, reject) => {
    let started = 0;
    const req = request(
      `${apiUrl}/v1/isps/${ispId}/feeds`,
      {
        method: 'POST',
        headers: {
          'x-relais-timestamp': String(timestamp),
          'x-relais-signature': signPush(SECRET, timestamp, slowBody),
          'x-relais-filename': 'abonnes_20261201.csv',
          'content-type': 'text/csv',
          'content-length': slowBody.length,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on('end', () => {
          const answer = JSON.parse(text) as { code?: string; feedId?: string };
          const ms = performance.now() - started;
          resolve({ status: res.statusCode ?? 0, code: answer.code, feedId: answer.feedId, ms });
        });
      },
    );
    req.on('error', reject);
    req.write(slowBody.subarray(0, half));
    // Long enough for the route to have checked Redis and started reading the body.
    sleep(300)
      .then(between)
      .then(() => {
        started = performance.now();
        req.end(slowBody.subarray(half));
      }, reject);
  });
}

const slowBody = encode(renderCsv(generateCustomers(50, SEED + 7)), 'windows-1252');

/** Pushes `body` until it is accepted, pausing after each refusal as an ISP would. */
async function pushUntilAccepted(
  apiUrl: string,
  ispId: string,
  name: string,
  body: Buffer,
  refusals: PushAnswer[],
): Promise<PushAnswer> {
  for (;;) {
    const answer = await push(apiUrl, ispId, name, body);
    if (answer.status === 202 || answer.status === 200) return answer;
    refusals.push(answer);
    await sleep(1_000);
  }
}

describe('a 30 s Redis outage under a running Relais', () => {
  it('refuses producers fast and clearly, then resumes and ends as one clean run', async () => {
    explainFailure('redis outage test', SEED, logLines);
    // BullMQ prints errors nobody listens for straight to stderr, outside the JSON log.
    const printed = vi.spyOn(console, 'error');
    const apiUrl = running.apiUrl as string;
    const days = snapshots();
    // The stop lands after the first, second or third snapshot was accepted, up to 1.5 s later:
    // while the workers apply it, provision it or hand its keys over.
    const stopAfter = 1 + Math.floor(random() * 3);
    const stopDelayMs = Math.floor(random() * 1_500);
    const refusals: PushAnswer[] = [];
    const accepted: PushAnswer[] = [];
    let outage: Promise<Outage> | undefined;

    for (const [day, customers] of days.entries()) {
      const body = encode(renderCsv(customers), 'windows-1252');
      accepted.push(await pushUntilAccepted(apiUrl, PUSH_ISP, feedName(day), body, refusals));
      if (day + 1 === stopAfter) {
        await sleep(stopDelayMs);
        outage = playOutage();
        outage.catch(() => {}); // awaited below; a failure must not go unheard meanwhile
      }
      await sleep(300);
    }
    const { cutShort, poll, pollMs, activation } = await (outage as Promise<Outage>);
    const raw = printed.mock.calls.filter((args) => args.some((a) => a instanceof Error));
    printed.mockRestore(); // which forgets the calls too: read them first

    // The producers while Redis was down: a clear, retryable refusal, fast.
    expect(refusals.length, 'pushes refused during the outage').toBeGreaterThan(5);
    for (const refusal of [...refusals, cutShort]) {
      expect(refusal).toMatchObject({ status: 503, code: 'REDIS_UNAVAILABLE' });
      expect(refusal.ms).toBeLessThan(FAST_MS);
    }
    expect(await ctx.connectorDb('feeds').where({ isp_id: SLOW_ISP }), 'kept of it').toEqual([]);
    expect(poll.code, poll.stderr).toBe(1);
    expect(poll.stderr).toMatch(/^REDIS_UNAVAILABLE: redis at redis:\/\/127\.0\.0\.1:\d+ did not/m);
    // The bound is the CLI's own wait for Redis plus the start of a Node process through tsx.
    expect(pollMs).toBeLessThan(CLI_REDIS_WAIT_MS + 10_000);
    expect(activation).toMatchObject({ status: 503, code: 'REDIS_UNAVAILABLE' });
    expect(activation.ms).toBeLessThan(FAST_MS);
    expect(accepted.map((a) => a.status)).toEqual(days.map(() => 202));
    expect(
      raw.map((args) => String(args[0])),
      'errors printed outside the log',
    ).toEqual([]);

    // Back: the producers are served again, the workers consume with nobody's help.
    const slow = await pushUntilAccepted(apiUrl, SLOW_ISP, 'abonnes_20261201.csv', slowBody, []);
    expect(slow.status).toBe(202);
    const again = await runCli(['poll', '--isp', FOLDER_ISP], { env: cliEnv() });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${FOLDER_ISP}: ${FOLDER_FILE} applied`);
    const dbs = { connectorDb: ctx.connectorDb, licensingDb: ctx.licensingDb };
    await waitSettled(dbs, queueList(running.runtime.queues), 120_000);
    const slowest = Math.max(...refusals.map((r) => r.ms), cutShort.ms, activation.ms);
    console.info(
      `redis down ${OUTAGE_MS} ms after snapshot ${stopAfter} + ${stopDelayMs} ms: ${refusals.length + 1} pushes refused (slowest answer ${slowest.toFixed(0)} ms), relais poll gave up after ${pollMs.toFixed(0)} ms, settled ${Date.now() - restartedAt} ms after the restart`,
    );

    // Nothing lost, nothing doubled: the last snapshot is the state, on both sides.
    const feeds = await ctx.connectorDb('feeds').where({ isp_id: PUSH_ISP }).orderBy('received_at');
    expect(feeds.map((f) => [f.name, f.status])).toEqual(
      days.map((_, day) => [feedName(day), 'applied']),
    );
    const subscribers = await subscribersByRef(ctx.connectorDb, PUSH_ISP);
    const everRef = new Set(days.flat().map((c) => c.ref));
    expect(subscribers.size).toBe(everRef.size);
    const lastByRef = new Map((days.at(-1) as Customer[]).map((c) => [c.ref, c]));
    for (const [ref, row] of subscribers) {
      expect(row.status, ref).toBe(lastByRef.get(ref)?.status ?? 'cancelled');
    }
    expect(await expectConsistent(dbs)).toBeGreaterThanOrEqual(everRef.size + 50 + 20);
  });
});
