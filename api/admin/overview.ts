/**
 * The operations overview: what an operator looks at, gathered in one place so that the
 * `/admin` page and `relais status` render the same facts and can never disagree. Per ISP the
 * last feeds, held snapshots, provisioning backlog, key deliveries, month-end files, the last
 * closed period and reconciliation, and a year of billable licences; then the queue depths.
 *
 * It runs on every page view of a deployment with millions of rows, so every query is bounded:
 * a LIMIT on an indexed order, an aggregate over an index range that only holds backlog (rows
 * waiting for something), or a count capped at {@link COUNT_CAP} (a count equal to the cap
 * means "at least that many"). Nothing here scans rated lines or subscribers: the licences of
 * a closed period are counted once by the close (`billing_closes.licences`), and the ledger is
 * read only over the current period's newest {@link ACTIVITY_EVENTS} events.
 *
 * Read only, and nothing personal: feed names, ids, counts and error codes, never a customer
 * ref or an address (those columns are not selected).
 */
import type { Queue } from 'bullmq';
import type { IspConfig, RelaisConfig } from '../../config/load.js';
import { billableLicences } from '../../licensing/billing/close.js';
import { periodBounds, periodOf } from '../../licensing/periods.js';
import type { Db } from '../../platform/db.js';

export interface FeedSummary {
  id: string;
  name: string;
  status: string;
  receivedAt: Date;
  records: number;
  applied: number;
  rejected: number;
  errorCode: string | null;
}

export interface HeldFeed {
  id: string;
  name: string;
  receivedAt: Date;
  reason: string | null;
}

export interface IspOverview {
  ispId: string;
  name: string;
  enabled: boolean;
  /** Newest first, at most {@link LAST_FEEDS}. */
  lastFeeds: FeedSummary[];
  /** Snapshots waiting for `relais feeds approve`, oldest first, at most {@link HELD_SHOWN}. */
  heldFeeds: HeldFeed[];
  provisioning: {
    /** Written to the outbox, not yet handed to the queue. */
    pendingBatches: number;
    /** On the queue (or being retried), not yet fully accepted by the server. */
    queuedBatches: number;
    /** Given up after every attempt: a person looks (`relais queue retry`). */
    failedBatches: number;
    /** Commands the server refused for good (capped at {@link COUNT_CAP}). */
    rejectedCommands: number;
    /** When the oldest pending or queued batch was written. */
    oldestWaitingAt: Date | null;
  };
  /** Activation keys to hand over, by state (each capped at {@link COUNT_CAP}). */
  keyDeliveries: { pending: number; delivered: number; failed: number };
  /** Month-end files, newest period first, at most {@link LAST_BILLING_DELIVERIES}. */
  billingDeliveries: { period: string; fileName: string; status: string; at: Date }[];
  /** YYYY-MM in the ISP's time zone. */
  currentPeriod: string;
  /**
   * The current period so far, from the ledger: licences activated for the first time (each
   * one billable at the close) and subscribes applied (new customers, and cancelled ones who
   * came back). Read from its newest {@link ACTIVITY_EVENTS} events; `partial` says the period
   * has more, so the counts are a floor.
   */
  currentActivity: { activations: number; provisioned: number; partial: boolean };
  lastClosed: {
    period: string;
    closedAt: Date;
    lines: number;
    total: string;
    currency: string;
  } | null;
  lastReconciliation: {
    period: string;
    at: Date;
    counts: Record<string, number>;
    /** The HTML report in the ISP's work folder. */
    reportPath: string;
    fileName: string;
  } | null;
  /** Closed periods, oldest first, at most {@link BILLABLE_PERIODS}. */
  billableLicences: { period: string; licences: number }[];
}

export interface QueueDepth {
  name: string;
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  completed: number;
  paused: number;
  /** Set when the counts could not be read (Redis down); the numbers are then 0. */
  error?: string;
}

export interface Overview {
  generatedAt: Date;
  isps: IspOverview[];
  queues: QueueDepth[];
}

export interface OverviewDeps {
  config: RelaisConfig;
  connectorDb: Db;
  licensingDb: Db;
  queues: Queue[];
  now?: () => Date;
}

export const LAST_FEEDS = 5;
export const HELD_SHOWN = 20;
export const LAST_BILLING_DELIVERIES = 5;
export const BILLABLE_PERIODS = 12;
/** Counts of growing tables stop here: counting is an index range scan, kept short. */
export const COUNT_CAP = 100_000;
/**
 * Ledger events read for the current period's activity: the index holds no event type, so
 * each one costs a row lookup as well; a busy ISP's period shows "at least".
 */
export const ACTIVITY_EVENTS = 20_000;

/** The reconciliation category a person must look at first; the others are listed by name. */
export const MATCHED_CATEGORY = 'MATCHED';

/** The overview at this instant; see the module comment. */
export async function loadOverview(deps: OverviewDeps): Promise<Overview> {
  const now = (deps.now ?? (() => new Date()))();
  const isps = [...deps.config.isps.values()].sort((a, b) => a.id.localeCompare(b.id));
  const [backlog, queues, ...perIsp] = await Promise.all([
    provisioningBacklog(deps.connectorDb),
    queueDepths(deps.queues),
    ...isps.map((isp) => ispOverview(deps, isp, now)),
  ]);
  for (const overview of perIsp) {
    overview.provisioning = { ...overview.provisioning, ...backlog.get(overview.ispId) };
  }
  return { generatedAt: now, isps: perIsp, queues };
}

/** True when an ISP's line needs a person: a held snapshot, failed batches or deliveries. */
export function ispNeedsAttention(isp: IspOverview): boolean {
  return (
    isp.heldFeeds.length > 0 ||
    isp.provisioning.failedBatches > 0 ||
    isp.keyDeliveries.failed > 0 ||
    isp.lastFeeds[0]?.status === 'failed'
  );
}

/** True when a queue has failed jobs, or could not be read. */
export function queueNeedsAttention(queue: QueueDepth): boolean {
  return queue.failed > 0 || queue.error !== undefined;
}

async function ispOverview(deps: OverviewDeps, isp: IspConfig, now: Date): Promise<IspOverview> {
  const db = deps.connectorDb;
  const [lastFeeds, heldFeeds, rejectedCommands, keyDeliveries, billingDeliveries, reconciled] =
    await Promise.all([
      lastFeedsOf(db, isp.id),
      heldFeedsOf(db, isp.id),
      cappedCount(db, 'provisioning_rejections', { isp_id: isp.id }),
      keyDeliveriesOf(db, isp.id),
      billingDeliveriesOf(db, isp.id),
      lastReconciliationOf(db, isp.id),
    ]);
  const currentPeriod = periodOf(now, isp.timeZone);
  const [closes, currentActivity] = await Promise.all([
    closedPeriodsOf(deps.licensingDb, isp.id),
    periodActivityOf(deps.licensingDb, isp, currentPeriod, now),
  ]);
  return {
    ispId: isp.id,
    name: isp.name,
    enabled: isp.enabled,
    lastFeeds,
    heldFeeds,
    provisioning: {
      pendingBatches: 0,
      queuedBatches: 0,
      failedBatches: 0,
      rejectedCommands,
      oldestWaitingAt: null,
    },
    keyDeliveries,
    billingDeliveries,
    currentPeriod,
    currentActivity,
    lastClosed: closes.last,
    lastReconciliation: reconciled,
    billableLicences: closes.licences,
  };
}

// ---------------------------------------------------------------------------------------------
// Feeds

interface FeedRow {
  id: string;
  name: string;
  status: string;
  received_at: Date;
  records: number;
  applied: number;
  rejected: number;
  error_code: string | null;
  error_message: string | null;
}

/** `feeds_isp_received_ix` (isp_id, received_at), read backwards. */
async function lastFeedsOf(db: Db, ispId: string): Promise<FeedSummary[]> {
  const rows = (await db('feeds')
    .select('id', 'name', 'status', 'received_at', 'records', 'applied', 'rejected', 'error_code')
    .where({ isp_id: ispId })
    .orderBy([
      { column: 'received_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(LAST_FEEDS)) as FeedRow[];
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    status: r.status,
    receivedAt: r.received_at,
    records: Number(r.records),
    applied: Number(r.applied),
    rejected: Number(r.rejected),
    errorCode: r.error_code,
  }));
}

/** `feeds_isp_status_ix` (isp_id, status, received_at). */
async function heldFeedsOf(db: Db, ispId: string): Promise<HeldFeed[]> {
  const rows = (await db('feeds')
    .select('id', 'name', 'received_at', 'error_message')
    .where({ isp_id: ispId, status: 'held' })
    .orderBy('received_at', 'asc')
    .limit(HELD_SHOWN)) as FeedRow[];
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    receivedAt: r.received_at,
    reason: r.error_message,
  }));
}

// ---------------------------------------------------------------------------------------------
// Provisioning and deliveries

type Backlog = Pick<
  IspOverview['provisioning'],
  'pendingBatches' | 'queuedBatches' | 'failedBatches' | 'oldestWaitingAt'
>;

/**
 * Batches not sent, per ISP: one aggregate over `provisioning_batches_state_ix` (state, id),
 * which skips the sent batches, the table's bulk. Its size is the backlog, which is the point.
 */
async function provisioningBacklog(db: Db): Promise<Map<string, Backlog>> {
  const rows = (await db('provisioning_batches')
    .select('isp_id', 'state')
    .count({ n: '*' })
    .min({ oldest: 'created_at' })
    .whereIn('state', ['pending', 'queued', 'failed'])
    .groupBy('isp_id', 'state')) as {
    isp_id: string;
    state: string;
    n: number | string;
    oldest: Date;
  }[];
  const byIsp = new Map<string, Backlog>();
  for (const row of rows) {
    const backlog = byIsp.get(row.isp_id) ?? {
      pendingBatches: 0,
      queuedBatches: 0,
      failedBatches: 0,
      oldestWaitingAt: null,
    };
    const n = Number(row.n);
    if (row.state === 'failed') backlog.failedBatches = n;
    else {
      if (row.state === 'pending') backlog.pendingBatches = n;
      else backlog.queuedBatches = n;
      const oldest = backlog.oldestWaitingAt;
      if (oldest === null || row.oldest < oldest) backlog.oldestWaitingAt = row.oldest;
    }
    byIsp.set(row.isp_id, backlog);
  }
  return byIsp;
}

/** `deliveries_isp_state_ix` (isp_id, state, id), one capped count per state. */
async function keyDeliveriesOf(db: Db, ispId: string): Promise<IspOverview['keyDeliveries']> {
  const [pending, delivered, failed] = await Promise.all(
    ['pending', 'delivered', 'failed'].map((state) =>
      cappedCount(db, 'deliveries', { isp_id: ispId, state }),
    ),
  );
  return { pending: pending ?? 0, delivered: delivered ?? 0, failed: failed ?? 0 };
}

/** COUNT(*) of the matching rows, stopping at {@link COUNT_CAP}. */
async function cappedCount(db: Db, table: string, where: Record<string, string>): Promise<number> {
  const inner = db(table).select(db.raw('1')).where(where).limit(COUNT_CAP).as('capped');
  const row = (await db.from(inner).count({ n: '*' }).first()) as { n: number | string };
  return Number(row.n);
}

// ---------------------------------------------------------------------------------------------
// Month end

/** `billing_deliveries_file_uq` (isp_id, period, file_name): a few rows per ISP and month. */
async function billingDeliveriesOf(
  db: Db,
  ispId: string,
): Promise<IspOverview['billingDeliveries']> {
  const rows = (await db('billing_deliveries')
    .select('period', 'file_name', 'status', 'updated_at', 'delivered_at')
    .where({ isp_id: ispId })
    .orderBy([
      { column: 'period', order: 'desc' },
      { column: 'file_name', order: 'desc' },
    ])
    .limit(LAST_BILLING_DELIVERIES)) as {
    period: string;
    file_name: string;
    status: string;
    updated_at: Date;
    delivered_at: Date | null;
  }[];
  return rows.map((r) => ({
    period: r.period,
    fileName: r.file_name,
    status: r.status,
    at: r.delivered_at ?? r.updated_at,
  }));
}

interface CloseRow {
  period: string;
  closed_at: Date;
  line_count: number;
  summary: string;
  licences: number | null;
}

/**
 * The last {@link BILLABLE_PERIODS} closed periods by primary key (isp_id, period). A period
 * closed before `billing_closes.licences` existed and missed by its migration is counted here
 * (one range scan of its lines), and remembered: a closed period never changes.
 */
async function closedPeriodsOf(
  db: Db,
  ispId: string,
): Promise<{ last: IspOverview['lastClosed']; licences: IspOverview['billableLicences'] }> {
  const rows = (await db('billing_closes')
    .select('period', 'closed_at', 'line_count', 'summary', 'licences')
    .where({ isp_id: ispId, status: 'closed' })
    .orderBy('period', 'desc')
    .limit(BILLABLE_PERIODS)) as CloseRow[];
  const newest = rows[0];
  let last: IspOverview['lastClosed'] = null;
  if (newest) {
    const summary = JSON.parse(newest.summary) as { total: string; currency: string };
    last = {
      period: newest.period,
      closedAt: newest.closed_at,
      lines: Number(newest.line_count),
      total: summary.total,
      currency: summary.currency,
    };
  }
  const licences = await Promise.all(
    rows.map(async (r) => ({
      period: r.period,
      licences: r.licences === null ? await countedLicences(db, ispId, r.period) : r.licences,
    })),
  );
  return { last, licences: licences.reverse() };
}

/**
 * `subscription_events_isp_time_ix` (isp_id, occurred_at), read backwards from `now` over the
 * period's newest {@link ACTIVITY_EVENTS} events at most.
 */
async function periodActivityOf(
  db: Db,
  isp: IspConfig,
  period: string,
  now: Date,
): Promise<IspOverview['currentActivity']> {
  const { start, end } = periodBounds(period, isp.timeZone);
  const until = now < end ? now : end;
  const newest = db('subscription_events')
    .select('type')
    .where('isp_id', isp.id)
    .andWhere('occurred_at', '>=', start)
    .andWhere('occurred_at', '<=', until)
    .orderBy('occurred_at', 'desc')
    .limit(ACTIVITY_EVENTS)
    .as('newest');
  const row = (await db
    .from(newest)
    .select(
      db.raw('COUNT(*) AS seen'),
      db.raw("COALESCE(SUM(type = 'activated'), 0) AS activations"),
      db.raw("COALESCE(SUM(type = 'provisioned'), 0) AS provisioned"),
    )
    .first()) as {
    seen: number | string;
    activations: number | string;
    provisioned: number | string;
  };
  return {
    activations: Number(row.activations),
    provisioned: Number(row.provisioned),
    partial: Number(row.seen) >= ACTIVITY_EVENTS,
  };
}

const countedByDb = new WeakMap<Db, Map<string, number>>();

async function countedLicences(db: Db, ispId: string, period: string): Promise<number> {
  let counted = countedByDb.get(db);
  if (!counted) {
    counted = new Map();
    countedByDb.set(db, counted);
  }
  const key = `${ispId}/${period}`;
  let n = counted.get(key);
  if (n === undefined) {
    n = await billableLicences(db, ispId, period);
    counted.set(key, n);
  }
  return n;
}

/** `reconciliation_runs_ran_ix` (isp_id, ran_at), read backwards. */
async function lastReconciliationOf(
  db: Db,
  ispId: string,
): Promise<IspOverview['lastReconciliation']> {
  const row = (await db('reconciliation_runs')
    .select('period', 'ran_at', 'counts', 'report_path', 'file_name')
    .where({ isp_id: ispId })
    .orderBy([
      { column: 'ran_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .first()) as
    | { period: string; ran_at: Date; counts: string; report_path: string; file_name: string }
    | undefined;
  if (!row) return null;
  return {
    period: row.period,
    at: row.ran_at,
    counts: JSON.parse(row.counts) as Record<string, number>,
    reportPath: row.report_path,
    fileName: row.file_name,
  };
}

// ---------------------------------------------------------------------------------------------
// Queues

const COUNTED = ['waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'] as const;

/**
 * BullMQ's own counters (a few Redis calls per queue); a queue that cannot be read says so.
 * `waiting` includes prioritized jobs. BullMQ keeps the jobs of a paused queue in its waiting
 * list, so `paused` is that count while the queue is paused (and `waiting` is then 0).
 */
async function queueDepths(queues: readonly Queue[]): Promise<QueueDepth[]> {
  return Promise.all(
    queues.map(async (queue): Promise<QueueDepth> => {
      const depth: QueueDepth = {
        name: queue.name,
        waiting: 0,
        active: 0,
        delayed: 0,
        failed: 0,
        completed: 0,
        paused: 0,
      };
      try {
        const [counts, paused] = await Promise.all([
          queue.getJobCounts(...COUNTED),
          queue.isPaused(),
        ]);
        const waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
        depth.waiting = paused ? 0 : waiting;
        depth.paused = paused ? waiting : 0;
        depth.active = counts.active ?? 0;
        depth.delayed = counts.delayed ?? 0;
        depth.failed = counts.failed ?? 0;
        depth.completed = counts.completed ?? 0;
      } catch (err) {
        depth.error = err instanceof Error ? err.message : String(err);
      }
      return depth;
    }),
  );
}
