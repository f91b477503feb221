/**
 * The worker of the `delivery` queue: hands the keys of one sent provisioning batch to the
 * customers, by e-mail through the ISP's relay or in a return file for the ISP, then tells the
 * subscription server which keys were handed over.
 *
 * Handing over and reporting are separate steps with separate records (`delivered_at`,
 * `reported_at`): a report that fails never undoes a delivery. The job is retried for it, and
 * any later run for the same ISP reports what is still unreported, so a delivery is reported at
 * least once even if this job runs out of attempts. The server records a report once per
 * licence, so repeats are harmless. A report the server refuses for good (a licence it does not
 * know) is split row by row, so one bad row never holds back the ISP's other reports.
 *
 * Jobs are added per batch with BullMQ deduplication instead of a fixed job id: while a job of
 * the batch waits or retries, an add is a no-op; once it finished (completed, or failed after a
 * day of retries), the next add (`queueDelivery`, or the periodic `sweepPendingDeliveries`)
 * starts a new one, so pending keys always get a job without a person.
 */
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter } from 'prom-client';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import {
  createMailer,
  type DeliveredKey,
  deliverBatchByEmail,
  type EmailBatchResult,
  type Mailer,
} from '../connectors/delivery/email.js';
import { deliverByReturnFile } from '../connectors/delivery/return-file.js';
import { loadTemplates } from '../connectors/delivery/templates.js';
import { batchesWithPendingDeliveries } from '../connectors/provisioning/batch-store.js';
import type { Vault } from '../connectors/vault.js';
import { MAX_BATCH_COMMANDS } from '../licensing/provisioning-wire.js';
import type { Db } from '../platform/db.js';
import { ConfigError, InternalError, isRelaisError, isRetryable } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { forQueue } from './job-errors.js';
import { WORKER_METRICS } from './queue-metrics.js';
import {
  BACKOFF_STRATEGY,
  type DeliverBatchJob,
  deliveryJobOptions,
  JOB_NAMES,
  QUEUE_NAMES,
  type Queues,
} from './queues.js';

export type { DeliveredKey } from '../connectors/delivery/email.js';

export interface DeliveryWorkerDeps {
  config: RelaisConfig;
  /** The connector database. */
  db: Db;
  vault: Vault;
  log: Logger;
  metrics: Metrics;
  connection: Redis;
  prefix: string;
  /** Tells the subscription server (`POST /v1/provisioning/deliveries`); at most 1,000 a call. */
  report: (ispId: string, delivered: DeliveredKey[]) => Promise<void>;
  /** Batches handled at once by this process; default 2. */
  concurrency?: number;
  now?: () => Date;
}

export interface DeliveryWorker {
  /** The BullMQ worker, for the readiness check of this process. */
  readonly worker: Worker<DeliverBatchJob, DeliverySummary>;
  /** Stops taking jobs, waits for the running ones, then closes every SMTP pool. */
  close(): Promise<void>;
}

export interface DeliverySummary {
  batchId: number;
  mode: IspConfig['delivery']['mode'];
  delivered: number;
  failed: number;
  deferred: number;
  reported: number;
}

type Result = 'delivered' | 'failed' | 'deferred';

/** The key-delivery counter of a registry, registered once. */
export function deliveriesCounter(metrics: Metrics): Counter<'isp' | 'channel' | 'result'> {
  const name = 'relais_deliveries_total';
  const existing = metrics.getSingleMetric(name);
  if (existing) return existing as Counter<'isp' | 'channel' | 'result'>;
  return new Counter({
    name,
    help: 'Keys handed to customers, by ISP, channel and result (delivered, failed, deferred).',
    labelNames: ['isp', 'channel', 'result'],
    registers: [metrics],
  });
}

interface UnreportedRow {
  id: string | number;
  subscriber_id: string;
  licence_id: string;
  channel: DeliveredKey['channel'];
  delivered_at: Date;
}

const LAST_ERROR_CHARS = 255;

/**
 * Reports every delivered, unreported key of the ISP, 1,000 at a time; returns how many the
 * server took. The server takes a report whole or not at all, so when it refuses one for good
 * the rows are sent again one by one: each refused row gets `reported_at` and the refusal in
 * `last_error` (it would be refused on every retry), the others are reported as usual.
 */
export async function reportDeliveries(
  deps: Pick<DeliveryWorkerDeps, 'db' | 'report' | 'now' | 'log'>,
  ispId: string,
): Promise<number> {
  let reported = 0;
  for (;;) {
    const rows: UnreportedRow[] = await deps
      .db('deliveries')
      .select('id', 'subscriber_id', 'licence_id', 'channel', 'delivered_at')
      .where({ isp_id: ispId, state: 'delivered' })
      .whereNull('reported_at')
      .orderBy('id')
      .limit(MAX_BATCH_COMMANDS);
    if (rows.length === 0) return reported;
    try {
      await sendReport(deps, ispId, rows);
      reported += rows.length;
    } catch (err) {
      if (isRetryable(err)) throw err;
      reported += await reportOneByOne(deps, ispId, rows);
    }
  }
}

async function sendReport(
  deps: Pick<DeliveryWorkerDeps, 'db' | 'report' | 'now'>,
  ispId: string,
  rows: UnreportedRow[],
): Promise<void> {
  await deps.report(
    ispId,
    rows.map((r) => ({
      subscriberId: r.subscriber_id,
      licenceId: r.licence_id,
      channel: r.channel,
      deliveredAt: r.delivered_at,
    })),
  );
  await deps
    .db('deliveries')
    .whereIn(
      'id',
      rows.map((r) => r.id),
    )
    .update({ reported_at: deps.now?.() ?? new Date() });
}

/** The rows of a refused report, one call each; returns how many the server took. */
async function reportOneByOne(
  deps: Pick<DeliveryWorkerDeps, 'db' | 'report' | 'now' | 'log'>,
  ispId: string,
  rows: UnreportedRow[],
): Promise<number> {
  let reported = 0;
  for (const row of rows) {
    try {
      await sendReport(deps, ispId, [row]);
      reported++;
    } catch (err) {
      if (isRetryable(err)) throw err;
      const reason = isRelaisError(err) ? `${err.code}: ${err.message}` : String(err);
      // Ids and a code only: the server's message names the licence and subscriber ids.
      deps.log.warn(
        { isp: ispId, deliveryId: Number(row.id), licenceId: row.licence_id, err },
        'delivery report refused for this key; not reported again',
      );
      await deps
        .db('deliveries')
        .where({ id: row.id })
        .update({
          reported_at: deps.now?.() ?? new Date(),
          last_error: `report refused: ${reason}`.slice(0, LAST_ERROR_CHARS),
        });
    }
  }
  return reported;
}

/**
 * Adds the delivery job of a batch, deduplicated per batch (`deliveryJobOptions`): a no-op
 * while one waits or retries; queued behind one that runs; a new job once the last finished.
 */
export async function queueDelivery(
  queues: Pick<Queues, 'delivery'>,
  ispId: string,
  batchId: number,
): Promise<void> {
  await queues.delivery.add(
    JOB_NAMES.deliverBatch,
    { ispId, batchId },
    deliveryJobOptions(batchId),
  );
}

/**
 * Adds a delivery job for every batch whose keys still wait, in any batch state (a deferred
 * batch's recorded keys are real keys). Safe to run any number of times, from any number of
 * processes: a batch with a live job gets nothing more. Run by the provisioning worker at
 * start-up and by the scheduler role on a schedule, so a job that failed for good or was lost
 * (a crash before the add, Redis data lost) is replaced without a person. Returns the batches.
 */
export async function sweepPendingDeliveries(deps: {
  config: RelaisConfig;
  db: Db;
  queues: Pick<Queues, 'delivery'>;
}): Promise<number> {
  let batches = 0;
  for (const isp of deps.config.isps.values()) {
    if (isp.delivery.mode === 'none') continue;
    for (const batchId of await batchesWithPendingDeliveries(deps.db, isp.id)) {
      await queueDelivery(deps.queues, isp.id, batchId);
      batches++;
    }
  }
  return batches;
}

class DeliveryRun {
  private readonly mailers = new Map<string, Mailer>();
  private readonly counter: Counter<'isp' | 'channel' | 'result'>;

  constructor(private readonly deps: DeliveryWorkerDeps) {
    this.counter = deliveriesCounter(deps.metrics);
  }

  private mailerOf(isp: IspConfig): Mailer {
    let mailer = this.mailers.get(isp.id);
    if (!mailer) {
      mailer = createMailer(isp, this.deps.log);
      this.mailers.set(isp.id, mailer);
    }
    return mailer;
  }

  private count(ispId: string, channel: string, result: Result, n: number): void {
    if (n > 0) this.counter.inc({ isp: ispId, channel, result }, n);
  }

  async run(job: Job<DeliverBatchJob>): Promise<DeliverySummary> {
    if (job.name !== JOB_NAMES.deliverBatch) {
      throw new InternalError('INTERNAL', `unknown delivery job ${job.name}`);
    }
    const { ispId, batchId } = job.data;
    const isp = this.deps.config.isps.get(ispId);
    if (!isp) throw new ConfigError('ISP_UNKNOWN', `no ISP ${ispId} in this deployment`);
    const log = this.deps.log.child({ isp: ispId, batchId, jobId: job.id });
    const summary: DeliverySummary = {
      batchId,
      mode: isp.delivery.mode,
      delivered: 0,
      failed: 0,
      deferred: 0,
      reported: 0,
    };

    let email: EmailBatchResult | undefined;
    if (isp.delivery.mode === 'email') {
      email = await deliverBatchByEmail(
        {
          db: this.deps.db,
          vault: this.deps.vault,
          log,
          mailer: this.mailerOf(isp),
          templates: loadTemplates(isp),
          ...(this.deps.now ? { now: this.deps.now } : {}),
        },
        isp,
        batchId,
      );
      Object.assign(summary, {
        delivered: email.delivered.length,
        failed: email.failed,
        deferred: email.deferred,
      });
      this.count(ispId, 'email', 'delivered', email.delivered.length);
      this.count(ispId, 'email', 'failed', email.failed);
      this.count(ispId, 'email', 'deferred', email.deferred);
    } else if (isp.delivery.mode === 'return-file') {
      const written = await deliverByReturnFile(
        {
          config: this.deps.config,
          db: this.deps.db,
          vault: this.deps.vault,
          log,
          ...(this.deps.now ? { now: this.deps.now } : {}),
        },
        ispId,
        batchId,
      );
      summary.delivered = written.length;
      this.count(ispId, 'return-file', 'delivered', written.length);
    }

    let reportError: unknown;
    try {
      summary.reported = await reportDeliveries(this.deps, ispId);
    } catch (err) {
      reportError = err;
      log.warn({ err }, 'delivery report failed, retrying');
    }

    log.info({ ...summary }, 'keys delivered');
    if (email?.deferredBy) {
      log.warn(
        { err: email.deferredBy, deferred: email.deferred },
        'smtp relay did not take the keys, retrying',
      );
      throw email.deferredBy;
    }
    if (reportError) throw reportError;
    return summary;
  }

  close(): void {
    for (const mailer of this.mailers.values()) mailer.close();
    this.mailers.clear();
  }
}

export function startDeliveryWorker(deps: DeliveryWorkerDeps): DeliveryWorker {
  const run = new DeliveryRun(deps);
  const worker = new Worker<DeliverBatchJob, DeliverySummary>(
    QUEUE_NAMES.delivery,
    async (job) => {
      try {
        return await run.run(job);
      } catch (err) {
        throw forQueue(err);
      }
    },
    {
      connection: deps.connection,
      prefix: deps.prefix,
      concurrency: deps.concurrency ?? 2,
      settings: { backoffStrategy: BACKOFF_STRATEGY },
      metrics: WORKER_METRICS,
    },
  );
  worker.on('failed', (job, err) => {
    // A retry ahead is handled trouble (warn); a job out of attempts needs a person (error).
    const isFinal =
      err instanceof UnrecoverableError || (job?.attemptsMade ?? 0) >= (job?.opts.attempts ?? 1);
    const fields = { err, jobId: job?.id, isp: job?.data.ispId, attempts: job?.attemptsMade };
    if (isFinal) deps.log.error(fields, 'delivery job failed');
    else deps.log.warn(fields, 'delivery job failed, retrying');
  });
  worker.on('error', (err) => deps.log.error({ err }, 'delivery worker error'));
  return {
    worker,
    async close() {
      await worker.close();
      run.close();
    },
  };
}
