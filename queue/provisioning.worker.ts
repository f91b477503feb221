/**
 * The worker of the `provisioning` queue: sends one outbox batch to the subscription server and
 * records the answer on the connector side (connectors/provisioning/). What makes it safe to
 * run twice, crash anywhere or race another worker:
 *
 * - the server's idempotency keys make a resent command a replay with its first result;
 * - a replayed subscribe whose key the connector never recorded (the server committed, the
 *   connector crashed before its own commit) gets a fresh key by re-issue, so no key is lost;
 *   the re-issue is decided and recorded under the batch row lock, so two attempts of one batch
 *   at once cannot void each other's keys;
 * - a `deferred` command (an earlier version of its subscriber not applied yet) leaves the
 *   batch unsent and the job retried with backoff, which keeps a subscriber's commands in order;
 * - the delivery job is added after every commit that recorded keys (finished batch or not),
 *   again whenever a job meets a sent batch whose keys still wait, and by the delivery sweep
 *   (`sweepPendingDeliveries`) at start-up and on the scheduler's schedule.
 */
import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Histogram } from 'prom-client';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import {
  hasPendingDeliveries,
  loadBatch,
  markBatchFailed,
  noteAttempt,
  type StoredBatch,
} from '../connectors/provisioning/batch-store.js';
import {
  type DeliveryChannel,
  type IssuedKey,
  type RefusedCommand,
  type ReissueResult,
  recordBatchResults,
  type UnrecordedLicence,
} from '../connectors/provisioning/record-results.js';
import type { Vault } from '../connectors/vault.js';
import {
  type CommandResult,
  MAX_BATCH_COMMANDS,
  type WireCommand,
} from '../licensing/provisioning-wire.js';
import { decodeCommands, type ProvisioningCommand } from '../mappings/provisioning-command.js';
import type { Db } from '../platform/db.js';
import {
  ConfigError,
  InternalError,
  isRelaisError,
  isRetryable,
  TransientError,
} from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import { type Metrics, perRegistry } from '../platform/metrics.js';
import { queueDelivery, sweepPendingDeliveries } from './delivery.worker.js';
import { forQueue } from './job-errors.js';
import type { LicensingClient } from './licensing-client.js';
import { WORKER_METRICS } from './queue-metrics.js';
import {
  BACKOFF_STRATEGY,
  backoffDelayMs,
  type ProvisionBatchJob,
  QUEUE_NAMES,
  type Queues,
} from './queues.js';

/**
 * Batches a worker process has in flight at once. While one batch waits on the server, others
 * are being applied or recorded: on two cores a million subscribers went through at 9,859/s
 * with 3, 10,274 to 10,692/s with 4 and 10,706 to 11,125/s with 5 (docs/provisioning-worker.md).
 * Each batch in flight holds a connection of the server's pool for its transaction.
 */
export const PROVISIONING_CONCURRENCY = 5;

export interface ProvisioningWorkerDeps {
  config: RelaisConfig;
  /** The connector database. */
  db: Db;
  client: LicensingClient;
  vault: Vault;
  queues: Pick<Queues, 'delivery'>;
  log: Logger;
  metrics: Metrics;
  /** A blocking ioredis connection (maxRetriesPerRequest: null), the worker's own. */
  connection: Redis;
  prefix: string;
  /** Batches in flight at once; default {@link PROVISIONING_CONCURRENCY}. */
  concurrency?: number;
  now?: () => Date;
}

export interface ProvisioningWorker {
  /** The BullMQ worker, for the readiness check of this process. */
  readonly worker: Worker<ProvisionBatchJob, BatchSummary>;
  close(): Promise<void>;
}

/** What a job returns (kept by BullMQ with the completed job; counts only). */
export interface BatchSummary {
  batchId: number;
  status: 'sent' | 'already-sent';
  applied?: number;
  rejected?: number;
  deliveries?: number;
}

interface WorkerMetrics {
  batches: Counter<'isp' | 'result'>;
  commands: Counter<'isp' | 'outcome'>;
  failures: Counter<'isp' | 'code' | 'result'>;
  rejections: Counter<'isp' | 'code'>;
  latency: Histogram<'isp' | 'result'>;
}

/**
 * Seconds from a batch written to the outbox to its result recorded: sub-second when all is
 * well, minutes while the server is slow or a subscriber's earlier version waits, hours to a
 * day while it is down (the retry budget is about 24.5 hours).
 */
const LATENCY_BUCKETS_S = [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/** The worker's metrics, registered once per registry (two workers in one process share them). */
export const provisioningWorkerMetrics = perRegistry(
  (registry: Metrics): WorkerMetrics => ({
    batches: new Counter({
      name: 'relais_provisioning_batches_total',
      help: 'Provisioning batch attempts by result: sent, deferred, retried (transient), failed.',
      labelNames: ['isp', 'result'],
      registers: [registry],
    }),
    commands: new Counter({
      name: 'relais_provisioning_command_results_total',
      help: 'Command results the provisioning worker received, by outcome: applied, replayed, rejected, deferred.',
      labelNames: ['isp', 'outcome'],
      registers: [registry],
    }),
    failures: new Counter({
      name: 'relais_provisioning_batch_failures_total',
      help: 'Provisioning batch attempts that did not send the batch, by error code and result: retried (transient) or failed (for good).',
      labelNames: ['isp', 'code', 'result'],
      registers: [registry],
    }),
    rejections: new Counter({
      name: 'relais_provisioning_rejections_total',
      help: 'Commands the subscription server rejected for good, by error code.',
      labelNames: ['isp', 'code'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'relais_provisioning_latency_seconds',
      help: 'Time from a provisioning batch written to the outbox to its result recorded (sent, or failed for good).',
      labelNames: ['isp', 'result'],
      buckets: LATENCY_BUCKETS_S,
      registers: [registry],
    }),
  }),
);

/** Seconds since the batch was written; the database stamped it, so real time, never the demo's. */
function secondsSince(createdAt: Date): number {
  return Math.max(0, (Date.now() - createdAt.getTime()) / 1000);
}

function toWire(command: ProvisioningCommand): WireCommand {
  const wire: WireCommand = {
    key: command.key,
    kind: command.kind,
    subscriberId: command.subscriberId,
    version: command.version,
    modules: command.modules,
    status: command.status,
    effectiveAt: command.effectiveAt,
  };
  // The offer travels only when the intake recorded one (it picks the device limit).
  const offer = (command as { offer?: unknown }).offer;
  if (typeof offer === 'string') wire.offer = offer;
  return wire;
}

function channelOf(isp: IspConfig): DeliveryChannel {
  return isp.delivery.mode;
}

function errorText(err: unknown): string {
  return isRelaisError(err) ? `${err.code}: ${err.message}` : String((err as Error)?.message);
}

/** How long BullMQ would wait before the next attempt of `job`, per its backoff option. */
function plannedBackoffMs(job: Job): number {
  return backoffDelayMs(job.opts.backoff, job.attemptsMade + 1);
}

class BatchRun {
  private readonly m: WorkerMetrics;
  /** Errors this run counted already (in `fail` or as a deferral), so the processor does not. */
  private readonly counted = new WeakSet<object>();

  constructor(
    private readonly deps: ProvisioningWorkerDeps,
    metrics: WorkerMetrics,
  ) {
    this.m = metrics;
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  /** Whether the metrics already hold the attempt `err` ended. */
  isCounted(err: unknown): boolean {
    return typeof err === 'object' && err !== null && this.counted.has(err);
  }

  private countedError<E>(err: E): E {
    if (typeof err === 'object' && err !== null) this.counted.add(err);
    return err;
  }

  /** Adds the delivery job of a batch with keys to hand over (deduplicated per batch). */
  async queueDelivery(ispId: string, batchId: number): Promise<void> {
    await queueDelivery(this.deps.queues, ispId, batchId);
  }

  async run(job: Job<ProvisionBatchJob>): Promise<BatchSummary> {
    const { db, config, client } = this.deps;
    const { ispId, batchId } = job.data;
    const log = this.deps.log.child({ isp: ispId, batchId, jobId: job.id });
    const batch = await loadBatch(db, batchId);
    if (!batch) throw new InternalError('INTERNAL', `no provisioning batch ${batchId}`);
    if (batch.ispId !== ispId) {
      throw new InternalError('INTERNAL', `provisioning batch ${batchId} is not of ISP ${ispId}`);
    }
    const isp = config.isps.get(ispId);
    if (!isp) throw new ConfigError('ISP_UNKNOWN', `no ISP ${ispId} in this deployment`);
    const channel = channelOf(isp);

    // A failed batch is sent again only when a person retries its job (the failed job keeps
    // its id, so nothing else adds it again): they fixed the cause, so it is not refused here.
    if (batch.state === 'sent') {
      // A crash between the commit and the delivery job lands here on the job's retry.
      if (channel !== 'none' && (await hasPendingDeliveries(db, batchId))) {
        await this.queueDelivery(ispId, batchId);
      }
      return { batchId, status: 'already-sent' };
    }

    const startedMs = performance.now();
    const commands = decodeCommands(batch.commands).map(toWire);
    const results: CommandResult[] = [];
    let failure: unknown;
    for (let i = 0; i < commands.length && failure === undefined; i += MAX_BATCH_COMMANDS) {
      const chunk = commands.slice(i, i + MAX_BATCH_COMMANDS);
      try {
        results.push(...(await client.sendBatch(ispId, chunk)).results);
      } catch (err) {
        failure = err;
      }
    }
    if (failure !== undefined && results.length === 0) {
      return this.fail(job, batch, failure, log);
    }

    const sentMs = performance.now();
    const sent = commands.slice(0, results.length);
    const issued: IssuedKey[] = [];
    const refused: RefusedCommand[] = [];
    const unrecorded = new Map<string, UnrecordedLicence>();
    let applied = 0;
    let deferred = 0;
    let deferredCode = '';
    for (let i = 0; i < results.length; i++) {
      const result = results[i] as CommandResult;
      const command = sent[i] as WireCommand;
      if (result.key !== command.key) {
        throw new InternalError(
          'INTERNAL',
          `result ${i} of batch ${batchId} is for ${result.key}, not ${command.key}`,
        );
      }
      this.m.commands.inc({ isp: ispId, outcome: result.outcome });
      if (result.outcome === 'deferred') {
        deferred++;
        deferredCode ||= result.code ?? 'PROVISIONING_OUT_OF_ORDER';
        continue;
      }
      if (result.outcome === 'rejected') {
        this.m.rejections.inc({ isp: ispId, code: result.code ?? 'PROVISIONING_REJECTED' });
        refused.push({
          commandKey: command.key,
          subscriberId: command.subscriberId,
          code: result.code ?? 'PROVISIONING_REJECTED',
          message: result.message ?? 'rejected by the licensing server',
        });
        continue;
      }
      applied++;
      const licence = result.licence;
      if (command.kind !== 'subscribe' || !licence) continue;
      if (licence.key !== undefined) {
        issued.push({
          subscriberId: command.subscriberId,
          licenceId: licence.licenceId,
          version: command.version,
          key: licence.key,
          downloadUrl: licence.downloadUrl,
          downloadExpiresAt: licence.downloadExpiresAt,
        });
      } else if (result.outcome === 'replayed') {
        // No key in a replay: fine if recorded before, lost if the connector crashed after the
        // server's commit. (A fresh answer without a key is an activated licence coming back:
        // its customer already holds the key.)
        // One re-issue per licence, of its highest version: a second would void the first.
        const held = unrecorded.get(licence.licenceId);
        if (!held || command.version > held.version) {
          unrecorded.set(licence.licenceId, {
            subscriberId: command.subscriberId,
            licenceId: licence.licenceId,
            commandKey: command.key,
            version: command.version,
          });
        }
      }
    }
    // A licence that got a fresh key in this attempt holds a key newer than the lost one
    // (the server applies a subscriber's versions in order): re-issuing would void it.
    for (const key of issued) unrecorded.delete(key.licenceId);

    const isComplete = failure === undefined && deferred === 0;
    const pendingReason =
      failure !== undefined
        ? errorText(failure)
        : `${deferred} of ${commands.length} commands deferred (${deferredCode})`;
    const recorded = await recordBatchResults(
      db,
      this.deps.vault,
      {
        ispId,
        batchId,
        channel,
        issued,
        refused,
        applied,
        isComplete,
        pendingReason,
        unrecorded: [...unrecorded.values()],
        reissue: (licence) => this.reissue(ispId, licence, log),
      },
      this.now(),
    );
    if (recorded.wasFinal) {
      if (channel !== 'none' && (await hasPendingDeliveries(db, batchId))) {
        await this.queueDelivery(ispId, batchId);
      }
      return { batchId, status: 'already-sent' };
    }
    // Keys recorded now or by an earlier attempt (whose add a crash may have lost) are handed
    // over now, whatever happens to the rest of the batch (a later chunk refused, a retry, a
    // deferral): nothing else would queue them until the batch ends.
    if (
      channel !== 'none' &&
      (recorded.deliveries > 0 || (await hasPendingDeliveries(db, batchId)))
    ) {
      await this.queueDelivery(ispId, batchId);
    }
    failure ??= recorded.failure;
    if (failure !== undefined) return this.fail(job, batch, failure, log, true);
    if (deferred > 0) {
      this.m.batches.inc({ isp: ispId, result: 'deferred' });
      log.warn(
        { deferred, code: deferredCode, attempt: job.attemptsMade + 1 },
        'provisioning batch deferred, retrying',
      );
      throw this.countedError(
        new TransientError(
          'PROVISIONING_OUT_OF_ORDER',
          `${deferred} commands of batch ${batchId} wait for earlier versions of their subscribers`,
          { batchId, deferred },
        ),
      );
    }

    this.m.batches.inc({ isp: ispId, result: 'sent' });
    this.m.latency.observe({ isp: ispId, result: 'sent' }, secondsSince(batch.createdAt));
    log.info(
      {
        commands: commands.length,
        applied,
        rejected: refused.length,
        deliveries: recorded.deliveries,
        reissued: recorded.reissued,
        sendMs: Math.round(sentMs - startedMs),
        recordMs: Math.round(performance.now() - sentMs),
      },
      'provisioning batch sent',
    );
    return {
      batchId,
      status: 'sent',
      applied,
      rejected: refused.length,
      deliveries: recorded.deliveries,
    };
  }

  /**
   * A new key for a subscribe the server applied earlier but the connector never recorded;
   * called by `recordBatchResults` under the batch lock, only for a licence with no delivery
   * row in the batch. Throws a retryable failure; permanent refusals become rejections for a
   * person to read.
   */
  private async reissue(
    ispId: string,
    candidate: UnrecordedLicence,
    log: Logger,
  ): Promise<ReissueResult> {
    try {
      const licence = await this.deps.client.reissueKey(ispId, candidate.licenceId);
      log.warn({ licenceId: candidate.licenceId }, 'unrecorded key re-issued');
      return {
        issued: {
          subscriberId: candidate.subscriberId,
          licenceId: licence.licenceId ?? candidate.licenceId,
          version: candidate.version,
          key: licence.key as string,
          downloadUrl: licence.downloadUrl,
          downloadExpiresAt: licence.downloadExpiresAt,
        },
      };
    } catch (err) {
      if (isRetryable(err)) throw err;
      // Activated since: the customer holds the key, there is nothing left to hand over.
      if (isRelaisError(err) && err.code === 'KEY_ALREADY_ACTIVATED')
        return { skipped: 'activated' };
      return {
        refused: {
          commandKey: candidate.commandKey,
          subscriberId: candidate.subscriberId,
          code: isRelaisError(err) ? err.code : 'INTERNAL',
          message: `key never recorded and re-issue refused: ${(err as Error).message}`,
        },
      };
    }
  }

  /** Ends an attempt that could not finish: permanent → batch failed; transient → retried. */
  private async fail(
    job: Job<ProvisionBatchJob>,
    batch: StoredBatch,
    err: unknown,
    log: Logger,
    isAttemptNoted = false,
  ): Promise<never> {
    const { ispId, batchId } = job.data;
    const attemptsSoFar = batch.attempts;
    const code = isRelaisError(err) ? err.code : 'INTERNAL';
    if (!isRetryable(err)) {
      await markBatchFailed(this.deps.db, ispId, batchId, errorText(err));
      this.m.batches.inc({ isp: ispId, result: 'failed' });
      this.m.failures.inc({ isp: ispId, code, result: 'failed' });
      this.m.latency.observe({ isp: ispId, result: 'failed' }, secondsSince(batch.createdAt));
      log.error({ err }, 'provisioning batch refused for good');
      throw this.countedError(forQueue(err)); // marked: the processor passes it on as is
    }
    if (!isAttemptNoted) await noteAttempt(this.deps.db, batchId, errorText(err));
    this.m.batches.inc({ isp: ispId, result: 'retried' });
    this.m.failures.inc({ isp: ispId, code, result: 'retried' });
    log.warn({ err, attempt: job.attemptsMade + 1 }, 'provisioning batch not sent, retrying');
    const retryAfterMs = isRelaisError(err) ? err.context.retryAfterMs : undefined;
    const maxAttempts = job.opts.attempts ?? 1;
    // The server asked for a longer pause than the backoff would give: wait as asked. Bounded
    // by the attempts the database counts, since a delayed job does not use up its attempts.
    if (
      typeof retryAfterMs === 'number' &&
      attemptsSoFar + 1 < maxAttempts &&
      retryAfterMs > plannedBackoffMs(job) &&
      job.token !== undefined
    ) {
      await job.moveToDelayed(Date.now() + retryAfterMs, job.token);
      throw new DelayedError();
    }
    throw this.countedError(err);
  }
}

export function startProvisioningWorker(deps: ProvisioningWorkerDeps): ProvisioningWorker {
  const metrics = provisioningWorkerMetrics(deps.metrics);
  const run = new BatchRun(deps, metrics);
  const worker = new Worker<ProvisionBatchJob, BatchSummary>(
    QUEUE_NAMES.provisioning,
    async (job, token) => {
      if (token !== undefined) job.token = token;
      try {
        return await run.run(job);
      } catch (err) {
        if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
        if (!run.isCounted(err)) {
          const result = isRetryable(err) ? 'retried' : 'failed';
          const code = isRelaisError(err) ? err.code : 'INTERNAL';
          metrics.failures.inc({ isp: job.data.ispId, code, result });
        }
        // A bug or a config problem: the batch shows why, for the person who retries it.
        if (!isRetryable(err)) {
          await markBatchFailed(deps.db, job.data.ispId, job.data.batchId, errorText(err)).catch(
            () => {},
          );
        }
        throw forQueue(err);
      }
    },
    {
      connection: deps.connection,
      prefix: deps.prefix,
      concurrency: deps.concurrency ?? PROVISIONING_CONCURRENCY,
      settings: { backoffStrategy: BACKOFF_STRATEGY },
      metrics: WORKER_METRICS,
    },
  );
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade < (job.opts.attempts ?? 1) && !(err instanceof UnrecoverableError))
      return;
    deps.log.error(
      { err, jobId: job?.id, isp: job?.data.ispId, batchId: job?.data.batchId },
      'provisioning job failed for good',
    );
  });
  worker.on('error', (err) => deps.log.error({ err }, 'provisioning worker error'));
  sweepPendingDeliveries(deps).then(
    (added) => {
      if (added > 0) deps.log.info({ batches: added }, 'pending deliveries queued again');
    },
    (err) => deps.log.warn({ err }, 'pending deliveries not queued again'),
  );
  return {
    worker,
    async close() {
      await worker.close();
    },
  };
}
