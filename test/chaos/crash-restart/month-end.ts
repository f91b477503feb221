/**
 * Month end under SIGKILL, the second crash-and-restart proof: the same activated month seeded
 * into two test contexts (ids and all, so their files can be compared byte for byte), then for
 * each ISP the operator's two commands, `relais period close --force` (rate, freeze, vendor
 * documents) and `relais billing export` (invoice lines to the outbox, with a checksum file
 * and a done marker), run as real processes. The chaos run kills them at random points and
 * runs them again until they succeed; the api that streams the rated lines to the export is
 * killed now and then too. The three ISPs run side by side, their closes in a fixed order.
 *
 * A kill point is drawn per attempt among the moments still ahead of it: a random time after
 * start (within 80 % of that step's clean duration), or just after a step shows in the
 * database or on disk (the close row, the first page frozen, the period closed, the invoice
 * numbered, its file written; the local file being written, written, the delivery ledger row,
 * the upload done, the file under its final name, its checksum file). The process is watched
 * every few milliseconds, so the kill lands a little after the step, wherever the process has
 * got to by then: a timer from outside cannot aim at one instruction, which is what the
 * in-process crash hooks of close.int.test.ts and deliver.int.test.ts are for.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { syncIsps } from '../../../connectors/isp-registry.js';
import { CROCKFORD_ALPHABET } from '../../../platform/ids.js';
import { silentLogger } from '../../../platform/logger.js';
import { periodBounds } from '../../../platform/zoned-time.js';
import { refOf, seededRandom } from '../../generators/isp-exports.js';
import { collect, spawnCli } from '../../harness/cli.js';
import type { TestContext } from '../../harness/context.js';
import type { Fleet } from './fleet.js';

export const MONTH_END_ISPS = ['demo-fai', 'alpha-telecom', 'bretagne-net'] as const;
export type MonthEndIsp = (typeof MONTH_END_ISPS)[number];

const DAY_MS = 86_400_000;
const MODULES = ['antivirus', 'firewall', 'parental-control', 'backup'] as const;

/** A deterministic id of the shape `newId` makes (prefix, 26 Crockford base32 characters). */
function seededId(prefix: string, random: () => number): string {
  let out = `${prefix}_`;
  for (let i = 0; i < 26; i++) out += CROCKFORD_ALPHABET[Math.floor(random() * 32)];
  return out;
}

/**
 * `perIsp` customers of each ISP provisioned early in `period`, most activated a few days
 * later; some suspended, cancelled or changing modules later in the month; the same rows,
 * ids and ledger order in every context seeded with the same `seed`.
 */
export async function seedActivatedMonth(
  ctx: TestContext,
  seed: number,
  period: string,
  perIsp: number,
): Promise<void> {
  await syncIsps(ctx.connectorDb, ctx.config.isps, silentLogger());
  const random = seededRandom(seed);
  for (const ispId of MONTH_END_ISPS) {
    const { start } = periodBounds(period, 'Europe/Paris');
    const day = (d: number, hours = 10) =>
      new Date(start.getTime() + d * DAY_MS + hours * 3_600_000);
    const subscriptions: Record<string, unknown>[] = [];
    const licences: Record<string, unknown>[] = [];
    const events: Record<string, unknown>[] = [];
    const subscribers: Record<string, unknown>[] = [];
    for (let i = 1; i <= perIsp; i++) {
      const subscriberId = seededId('sub', random);
      const licenceId = seededId('lic', random);
      let modules = ['antivirus', ...MODULES.slice(1).filter(() => random() < 0.3)];
      let status = 'active';
      const provisioned = day(Math.floor(random() * 10));
      const activated =
        random() < 0.9 ? new Date(provisioned.getTime() + Math.floor(random() * 5) * DAY_MS) : null;
      const base = { isp_id: ispId, subscriber_id: subscriberId, licence_id: licenceId };
      const event = (type: string, at: Date, data: unknown = null, key: string | null = null) =>
        events.push({
          ...base,
          type,
          data: data === null ? null : JSON.stringify(data),
          idempotency_key: key,
          occurred_at: at,
          recorded_at: at,
        });
      event('provisioned', provisioned, { modules, status: 'active' });
      if (activated) event('activated', activated, null, `activated:${licenceId}`);
      const roll = random();
      if (roll < 0.06) {
        modules = [...modules, 'backup'].filter((m, k, all) => all.indexOf(m) === k);
        event('modules-changed', day(12), { modules });
      } else if (roll < 0.14) {
        status = 'suspended';
        event('suspended', day(15 + Math.floor(random() * 10)));
      } else if (roll < 0.18) {
        status = 'cancelled';
        event('cancelled', day(20));
      }
      subscriptions.push({
        subscriber_id: subscriberId,
        isp_id: ispId,
        status,
        modules: modules.join(','),
        version: 1,
        created_at: provisioned,
        updated_at: provisioned,
      });
      licences.push({
        id: licenceId,
        subscriber_id: subscriberId,
        isp_id: ispId,
        key_hash: createHash('sha256').update(licenceId).digest(),
        status: 'valid',
        valid_until: day(40),
        activated_at: activated,
        period,
        device_limit: 1,
        link_generation: 1,
        created_at: provisioned,
        updated_at: provisioned,
      });
      subscribers.push({
        isp_id: ispId,
        customer_ref: refOf(i),
        subscriber_id: subscriberId,
        status,
        offer: null,
        modules: modules.join(','),
        version: 1,
        created_at: provisioned,
        updated_at: provisioned,
      });
    }
    await ctx.licensingDb.batchInsert('subscriptions', subscriptions, 1000);
    await ctx.licensingDb.batchInsert('licences', licences, 1000);
    await ctx.licensingDb.batchInsert('subscription_events', events, 1000);
    await ctx.connectorDb.batchInsert('subscribers', subscribers, 1000);
  }
}

/** One operator command of the month end, and the moments of it a kill may aim at. */
export interface MonthEndStep {
  name: string;
  args: string[];
  /** Whether the command talks to the api (the export streams the rated lines from it). */
  usesApi: boolean;
  /** Steps of the command as they show from outside; true once reached. */
  moments: Record<string, () => Promise<boolean>>;
}

function vendorDir(ctx: TestContext, ispId: string, period: string): string {
  return join(ctx.config.deployment.paths.dataDir, 'vendor-invoices', ispId, period);
}

function ispDir(ctx: TestContext, ispId: string, ...sub: string[]): string {
  return join(ctx.config.isps.get(ispId)?.workDir as string, ...sub);
}

function listed(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** An ISP's two month-end commands, in the order an operator runs them. */
export interface IspMonthEnd {
  ispId: MonthEndIsp;
  close: MonthEndStep;
  export: MonthEndStep;
}

export function monthEndSteps(ctx: TestContext, configFile: string, period: string): IspMonthEnd[] {
  const lic = ctx.licensingDb;
  const con = ctx.connectorDb;
  return MONTH_END_ISPS.map((ispId): IspMonthEnd => {
    const close = () => lic('billing_closes').where({ isp_id: ispId, period }).first();
    const delivery = () => con('billing_deliveries').where({ isp_id: ispId, period }).first();
    const local = ispDir(ctx, ispId, 'billing', period);
    const outbox = ispDir(ctx, ispId, 'outbox');
    const common = ['--isp', ispId, '--period', period, '--config', configFile];
    const isInvoiceFile = (n: string) => !/\.(part|sha256|done)$/.test(n);
    return {
      ispId,
      close: {
        name: `${ispId} close`,
        args: ['period', 'close', '--force', ...common],
        usesApi: false,
        moments: {
          'close begun': async () => (await close()) !== undefined,
          'first page frozen': async () => (await close())?.cursor != null,
          'period closed': async () => (await close())?.status === 'closed',
          'invoice numbered': async () =>
            (await lic('billing_documents').where({ isp_id: ispId, period }).first()) !== undefined,
          'invoice written': async () =>
            listed(vendorDir(ctx, ispId, period)).includes('invoice.xml'),
        },
      },
      export: {
        name: `${ispId} export`,
        args: ['billing', 'export', ...common],
        usesApi: true,
        moments: {
          'lines being written': async () => listed(local).some((n) => n.endsWith('.part')),
          'lines written': async () => listed(local).some(isInvoiceFile),
          'delivery recorded': async () => (await delivery()) !== undefined,
          'upload verified': async () => (await delivery())?.status === 'uploaded',
          'file in place': async () => listed(outbox).some(isInvoiceFile),
          'checksum in place': async () => listed(outbox).some((n) => n.endsWith('.sha256')),
        },
      },
    };
  });
}

export interface KillPlan {
  /** A moment name of the step, or `after <ms> ms`. */
  at: string;
  /** Whom to kill then: the step's process, or the api it talks to. */
  target: 'step' | 'api';
}

export interface Attempt {
  step: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stderr: string;
  plan?: KillPlan;
  /** Whether the planned kill hit a running process (the step died of it, or the api was up). */
  landed: boolean;
  startedAt: number;
  endedAt: number;
}

const POLL_MS = 4;
/** Step processes running now, so a failing test still kills every one (`killStepsLeft`). */
const running = new Set<ChildProcess>();

export function killStepsLeft(): void {
  for (const child of running) child.kill('SIGKILL');
}

/**
 * Runs `step` once with `plan` armed: when its moment comes (checked every few ms) the target
 * is SIGKILLed (`killApi` kills the api and starts it again, as a supervisor would).
 */
async function runStepWithKill(
  step: MonthEndStep,
  plan: KillPlan | undefined,
  killApi: () => Promise<boolean>,
): Promise<Attempt> {
  const startedAt = Date.now();
  const child = spawnCli(step.args);
  running.add(child);
  const done = collect(child, 120_000).finally(() => running.delete(child));
  let landed = false;
  if (plan) {
    const reached = momentProbe(step, plan.at, startedAt);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      if (await reached()) {
        landed =
          plan.target === 'step'
            ? child.exitCode === null && child.kill('SIGKILL')
            : await killApi();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  const result = await done;
  const endedAt = Date.now();
  // A kill sent as the step exited by itself did not land.
  if (plan?.target === 'step') landed = landed && result.signal === 'SIGKILL';
  return {
    step: step.name,
    plan,
    landed,
    code: result.code,
    signal: result.signal,
    ms: endedAt - startedAt,
    stderr: result.stderr.slice(0, 2_000),
    startedAt,
    endedAt,
  };
}

function momentProbe(step: MonthEndStep, at: string, started: number): () => Promise<boolean> {
  const timed = /^after (\d+) ms$/.exec(at);
  if (timed) return async () => Date.now() - started >= Number(timed[1]);
  const probe = step.moments[at];
  if (!probe) throw new Error(`no moment ${at} in ${step.name}`);
  return probe;
}

/**
 * A kill point still ahead of `step` (a moment not reached yet, or a time within 80 % of the
 * step's duration in the clean run, or of its last success here when shorter), aimed at the
 * step or, for the export, now and then the api.
 */
async function drawPlan(
  random: () => number,
  step: MonthEndStep,
  durationMs: number,
): Promise<KillPlan> {
  const ahead: string[] = [];
  for (const [name, reached] of Object.entries(step.moments))
    if (!(await reached())) ahead.push(name);
  const choice = Math.floor(random() * (ahead.length + 1));
  const at = ahead[choice] ?? `after ${Math.floor(random() * 0.8 * durationMs)} ms`;
  return { at, target: step.usesApi && random() < 0.3 ? 'api' : 'step' };
}

export interface MonthEndChaosOptions {
  fleet: Fleet;
  seed: number;
  /** Kills planned per step, in the order of `isps` (close, export, close, export, …). */
  quotas: number[];
  /** Duration of each step in the clean run, same order. */
  cleanMs: number[];
  apiReady: () => Promise<void>;
  maxAttempts: number;
}

export interface MonthEndChaos {
  attempts: Attempt[];
  /** Attempts that failed with neither their own kill nor an api kill to explain it. */
  unexplained: Attempt[];
}

/**
 * Every ISP's close then export, each run again until it has succeeded and used its planned
 * kills. The ISPs run side by side, but their closes one after another in the clean run's order, since
 * invoice numbers come from one sequence per seller. Each ISP draws from its own seeded
 * random, so a replay plans the same kills whatever the timing.
 */
export async function monthEndUnderKills(
  isps: readonly IspMonthEnd[],
  options: MonthEndChaosOptions,
): Promise<MonthEndChaos> {
  const attempts: Attempt[] = [];
  const apiKills: number[] = [];
  let apiTurn = Promise.resolve(false);
  const killApi = () => {
    apiTurn = apiTurn.then(async () => {
      apiKills.push(Date.now());
      const landed = await options.fleet.kill('api');
      if (!options.fleet.isRunning('api')) options.fleet.restart('api');
      return landed;
    });
    return apiTurn;
  };

  /**
   * Runs `step` until it has used its kills and its last run succeeded: a kill after a success
   * hits a rerun (an operator running it again), which rewrites the same files and must
   * change nothing; a killed run is always followed by another, as an operator would.
   */
  const untilDone = async (step: MonthEndStep, index: number, random: () => number) => {
    let left = options.quotas[index] as number;
    let bound = options.cleanMs[index] as number;
    let succeeded = false;
    for (let n = 1; !succeeded || left > 0; n++) {
      if (n > options.maxAttempts) {
        const last = attempts.filter((a) => a.step === step.name).at(-1);
        throw new Error(
          `${step.name}: ${options.maxAttempts} attempts without success; the last one: exit ${last?.code} ${last?.signal ?? ''} ${last?.stderr}`,
        );
      }
      if (step.usesApi) await options.apiReady();
      const plan = left > 0 ? await drawPlan(random, step, bound) : undefined;
      const attempt = await runStepWithKill(step, plan, killApi);
      attempts.push(attempt);
      if (attempt.landed) left--;
      succeeded = attempt.code === 0;
      if (succeeded) bound = Math.min(bound, attempt.ms);
    }
  };

  let closesBefore = Promise.resolve();
  const chains = isps.map(async (isp, i) => {
    const random = seededRandom(options.seed + i);
    const turn = closesBefore;
    let closed = () => {};
    closesBefore = new Promise((resolve) => {
      closed = resolve;
    });
    try {
      await turn;
      await untilDone(isp.close, 2 * i, random);
    } finally {
      closed();
    }
    await untilDone(isp.export, 2 * i + 1, random);
  });
  const settled = await Promise.allSettled(chains);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;

  const apiKilledDuring = (a: Attempt) => apiKills.some((t) => t >= a.startedAt && t <= a.endedAt);
  const unexplained = attempts.filter(
    (a) => a.code !== 0 && !(a.landed && a.plan?.target === 'step') && !apiKilledDuring(a),
  );
  return { attempts, unexplained };
}

/** Every month-end output of a context, as name → SHA-256, and the ledgers, for comparison. */
export async function monthEndOutputs(
  ctx: TestContext,
  period: string,
): Promise<Record<string, unknown>> {
  const files: Record<string, string> = {};
  const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
  for (const ispId of MONTH_END_ISPS) {
    const dirs = {
      vendor: vendorDir(ctx, ispId, period),
      local: ispDir(ctx, ispId, 'billing', period),
      outbox: ispDir(ctx, ispId, 'outbox'),
    };
    for (const [kind, dir] of Object.entries(dirs)) {
      for (const name of listed(dir)) files[`${ispId} ${kind} ${name}`] = digest(join(dir, name));
    }
  }
  const lic = ctx.licensingDb;
  const closes = await lic('billing_closes')
    .orderBy(['isp_id', 'period'])
    .select('isp_id', 'period', 'status', 'line_count', 'summary', 'cursor');
  const documents = await lic('billing_documents')
    .orderBy(['isp_id', 'period', 'type'])
    .select('isp_id', 'period', 'type', 'number', 'issue_date', 'model_sha256');
  const lines = await lic('rated_lines')
    .orderBy(['isp_id', 'period', 'line_id'])
    .select('isp_id', 'line_id', 'kind', 'days', 'quantity', 'amount', 'activation_event_id');
  const deliveries = await ctx
    .connectorDb('billing_deliveries')
    .orderBy(['isp_id', 'period', 'file_name'])
    .select('isp_id', 'period', 'file_name', 'sha256', 'size_bytes', 'status', 'target');
  return {
    files,
    closes,
    documents,
    ratedLines: {
      count: lines.length,
      sha256: createHash('sha256').update(JSON.stringify(lines)).digest('hex'),
    },
    deliveries: deliveries.map((d) => ({
      ...d,
      target: String(d.target).replace(ctx.dir, '<dir>'),
    })),
  };
}
