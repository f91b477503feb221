/**
 * Crash and restart under SIGKILL (issue 7): real `relais start` processes on shared MariaDB
 * and Redis, a seeded chaos driver killing a random one at random moments and starting it
 * again, and the end state compared with a clean run of the same input on a second test
 * context.
 *
 * 1. Feeds: three workers, one scheduler and the api (the workers reach the subscription server
 *    over HTTP) while a stream of exports for the three shipped ISPs lands in their inboxes.
 *    The api is in the kill set too: a server dying between its commit and its answer is the
 *    case the idempotency keys and key re-issue exist for. The clean run is one `--role all`
 *    process, never killed, fed the same files on the same timeline. What "equal" means is in
 *    crash-restart/end-state.ts.
 * 2. Month end: `relais period close` and `relais billing export` of each ISP killed at random
 *    points and run again until they succeed, the api streaming the rated lines killed now and
 *    then too (crash-restart/month-end.ts). The vendor documents, the invoice-line files with
 *    their checksum files and done markers, and the ledgers behind them must equal those of a
 *    clean run byte for byte, each file delivered exactly once.
 *
 * Randomness is seeded: RELAIS_CHAOS_SEED=<n> replays a run's choices (what is killed, when,
 * and the feeds); the seed is in the test names and printed on failure. Timing on a loaded
 * machine still varies, so a replay hits the same processes at about the same moments, not
 * the same instructions. Every process a test starts is killed when it ends, pass or fail.
 */
import { randomInt } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { parse, stringify } from 'yaml';
import { periodOf, previousPeriod } from '../../licensing/periods.js';
import { packageRoot } from '../../platform/package-root.js';
import { openQueues, type Queues } from '../../queue/queues.js';
import { seededRandom } from '../generators/isp-exports.js';
import { type TestContext, useTestContext } from '../harness/context.js';
import { freePort } from '../harness/ports.js';
import { differences, type RunOutcome, readOutcome } from './crash-restart/end-state.js';
import { dropFile, feedStream, STREAM_ISPS, type StreamFile } from './crash-restart/feed-stream.js';
import { Fleet } from './crash-restart/fleet.js';
import {
  type Attempt,
  killStepsLeft,
  MONTH_END_ISPS,
  monthEndOutputs,
  monthEndSteps,
  monthEndUnderKills,
  seedActivatedMonth,
} from './crash-restart/month-end.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? randomInt(1, 2 ** 31));
const REPLAY = `seed ${SEED}: replay with RELAIS_CHAOS_SEED=${SEED}`;

/** Each test kills at least this many processes. */
const MIN_KILLS = 20;
/** Pause between two kills, drawn uniformly in this range (ms). */
const KILL_GAP_MS = [400, 1_600] as const;
/** Pause before a killed process is started again, as a supervisor would (ms). */
const RESTART_DELAY_MS = [0, 800] as const;
/** Day-1 customers of each ISP, days of exports, and the pause between two drops. */
const STREAM = { customers: 1_500, days: 3, changedShare: 0.05 };
const DROP_EVERY_MS = 2_500;
/** How long the system may take to finish after the last kill (stalled jobs wait 30 s). */
const SETTLE_MS = 150_000;

const shipped = (id: string) =>
  parse(readFileSync(join(packageRoot(), `config/isps/${id}.yaml`), 'utf8'));
const vendor = parse(readFileSync(join(packageRoot(), 'config/relais.yaml'), 'utf8'));

/** The shipped ISPs, polled every two seconds, every one handing keys back in a return file. */
function streamIsps(): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    STREAM_ISPS.map((id) => {
      const isp = shipped(id);
      isp.intake.schedule.cron = '*/2 * * * * *';
      isp.delivery = { mode: 'return-file' };
      return [id, isp];
    }),
  );
}

const contextOptions = {
  deployment: {
    log: { level: 'info', pretty: false },
    billing: { seller: vendor.billing.seller },
    shutdownTimeoutMs: 5_000,
  },
  isps: streamIsps(),
};

/**
 * Gives the context's relais.yaml an api port of its own (every process of the context reads
 * it: the api listens there, the workers reach the server there); returns the file.
 */
async function withApiPort(ctx: TestContext): Promise<string> {
  const file = join(ctx.dir, 'relais.yaml');
  const deployment = parse(readFileSync(file, 'utf8'));
  deployment.http = { ...deployment.http, port: await freePort() };
  writeFileSync(file, stringify(deployment));
  return file;
}

function between(random: () => number, [low, high]: readonly [number, number]): number {
  return low + Math.floor(random() * (high - low));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The inbox folder of a stream ISP in `ctx`. */
function inboxOf(ctx: TestContext, isp: string): string {
  const transport = ctx.config.isps.get(isp)?.intake.transport as { inbox?: string } | undefined;
  if (!transport?.inbox) throw new Error(`${isp} has no local inbox`);
  return transport.inbox;
}

/** Drops the stream's files into their inboxes, one every DROP_EVERY_MS. */
async function playStream(ctx: TestContext, stream: StreamFile[]): Promise<void> {
  for (const file of stream) {
    const inbox = inboxOf(ctx, file.isp);
    mkdirSync(inbox, { recursive: true });
    dropFile(inbox, file);
    await sleep(DROP_EVERY_MS);
  }
}

interface Kill {
  atMs: number;
  name: string;
  landed: boolean;
}

/**
 * Kills a random member of `fleet` every KILL_GAP_MS or so and starts it again after a
 * RESTART_DELAY_MS pause, until MIN_KILLS kills landed and `until` resolved.
 */
async function chaos(fleet: Fleet, random: () => number, until: Promise<void>): Promise<Kill[]> {
  let done = false;
  void until.then(() => {
    done = true;
  });
  const kills: Kill[] = [];
  const started = Date.now();
  const restarts: Promise<void>[] = [];
  while (!done || kills.filter((k) => k.landed).length < MIN_KILLS) {
    await sleep(between(random, KILL_GAP_MS));
    const name = fleet.names[Math.floor(random() * fleet.names.length)] as string;
    const delay = between(random, RESTART_DELAY_MS);
    const landed = await fleet.kill(name);
    kills.push({ atMs: Date.now() - started, name, landed });
    restarts.push(
      sleep(delay).then(() => {
        if (!fleet.isRunning(name)) fleet.restart(name);
      }),
    );
  }
  await Promise.all(restarts);
  return kills;
}

/** What is still to do in a run, in words; empty once everything is finished. */
async function unfinished(
  ctx: TestContext,
  queues: Queues,
  stream: StreamFile[],
): Promise<string[]> {
  const left: string[] = [];
  for (const isp of STREAM_ISPS) {
    const waiting = readdirSync(inboxOf(ctx, isp)).filter((n) => stream.some((f) => f.name === n));
    if (waiting.length > 0) left.push(`${isp} inbox holds ${waiting.join(', ')}`);
  }
  const db = ctx.connectorDb;
  const feeds = await db('feeds').whereIn('status', ['received', 'parsing']).count({ n: '*' });
  if (Number(feeds[0]?.n) > 0) left.push(`${feeds[0]?.n} feeds not finished`);
  const done = await db('feeds').whereNot({ status: 'duplicate' }).count({ n: '*' });
  if (Number(done[0]?.n) < stream.length)
    left.push(`${done[0]?.n} of ${stream.length} feeds in the ledger`);
  const batches = await db('provisioning_batches')
    .whereIn('state', ['pending', 'queued'])
    .count({ n: '*' });
  if (Number(batches[0]?.n) > 0) left.push(`${batches[0]?.n} batches not sent`);
  const keys = await db('deliveries').where({ state: 'pending' }).count({ n: '*' });
  if (Number(keys[0]?.n) > 0) left.push(`${keys[0]?.n} keys not delivered`);
  for (const queue of [queues.provisioning, queues.delivery]) {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    const busy = Object.entries(counts).filter(([, n]) => n > 0);
    if (busy.length > 0)
      left.push(`${queue.name} queue: ${busy.map(([s, n]) => `${n} ${s}`).join(', ')}`);
  }
  return left;
}

/**
 * Waits until `unfinished` is empty on two looks a second apart. Delayed retries are promoted
 * meanwhile (as an operator's "promote" on the queue dashboard would): the proof is that the
 * retries converge, not how long the backoff between them is.
 */
async function settle(
  label: string,
  ctx: TestContext,
  stream: StreamFile[],
  fleet: Fleet,
): Promise<number> {
  const queues = openQueues(ctx.redis, ctx.prefix);
  const started = Date.now();
  try {
    let quiet = 0;
    let looks = 0;
    let left: string[] = [];
    while (quiet < 2) {
      if (Date.now() - started > SETTLE_MS) {
        const tails = fleet.names.map((n) => `--- ${n}\n${fleet.tail(n)}`).join('\n');
        throw new Error(
          `not settled after ${SETTLE_MS} ms (${REPLAY}):\n${left.join('\n')}\n${tails}`,
        );
      }
      await sleep(1_000);
      await queues.provisioning.promoteJobs();
      await queues.delivery.promoteJobs();
      left = await unfinished(ctx, queues, stream);
      quiet = left.length === 0 ? quiet + 1 : 0;
      if (left.length > 0 && ++looks % 15 === 0) {
        console.info(
          `${label} still settling after ${Date.now() - started} ms: ${left.join('; ')}`,
        );
      }
    }
    return Date.now() - started;
  } finally {
    await queues.close();
  }
}

function stopOnFinish(fleet: Fleet): void {
  onTestFinished(() => fleet.stopAll(2_000));
}

function summary(name: string, outcome: RunOutcome): string {
  return `${name}: ${JSON.stringify(outcome.figures)}`;
}

describe(`crash and restart under SIGKILL (${REPLAY})`, () => {
  const chaosCtx = useTestContext(contextOptions);
  const cleanCtx = useTestContext(contextOptions);

  it(`three workers, a scheduler and the api killed ${MIN_KILLS}+ times end as one clean run`, async () => {
    onTestFailed(() => console.error(`crash-restart feeds failed, ${REPLAY}`));
    const random = seededRandom(SEED);
    const stream = feedStream(SEED, STREAM);

    const chaosFleet = new Fleet(await withApiPort(chaosCtx()));
    stopOnFinish(chaosFleet);
    chaosFleet.add('api', 'api');
    for (const n of [1, 2, 3]) chaosFleet.add(`worker-${n}`, 'worker');
    chaosFleet.add('scheduler', 'scheduler');
    const cleanFleet = new Fleet(await withApiPort(cleanCtx()));
    stopOnFinish(cleanFleet);
    cleanFleet.add('all', 'all');

    const started = Date.now();
    const cleanRun = (async () => {
      await playStream(cleanCtx(), stream);
      return {
        settledMs: await settle('clean run', cleanCtx(), stream, cleanFleet),
        atMs: Date.now() - started,
      };
    })();
    const chaosStream = playStream(chaosCtx(), stream);
    const kills = await chaos(chaosFleet, random, chaosStream);
    const chaosSettleMs = await settle('chaos run', chaosCtx(), stream, chaosFleet);
    const chaosDoneMs = Date.now() - started;
    const clean = await cleanRun;

    const [chaosOutcome, cleanOutcome] = [
      await readOutcome(chaosCtx()),
      await readOutcome(cleanCtx()),
    ];
    const landed = kills.filter((k) => k.landed);
    const perName = Object.fromEntries(
      chaosFleet.names.map((n) => [n, landed.filter((k) => k.name === n).length]),
    );
    console.info(
      `crash-restart feeds (${REPLAY}): ${landed.length} kills ${JSON.stringify(perName)} over ${kills.at(-1)?.atMs} ms, settled ${chaosSettleMs} ms after (done at ${chaosDoneMs} ms; the clean run at ${clean.atMs} ms, ${clean.settledMs} ms after its last file)\n${summary('chaos', chaosOutcome)}\n${summary('clean', cleanOutcome)}`,
    );

    expect(landed.length).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(cleanOutcome.state.subscribers.length).toBeGreaterThan(STREAM.customers * 3 * 0.9);
    expect(cleanFleet.unexpectedExits, 'the clean process exited on its own').toEqual([]);
    expect(chaosFleet.unexpectedExits, `processes that died on their own (${REPLAY})`).toEqual([]);
    expect(cleanOutcome.integrity, 'clean run integrity').toEqual([]);
    expect(chaosOutcome.integrity, `chaos run integrity (${REPLAY})`).toEqual([]);
    expect(
      differences(chaosOutcome.state, cleanOutcome.state),
      `chaos run against the clean one (${REPLAY})`,
    ).toBe('');
  }, 280_000);
});

/** Customers of each ISP in the month that closes: a full close page (2,000) and a part. */
const MONTH_END_CUSTOMERS = 2_500;
/** Attempts of one step before the proof gives up on it. */
const MAX_ATTEMPTS = 40;

/** The shipped ISPs with their invoice lines delivered with a checksum file and a done marker. */
function monthEndIsps(): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    MONTH_END_ISPS.map((id) => {
      const isp = shipped(id);
      isp.delivery = { mode: 'none' };
      isp.billing.outbox = { type: 'local', checksumFile: true, doneMarker: '.done' };
      return [id, isp];
    }),
  );
}

async function apiReady(configFile: string): Promise<void> {
  const { port } = parse(readFileSync(configFile, 'utf8')).http as { port: number };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`api on port ${port} not ready after 30 s`);
    await sleep(100);
  }
}

/** How many kills each step gets: 2 to 5 at random, topped up to at least MIN_KILLS. */
function killQuotas(random: () => number, steps: number): number[] {
  const quotas = Array.from({ length: steps }, () => 2 + Math.floor(random() * 4));
  for (let i = 0; quotas.reduce((a, b) => a + b, 0) < MIN_KILLS; i++) {
    quotas[i % steps] = (quotas[i % steps] as number) + 1;
  }
  return quotas;
}

describe(`month end under SIGKILL (${REPLAY})`, () => {
  const options = {
    deployment: contextOptions.deployment,
    isps: monthEndIsps(),
  };
  const chaosCtx = useTestContext(options);
  const cleanCtx = useTestContext(options);

  it(`close, vendor documents and invoice-line delivery killed ${MIN_KILLS}+ times deliver one set of files, byte-identical to a clean run`, async () => {
    onTestFailed(() => console.error(`crash-restart month end failed, ${REPLAY}`));
    onTestFinished(killStepsLeft);
    // The month before this one, closed with --force so the cutoff days need not have passed.
    const period = previousPeriod(periodOf(new Date(), 'Europe/Paris'));
    const files = {
      chaos: await withApiPort(chaosCtx()),
      clean: await withApiPort(cleanCtx()),
    };
    await seedActivatedMonth(chaosCtx(), SEED, period, MONTH_END_CUSTOMERS);
    await seedActivatedMonth(cleanCtx(), SEED, period, MONTH_END_CUSTOMERS);
    const chaosFleet = new Fleet(files.chaos);
    stopOnFinish(chaosFleet);
    chaosFleet.add('api', 'api');
    const cleanFleet = new Fleet(files.clean);
    stopOnFinish(cleanFleet);
    cleanFleet.add('api', 'api');

    const cleanIsps = monthEndSteps(cleanCtx(), files.clean, period);
    const clean = await monthEndUnderKills(cleanIsps, {
      fleet: cleanFleet,
      seed: SEED,
      quotas: cleanIsps.flatMap(() => [0, 0]),
      cleanMs: [],
      apiReady: () => apiReady(files.clean),
      maxAttempts: 1,
    });
    const cleanMs = cleanIsps
      .flatMap((isp) => [isp.close, isp.export])
      .map((step) => clean.attempts.find((a) => a.step === step.name)?.ms as number);
    const chaos = await monthEndUnderKills(monthEndSteps(chaosCtx(), files.chaos, period), {
      fleet: chaosFleet,
      seed: SEED,
      quotas: killQuotas(seededRandom(SEED ^ 0x2545f491), cleanMs.length),
      cleanMs,
      apiReady: () => apiReady(files.chaos),
      maxAttempts: MAX_ATTEMPTS,
    });
    await chaosFleet.stopAll();
    await cleanFleet.stopAll();

    const landed = chaos.attempts.filter((a) => a.landed);
    const at = (a: Attempt) =>
      `${a.step} @ ${a.plan?.at}${a.plan?.target === 'api' ? ' (api)' : ''}`;
    console.info(
      `crash-restart month end (${REPLAY}): ${landed.length} kills in ${chaos.attempts.length} attempts, clean steps ${cleanMs.join('/')} ms\n  ${landed.map(at).join('\n  ')}`,
    );
    const outputs = {
      chaos: await monthEndOutputs(chaosCtx(), period),
      clean: await monthEndOutputs(cleanCtx(), period),
    };
    expect(landed.length).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(
      chaos.unexplained.map((a) => `${at(a)}: exit ${a.code} ${a.stderr}`),
      REPLAY,
    ).toEqual([]);
    expect(chaosFleet.unexpectedExits, REPLAY).toEqual([]);
    expect(Object.keys(outputs.clean.files as object).length).toBeGreaterThanOrEqual(3 * 7);
    expect((outputs.clean.ratedLines as { count: number }).count).toBeGreaterThan(
      MONTH_END_CUSTOMERS * 3,
    );
    expect(
      outputs.chaos,
      `month-end outputs of the chaos run against the clean one (${REPLAY})`,
    ).toEqual(outputs.clean);
  }, 280_000);
});
