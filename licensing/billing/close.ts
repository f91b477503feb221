/**
 * Billing period close: rates every activated licence of one ISP for one period and freezes
 * the lines in `rated_lines`, then records the close in `billing_closes`. This is billing, not
 * the licence renewal (`licensing/renewal.ts`, table `period_closes`); the two run apart.
 *
 * - When: only after the period's end plus the ISP's `cutoffDays` (× 24 h), so events of the
 *   month that arrive a little late are still rated in it. `force` skips the wait (tests, and
 *   an operator who knows no late event is coming); it is logged.
 * - What is rated: the ledger up to `ledger_high_id`, the last event id when the close began
 *   (after a barrier that waits for ledger writes still in flight). Every later event is late.
 * - Racing and crashes: the row's primary key (isp_id, period) is the guard. Subscribers are
 *   rated in pages in subscriber-id order; each page's lines and the row's cursor commit in one
 *   transaction that first locks the row and checks the cursor is where the page began, so a
 *   page is frozen once whoever writes it, a racing close takes turns or finds the period
 *   closed, and a close killed half-way resumes after its last committed page. The rules (price
 *   list, proration, rounding) are frozen in the row at start for the same reason.
 * - Late events: at the close of P, subscribers with rating events recorded after the previous
 *   close (ids above its high id) that occurred before the end of a closed period Q among the
 *   last `lookbackPeriods` are re-rated for each such Q; the difference with what was already
 *   billed for Q (charges and earlier adjustments) becomes an adjustment line of P.
 * - Scale: pages of subscribers read by primary key, their events by one range scan of the
 *   `subscription_events_subscriber_ix` index, one page read ahead while the previous one is
 *   written, lines loaded with LOAD DATA LOCAL (see `insertLines`); memory holds a page or
 *   two, never an ISP. Figures in docs/billing-rating.md.
 */
import { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { Counter, Histogram } from 'prom-client';
import { retryLockConflicts as retryDb } from '../../platform/db.js';
import { ConfigError, InternalError, isRelaisError, RequestError } from '../../platform/errors.js';
import { type Metrics, perRegistry } from '../../platform/metrics.js';
import { sqlLiteral } from '../../platform/sql-literal.js';
import { type LicensingDeps, servedIsp } from '../context.js';
import { PERIOD_PATTERN, periodBounds, shiftPeriod } from '../periods.js';
import { formatCents, formatQuantity, type Money, parseMoney, sumMoney, ZERO } from './money.js';
import { missingPrice, type PeriodPrices, pricesFor } from './prices.js';
import type { RatedLine } from './rated-line.js';
import {
  type PeriodFrame,
  periodFrame,
  RATING_EVENT_TYPES,
  type RatingEvent,
  type RatingRules,
  rateSubscriber,
} from './rating.js';

const DAY_MS = 86_400_000;
const DEFAULT_PAGE_SUBSCRIBERS = 2000;
const DEFAULT_LOOKBACK_PERIODS = 12;
/** How far below the ledger's last id the barrier looks for writes still in flight. */
const BARRIER_WINDOW = 100_000n;
const LOCK_RETRIES = 3;

export interface CloseSummary {
  currency: string;
  lineCount: number;
  /** Sum of every line amount, exactly the sum of `totals`. */
  total: string;
  /** Per module and kind, in that order. */
  totals: { module: string; kind: 'charge' | 'adjustment'; lines: number; amount: string }[];
}

export interface BillingClose {
  ispId: string;
  period: string;
  closedAt: Date;
  summary: CloseSummary;
}

export interface CloseResult extends BillingClose {
  /** `already-closed`: the period was closed before this call (or by a racing one). */
  outcome: 'closed' | 'already-closed';
}

export interface CloseProgress {
  period: string;
  subscribers: number;
  lines: number;
}

export interface CloseOptions {
  /** Close before period end + cutoffDays. For tests and deliberate operator runs only. */
  force?: boolean;
  /** Subscribers rated per page (one transaction each). Default 2000. */
  pageSubscribers?: number;
  /** Closed periods re-rated for late events. Default 12. */
  lookbackPeriods?: number;
  onProgress?: (progress: CloseProgress) => void;
  /** Test hook: runs after each committed page; throwing there simulates a crash. */
  afterPage?: (page: number) => void | Promise<void>;
  /**
   * Runs once the lines are frozen, on every call that finds the period closed (the first one
   * and any rerun), so a crash between the freeze and the vendor invoice is repaired by
   * running the close again. The invoice writer hangs here; it must be idempotent.
   */
  afterFreeze?: (close: BillingClose & { alreadyClosed: boolean }) => Promise<void>;
}

interface StoredRules {
  currency: string;
  proration: 'none' | 'daily';
  rounding: 'half-up' | 'half-even';
  prices: PeriodPrices;
}

interface CloseRow {
  status: 'running' | 'closed';
  ledger_high_id: string;
  previous_high_id: string | null;
  rules: string;
  cursor: string | null;
  line_count: number;
  summary: string | null;
  closed_at: Date | null;
}

// ---------------------------------------------------------------------------------------------
// Metrics

const linesByRegistry = new WeakMap<Metrics, Counter<'isp' | 'kind'>>();

/** The rated-lines counter of a registry, registered once. */
export function linesCounter(registry: Metrics): Counter<'isp' | 'kind'> {
  let found = linesByRegistry.get(registry);
  if (!found) {
    found = new Counter({
      name: 'relais_billing_rated_lines_total',
      help: 'Rated lines frozen by billing period closes, by ISP and kind.',
      labelNames: ['isp', 'kind'],
      registers: [registry],
    });
    linesByRegistry.set(registry, found);
  }
  return found;
}

/** Closes by outcome and how long the ones that froze lines took, per ISP. */
export const closeMetrics = perRegistry((registry: Metrics) => ({
  closes: new Counter({
    name: 'relais_billing_closes_total',
    help: 'Billing period close runs by ISP and outcome: closed (this run froze the period), already-closed, failed.',
    labelNames: ['isp', 'outcome'] as const,
    registers: [registry],
  }),
  failures: new Counter({
    name: 'relais_billing_close_failures_total',
    help: 'Billing period close runs that failed, by ISP and error code.',
    labelNames: ['isp', 'code'] as const,
    registers: [registry],
  }),
  seconds: new Histogram({
    name: 'relais_billing_close_duration_seconds',
    help: 'Duration of the billing close runs that closed a period (a resumed close counts its last run only).',
    labelNames: ['isp'] as const,
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [registry],
  }),
}));

// ---------------------------------------------------------------------------------------------
// Periods

/** When `period` may close for an ISP: its end plus the cutoff days. */
export function closableAt(period: string, timeZone: string, cutoffDays: number): Date {
  return new Date(periodBounds(period, timeZone).end.getTime() + cutoffDays * DAY_MS);
}

// ---------------------------------------------------------------------------------------------
// Reading the ledger

async function rows<T>(db: Knex | Knex.Transaction, sql: string, bindings: unknown[] = []) {
  const [result] = (await db.raw(sql, bindings as Knex.RawBinding[])) as [T[]];
  return result;
}

const TYPES_SQL = RATING_EVENT_TYPES.map((t) => sqlLiteral(t)).join(',');

interface EventRow {
  id: string;
  subscriber_id: string;
  licence_id: string | null;
  type: RatingEvent['type'];
  occurred_at: Date;
  data: string | null;
}

function toRatingEvent(row: EventRow): RatingEvent {
  const event: RatingEvent = {
    id: String(row.id),
    type: row.type,
    licenceId: row.licence_id,
    occurredAtMs: row.occurred_at.getTime(),
  };
  if (row.data !== null) {
    const data = (typeof row.data === 'string' ? JSON.parse(row.data) : row.data) as {
      modules?: unknown;
      status?: unknown;
    };
    if (Array.isArray(data.modules)) event.modules = data.modules.map(String);
    if (typeof data.status === 'string') event.status = data.status;
  }
  return event;
}

/** Groups event rows (in subscriber, id order) per subscriber. */
function grouped(found: readonly EventRow[]): Map<string, RatingEvent[]> {
  const bySubscriber = new Map<string, RatingEvent[]>();
  let current = '';
  let list: RatingEvent[] = [];
  for (const row of found) {
    if (row.subscriber_id !== current) {
      current = row.subscriber_id;
      list = bySubscriber.get(current) ?? [];
      bySubscriber.set(current, list);
    }
    list.push(toRatingEvent(row));
  }
  return bySubscriber;
}

/**
 * Only the two types whose data rating reads carry it over the wire. The index is forced:
 * with `id <= high` the optimiser may scan the primary key, the whole ledger, per page.
 */
const EVENT_SELECT = `SELECT id, subscriber_id, licence_id, type, occurred_at, CASE WHEN type IN ('provisioned','modules-changed') THEN data END AS data FROM subscription_events FORCE INDEX (subscription_events_subscriber_ix)`;

/** The rating events (ids up to `highId`) of some subscribers, grouped per subscriber. */
async function eventsOf(
  db: Knex | Knex.Transaction,
  subscriberIds: readonly string[],
  highId: string,
): Promise<Map<string, RatingEvent[]>> {
  if (subscriberIds.length === 0) return new Map();
  const list = subscriberIds.map((id) => sqlLiteral(id)).join(',');
  return grouped(
    await rows<EventRow>(
      db,
      `${EVENT_SELECT} WHERE subscriber_id IN (${list}) AND id <= ${sqlLiteral(highId)} AND type IN (${TYPES_SQL}) ORDER BY subscriber_id, id`,
    ),
  );
}

/**
 * The rating events of the ISP's subscribers whose ids lie in (after, last]: one range scan
 * of `subscription_events_subscriber_ix`, cheaper than a list of ids. Subscriber ids are
 * unique across ISPs, so the ISP filter only drops other ISPs' subscribers in the range.
 */
async function eventsInRange(
  db: Knex,
  ispId: string,
  after: string | null,
  last: string,
  highId: string,
): Promise<Map<string, RatingEvent[]>> {
  return grouped(
    await rows<EventRow>(
      db,
      `${EVENT_SELECT} WHERE subscriber_id > ? AND subscriber_id <= ? AND isp_id = ? AND id <= ? AND type IN (${TYPES_SQL}) ORDER BY subscriber_id, id`,
      [after ?? '', last, ispId, highId],
    ),
  );
}

interface Page {
  /** Cursor the page starts after (null: from the first subscriber). */
  after: string | null;
  last: string | null;
  subscribers: number;
  lines: RatedLine[];
}

/**
 * The next page of the ISP's subscribers, by primary key, and their charge lines. Over a whole
 * close the pages read the subscriptions table once. There is no filter on an activated
 * licence: rating bills only after an `activated` event, so a subscriber without one simply
 * gives no line, and the filter (an EXISTS on `licences`) was planned as a scan of the whole
 * table per page. The index is forced: left to itself the optimiser picks (isp_id, status)
 * and sorts every subscriber of the ISP for each page.
 */
async function ratePage(
  db: Knex,
  ispId: string,
  after: string | null,
  size: number,
  highId: string,
  frame: PeriodFrame,
  rules: RatingRules,
): Promise<Page> {
  const ids = (
    await rows<{ subscriber_id: string }>(
      db,
      `SELECT s.subscriber_id FROM subscriptions s FORCE INDEX (PRIMARY) WHERE s.subscriber_id > ? AND s.isp_id = ? ORDER BY s.subscriber_id LIMIT ?`,
      [after ?? '', ispId, size],
    )
  ).map((r) => r.subscriber_id);
  const last = ids.at(-1);
  const lines: RatedLine[] = [];
  if (last === undefined) return { after, last: null, subscribers: 0, lines };
  const events = await eventsInRange(db, ispId, after, last, highId);
  for (const id of ids) {
    const own = events.get(id);
    if (own) for (const line of rateSubscriber(id, own, frame, rules)) lines.push(line);
  }
  return { after, last, subscribers: ids.length, lines };
}

// ---------------------------------------------------------------------------------------------
// Writing lines

const LINE_COLUMNS =
  'isp_id,period,line_id,kind,service_period,subscriber_id,licence_id,module,days,days_in_period,quantity,unit_price,amount,currency,activation_event_id,activated_at';

/**
 * Lines go in with LOAD DATA LOCAL INFILE, streamed from memory: measured here, MariaDB takes
 * the same 400,000 rows in 3.2 s that way against 8.0 s as INSERTs of 2000 rows (it parses
 * no SQL per row). LOCAL makes the server treat a duplicate key or a bad value as a warning
 * (it cannot stop the client mid-file), so `insertLines` checks that every row went in with
 * no warning and fails the transaction otherwise: a line written twice is still an error,
 * never a second line.
 */
const LOAD_SQL = `LOAD DATA LOCAL INFILE 'rated-lines' INTO TABLE rated_lines CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${LINE_COLUMNS})`;
/** Bytes per packet of the stream (the protocol caps a packet at 16 MB). */
const LOAD_CHUNK_BYTES = 256 * 1024;

const TSV_SPECIAL = /[\0\t\n\\]/g;
const TSV_ESCAPES: Record<string, string> = { '\0': '\\0', '\t': '\\t', '\n': '\\n', '\\': '\\\\' };

function tsv(text: string): string {
  TSV_SPECIAL.lastIndex = 0;
  return TSV_SPECIAL.test(text) ? text.replace(TSV_SPECIAL, (c) => TSV_ESCAPES[c] as string) : text;
}

/** An ISO instant as a UTC DATETIME literal (the session time zone is UTC, platform/db.ts). */
function datetime(iso: string): string {
  const utc = iso.length === 24 && iso.endsWith('Z') ? iso : new Date(iso).toISOString();
  return `${utc.slice(0, 10)} ${utc.slice(11, 23)}`;
}

function lineRow(l: RatedLine): string {
  return `${tsv(l.ispId)}\t${tsv(l.period)}\t${tsv(l.lineId)}\t${l.kind}\t${tsv(l.servicePeriod)}\t${tsv(l.subscriberId)}\t${tsv(l.licenceId)}\t${tsv(l.module)}\t${l.days}\t${l.daysInPeriod}\t${tsv(l.quantity)}\t${tsv(l.unitPrice)}\t${tsv(l.amount)}\t${tsv(l.currency)}\t${tsv(l.activationEventId)}\t${datetime(l.activatedAt)}\n`;
}

/** The lines as the LOAD DATA stream: tab-separated rows, in buffers of about 256 KB. */
function lineChunks(lines: readonly RatedLine[]): Buffer[] {
  const chunks: Buffer[] = [];
  let text = '';
  for (const line of lines) {
    text += lineRow(line);
    if (text.length >= LOAD_CHUNK_BYTES / 2) {
      chunks.push(Buffer.from(text, 'utf8'));
      text = '';
    }
  }
  if (text !== '') chunks.push(Buffer.from(text, 'utf8'));
  return chunks;
}

interface RawConnection {
  query(
    options: { sql: string; infileStreamFactory: () => Readable },
    callback: (err: Error | null, result: { affectedRows: number; warningStatus: number }) => void,
  ): void;
}

/** What the server answers LOAD DATA LOCAL with when `local_infile` is off. */
const LOCAL_INFILE_REFUSED = new Set([
  'ER_NOT_ALLOWED_COMMAND',
  'ER_LOAD_INFILE_CAPABILITY_DISABLED',
  'ER_CLIENT_LOCAL_FILES_DISABLED',
]);
/** Rows per INSERT when LOAD DATA is refused. */
const INSERT_ROWS = 2000;

/**
 * The same rows as multi-row INSERTs, for a server that refuses LOAD DATA LOCAL: about half
 * the speed, and a duplicate key is an error of its own.
 */
export async function insertLinesAsRows(
  trx: Knex.Transaction,
  lines: readonly RatedLine[],
): Promise<void> {
  for (let i = 0; i < lines.length; i += INSERT_ROWS) {
    await trx('rated_lines').insert(
      lines.slice(i, i + INSERT_ROWS).map((l) => ({
        isp_id: l.ispId,
        period: l.period,
        line_id: l.lineId,
        kind: l.kind,
        service_period: l.servicePeriod,
        subscriber_id: l.subscriberId,
        licence_id: l.licenceId,
        module: l.module,
        days: l.days,
        days_in_period: l.daysInPeriod,
        quantity: l.quantity,
        unit_price: l.unitPrice,
        amount: l.amount,
        currency: l.currency,
        activation_event_id: l.activationEventId,
        activated_at: datetime(l.activatedAt),
      })),
    );
  }
}

/** Writes lines in the transaction; throws (so it rolls back) unless each went in cleanly. */
async function insertLines(trx: Knex.Transaction, lines: readonly RatedLine[]): Promise<void> {
  if (lines.length === 0) return;
  const chunks = lineChunks(lines);
  // Inside a transaction knex hands out the transaction's own connection.
  const conn = (await trx.client.acquireConnection()) as RawConnection;
  let result: { affectedRows: number; warningStatus: number };
  try {
    result = await new Promise((resolve, reject) => {
      conn.query({ sql: LOAD_SQL, infileStreamFactory: () => Readable.from(chunks) }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  } catch (err) {
    if (!LOCAL_INFILE_REFUSED.has((err as { code?: string }).code ?? '')) throw err;
    // A server with local_infile off (MySQL 8's default) refuses before reading anything.
    await insertLinesAsRows(trx, lines);
    return;
  }
  if (result.affectedRows !== lines.length || result.warningStatus !== 0) {
    const warnings = await rows<{ Message: string }>(trx, 'SHOW WARNINGS LIMIT 3');
    throw new InternalError(
      'INTERNAL',
      `rated lines not written cleanly: ${result.affectedRows} of ${lines.length} rows, ${result.warningStatus} warnings: ${warnings.map((w) => w.Message).join('; ')}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Starting a close

/**
 * The last ledger id a close rates. Reading MAX(id) alone could miss an event whose
 * transaction took a lower id but had not committed yet; a locking read of the ids just below
 * the top waits for such transactions, so every id up to the one returned is committed.
 */
async function ledgerHighId(db: Knex): Promise<string> {
  const [found] = await rows<{ high: string | number }>(
    db,
    'SELECT COALESCE(MAX(id), 0) AS high FROM subscription_events',
  );
  const top = BigInt(found?.high ?? 0);
  const low = top > BARRIER_WINDOW ? top - BARRIER_WINDOW : 0n;
  await db.transaction(
    async (trx) => {
      await trx.raw(
        `SELECT COUNT(*) AS n FROM subscription_events WHERE id > ${low} AND id <= ${top} LOCK IN SHARE MODE`,
      );
    },
    { isolationLevel: 'read committed' },
  );
  return top.toString();
}

function parseRules(row: CloseRow): StoredRules {
  return JSON.parse(row.rules) as StoredRules;
}

function closeOf(ispId: string, period: string, row: CloseRow): BillingClose {
  return {
    ispId,
    period,
    closedAt: row.closed_at as Date,
    summary: JSON.parse(row.summary as string) as CloseSummary,
  };
}

/** The close row of an ISP and period, or undefined. */
export async function findClose(
  db: Knex | Knex.Transaction,
  ispId: string,
  period: string,
): Promise<BillingClose | undefined> {
  const row = (await db('billing_closes').where({ isp_id: ispId, period }).first()) as
    | CloseRow
    | undefined;
  return row?.status === 'closed' ? closeOf(ispId, period, row) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Adjustments

interface PriorLine {
  licence_id: string;
  subscriber_id: string;
  module: string;
  service_period: string;
  quantity: string;
  amount: string;
  activation_event_id: string;
  activated_at: Date;
}

interface ClosedPeriod {
  period: string;
  rules: StoredRules;
  frame: PeriodFrame;
}

/**
 * Adjustment lines of `period` for the closed periods of the lookback window: re-rated with
 * every event up to this close's high id, minus what those periods already billed.
 */
async function adjustmentLines(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  timeZone: string,
  row: CloseRow,
  lookback: number,
): Promise<RatedLine[]> {
  if (row.previous_high_id === null) return [];
  const db = deps.db;
  const closedRows = (await db('billing_closes')
    .where({ isp_id: ispId, status: 'closed' })
    .andWhere('period', '<', period)
    .andWhere('period', '>=', shiftPeriod(period, -lookback))
    .orderBy('period')
    .select('period', 'rules')) as { period: string; rules: string }[];
  if (closedRows.length === 0) return [];
  const closed: ClosedPeriod[] = closedRows.map((r) => ({
    period: r.period,
    rules: JSON.parse(r.rules) as StoredRules,
    frame: periodFrame(r.period, timeZone),
  }));
  const latestEnd = new Date((closed.at(-1) as ClosedPeriod).frame.endMs);
  const affected = await rows<{ subscriber_id: string; earliest: Date }>(
    db,
    `SELECT subscriber_id, MIN(occurred_at) AS earliest FROM subscription_events WHERE id > ? AND id <= ? AND isp_id = ? AND type IN (${TYPES_SQL}) AND occurred_at < ? GROUP BY subscriber_id ORDER BY subscriber_id`,
    [row.previous_high_id, row.ledger_high_id, ispId, latestEnd],
  );
  const lines: RatedLine[] = [];
  for (let i = 0; i < affected.length; i += DEFAULT_PAGE_SUBSCRIBERS) {
    const batch = affected.slice(i, i + DEFAULT_PAGE_SUBSCRIBERS);
    const ids = batch.map((a) => a.subscriber_id);
    const events = await eventsOf(db, ids, row.ledger_high_id);
    // What was billed: found by the subscriber index, which a close fills in page order.
    const prior = (await db('rated_lines')
      .where('isp_id', ispId)
      .andWhere('period', '<', period)
      .whereIn('subscriber_id', ids)
      .select(
        'licence_id',
        'subscriber_id',
        'module',
        'service_period',
        'quantity',
        'amount',
        'activation_event_id',
        'activated_at',
      )) as PriorLine[];
    for (const { subscriber_id: subscriberId, earliest } of batch) {
      for (const q of closed) {
        if (q.frame.endMs <= earliest.getTime()) continue;
        const rules: RatingRules = { ispId, ...q.rules };
        const fresh = rateSubscriber(subscriberId, events.get(subscriberId) ?? [], q.frame, rules);
        const billed = prior.filter(
          (p) => p.subscriber_id === subscriberId && p.service_period === q.period,
        );
        lines.push(...deltas(period, q, rules, subscriberId, fresh, billed));
      }
    }
  }
  return lines;
}

/** New − billed per licence and module of one service period, zero deltas left out. */
function deltas(
  period: string,
  q: ClosedPeriod,
  rules: RatingRules,
  subscriberId: string,
  fresh: readonly RatedLine[],
  billed: readonly PriorLine[],
): RatedLine[] {
  const keys = new Map<string, { licenceId: string; module: string }>();
  for (const l of fresh) keys.set(`${l.licenceId}/${l.module}`, l);
  for (const b of billed) {
    keys.set(`${b.licence_id}/${b.module}`, { licenceId: b.licence_id, module: b.module });
  }
  const out: RatedLine[] = [];
  for (const [key, { licenceId, module }] of [...keys].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const now = fresh.find((l) => `${l.licenceId}/${l.module}` === key);
    const before = billed.filter((b) => `${b.licence_id}/${b.module}` === key);
    const amountBefore = sumMoney(before.map((b) => parseMoney(b.amount)));
    const amountNow = now ? parseMoney(now.amount) : ZERO;
    const delta = amountNow.minus(amountBefore);
    if (delta.isZero()) continue;
    const quantityBefore: Money = sumMoney(before.map((b) => parseMoney(b.quantity)));
    const quantityNow = now ? parseMoney(now.quantity) : ZERO;
    const first = before[0];
    const priceText = rules.prices.modules[module];
    if (priceText === undefined) throw missingPrice(rules.ispId, q.period, rules.prices, [module]);
    out.push({
      lineId: `${period}/adj/${q.period}/${subscriberId}/${licenceId}/${module}`,
      kind: 'adjustment',
      period,
      servicePeriod: q.period,
      ispId: rules.ispId,
      subscriberId,
      licenceId,
      module,
      days: now?.days ?? 0,
      daysInPeriod: q.frame.daysInPeriod,
      quantity: formatQuantity(quantityNow.minus(quantityBefore)),
      unitPrice: now?.unitPrice ?? formatPrice(priceText),
      amount: formatCents(delta),
      currency: rules.currency,
      activationEventId: now?.activationEventId ?? String((first as PriorLine).activation_event_id),
      activatedAt: now?.activatedAt ?? (first as PriorLine).activated_at.toISOString(),
    });
  }
  return out;
}

function formatPrice(text: string): string {
  const value = parseMoney(text);
  const cents = value.toFixed(2);
  const full = value.toFixed();
  return full.length > cents.length ? full : cents;
}

// ---------------------------------------------------------------------------------------------
// The close

async function lockedRow(trx: Knex.Transaction, ispId: string, period: string): Promise<CloseRow> {
  const row = (await trx('billing_closes').where({ isp_id: ispId, period }).forUpdate().first()) as
    | CloseRow
    | undefined;
  if (!row) {
    throw new RequestError(
      'BILLING_PERIOD_NOT_CLOSED',
      `billing close of ${ispId} ${period} was reset by another run`,
    );
  }
  return row;
}

async function summarise(
  trx: Knex.Transaction,
  ispId: string,
  period: string,
  currency: string,
): Promise<CloseSummary> {
  const groups = await rows<{
    module: string;
    kind: 'charge' | 'adjustment';
    lines: number | string;
    amount: string;
  }>(
    trx,
    'SELECT module, kind, COUNT(*) AS `lines`, SUM(amount) AS amount FROM rated_lines WHERE isp_id = ? AND period = ? GROUP BY module, kind ORDER BY module, kind',
    [ispId, period],
  );
  const totals = groups.map((g) => ({
    module: g.module,
    kind: g.kind,
    lines: Number(g.lines),
    amount: formatCents(parseMoney(String(g.amount))),
  }));
  return {
    currency,
    lineCount: totals.reduce((n, t) => n + t.lines, 0),
    total: formatCents(sumMoney(totals.map((t) => parseMoney(t.amount)))),
    totals,
  };
}

/**
 * Distinct licences with a charge line in the period, kept in `billing_closes.licences` for the
 * operations overview (api/admin/overview.ts), which must not count rated lines per page view.
 */
export async function billableLicences(
  db: Knex | Knex.Transaction,
  ispId: string,
  period: string,
): Promise<number> {
  const [found] = await rows<{ n: number | string }>(
    db,
    "SELECT COUNT(DISTINCT licence_id) AS n FROM rated_lines WHERE isp_id = ? AND period = ? AND kind = 'charge'",
    [ispId, period],
  );
  return Number(found?.n ?? 0);
}

/** Removes an unfinished close, so a rerun starts afresh (after a price was added). */
async function resetClose(deps: LicensingDeps, ispId: string, period: string): Promise<void> {
  await deps.db.transaction(async (trx) => {
    const row = (await trx('billing_closes')
      .where({ isp_id: ispId, period })
      .forUpdate()
      .first()) as CloseRow | undefined;
    if (!row || row.status === 'closed') return;
    await trx('rated_lines').where({ isp_id: ispId, period }).delete();
    await trx('billing_closes').where({ isp_id: ispId, period }).delete();
  });
}

/**
 * Closes `period` (YYYY-MM) for `ispId`; see the module comment. Safe to call again and from
 * two processes at once: a closed period answers `already-closed` with its summary.
 */
export async function closeBillingPeriod(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  options: CloseOptions = {},
): Promise<CloseResult> {
  const metrics = closeMetrics(deps.metrics);
  const startedMs = performance.now();
  try {
    const result = await runClose(deps, ispId, period, options);
    metrics.closes.inc({ isp: ispId, outcome: result.outcome });
    if (result.outcome === 'closed') {
      metrics.seconds.observe({ isp: ispId }, (performance.now() - startedMs) / 1000);
    }
    return result;
  } catch (err) {
    metrics.closes.inc({ isp: ispId, outcome: 'failed' });
    metrics.failures.inc({ isp: ispId, code: isRelaisError(err) ? err.code : 'INTERNAL' });
    throw err;
  }
}

async function runClose(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  options: CloseOptions,
): Promise<CloseResult> {
  const isp = servedIsp(deps, ispId);
  if (!PERIOD_PATTERN.test(period)) {
    throw new RequestError(
      'PERIOD_INVALID',
      `period must be a month written YYYY-MM, got "${period}"`,
      { period },
    );
  }
  const billing = isp.billing;
  if (!billing) {
    throw new ConfigError(
      'BILLING_NOT_CONFIGURED',
      `ISP ${ispId} has no billing section; its periods cannot be closed`,
      { ispId },
    );
  }
  const log = deps.log.child({ isp: ispId, period });
  const key = { isp_id: ispId, period };
  const frame = periodFrame(period, isp.timeZone);

  const finish = async (close: BillingClose, alreadyClosed: boolean): Promise<CloseResult> => {
    await options.afterFreeze?.({ ...close, alreadyClosed });
    return { ...close, outcome: alreadyClosed ? 'already-closed' : 'closed' };
  };

  let row = (await deps.db('billing_closes').where(key).first()) as CloseRow | undefined;
  if (row?.status === 'closed') {
    log.info({ lines: row.line_count }, 'billing period already closed; nothing to do');
    return finish(closeOf(ispId, period, row), true);
  }
  if (!row) {
    const now = deps.now();
    const opensAt = closableAt(period, isp.timeZone, billing.cutoffDays);
    if (now < opensAt && !options.force) {
      throw new RequestError(
        'BILLING_PERIOD_NOT_CLOSABLE',
        `billing period ${period} of ${ispId} closes at ${opensAt.toISOString()} (period end in ${isp.timeZone} plus ${billing.cutoffDays} cutoff days)`,
        { ispId, period, closableAt: opensAt.toISOString() },
      );
    }
    if (now < opensAt)
      log.warn({ closableAt: opensAt }, 'billing period closed early on request (force)');
    const later = (await deps
      .db('billing_closes')
      .where('isp_id', ispId)
      .andWhere('period', '>', period)
      .first('period')) as { period: string } | undefined;
    if (later) {
      throw new RequestError(
        'BILLING_PERIOD_OUT_OF_ORDER',
        `billing period ${later.period} of ${ispId} is already closed or closing; ${period} cannot be closed after it`,
        { ispId, period, later: later.period },
      );
    }
    // A module without a price is found by the rating itself, on the first line that needs it
    // (the close is then undone below): only the ledger knows which modules were entitled in
    // the period, and a subscriber's current modules may include one launched since.
    const prices = pricesFor(ispId, billing, period);
    const previous = (await deps
      .db('billing_closes')
      .where({ isp_id: ispId, status: 'closed' })
      .andWhere('period', '<', period)
      .orderBy('period', 'desc')
      .first('ledger_high_id')) as { ledger_high_id: string } | undefined;
    const rules: StoredRules = {
      currency: billing.currency,
      proration: billing.proration,
      rounding: billing.rounding,
      prices,
    };
    await deps
      .db('billing_closes')
      .insert({
        ...key,
        status: 'running',
        ledger_high_id: await ledgerHighId(deps.db),
        previous_high_id: previous?.ledger_high_id ?? null,
        rules: JSON.stringify(rules),
        started_at: now,
      })
      .onConflict(['isp_id', 'period'])
      .ignore();
    row = (await deps.db('billing_closes').where(key).first()) as CloseRow;
  }
  log.info({ resumedAfter: row.cursor, ledgerHighId: row.ledger_high_id }, 'billing close started');

  const rules: RatingRules = { ispId, ...parseRules(row) };
  const highId = row.ledger_high_id;
  const pageSize = options.pageSubscribers ?? DEFAULT_PAGE_SUBSCRIBERS;
  const counter = linesCounter(deps.metrics);
  const progress: CloseProgress = { period, subscribers: 0, lines: Number(row.line_count) };
  const read = (after: string | null) => {
    const page = ratePage(deps.db, ispId, after, pageSize, highId, frame, rules);
    page.catch(() => {}); // a read ahead that is dropped must not surface as unhandled
    return page;
  };

  try {
    let pending = read(row.cursor);
    let pages = 0;
    for (;;) {
      const page = await pending;
      if (page.subscribers === 0) break;
      pending = read(page.last);
      const outcome = await retryLockConflicts(() =>
        deps.db.transaction(async (trx) => {
          const locked = await lockedRow(trx, ispId, period);
          if (locked.status === 'closed') return { kind: 'closed', row: locked } as const;
          if (locked.cursor !== page.after)
            return { kind: 'moved', cursor: locked.cursor } as const;
          await insertLines(trx, page.lines);
          await trx('billing_closes')
            .where(key)
            .update({
              cursor: page.last,
              line_count: trx.raw('line_count + ?', [page.lines.length]),
            });
          return { kind: 'written' } as const;
        }),
      );
      if (outcome.kind === 'closed') {
        log.info('billing period closed by another run');
        return finish(closeOf(ispId, period, outcome.row), true);
      }
      if (outcome.kind === 'moved') {
        // Another run wrote this page first: carry on after what it committed.
        pending = read(outcome.cursor);
        continue;
      }
      counter.inc({ isp: ispId, kind: 'charge' }, page.lines.length);
      pages++;
      progress.subscribers += page.subscribers;
      progress.lines += page.lines.length;
      options.onProgress?.({ ...progress });
      await options.afterPage?.(pages);
    }

    const adjustments = await adjustmentLines(
      deps,
      ispId,
      period,
      isp.timeZone,
      row,
      options.lookbackPeriods ?? DEFAULT_LOOKBACK_PERIODS,
    );
    const done = await retryLockConflicts(() =>
      deps.db.transaction(async (trx) => {
        const locked = await lockedRow(trx, ispId, period);
        if (locked.status === 'closed') return { row: locked, mine: false };
        await insertLines(trx, adjustments);
        const summary = await summarise(trx, ispId, period, rules.currency);
        const closedAt = deps.now();
        await trx('billing_closes')
          .where(key)
          .update({
            status: 'closed',
            line_count: summary.lineCount,
            summary: JSON.stringify(summary),
            licences: await billableLicences(trx, ispId, period),
            closed_at: closedAt,
          });
        return {
          row: {
            ...locked,
            status: 'closed',
            summary: JSON.stringify(summary),
            closed_at: closedAt,
          } as CloseRow,
          mine: true,
        };
      }),
    );
    const close = closeOf(ispId, period, done.row);
    if (done.mine) {
      counter.inc({ isp: ispId, kind: 'adjustment' }, adjustments.length);
      log.info(
        {
          lines: close.summary.lineCount,
          adjustments: adjustments.length,
          total: close.summary.total,
        },
        'billing period closed',
      );
    }
    return finish(close, !done.mine);
  } catch (err) {
    if (isRelaisError(err) && err.code === 'BILLING_PRICE_MISSING') {
      await resetClose(deps, ispId, period);
      log.warn({ err }, 'billing close refused: a module has no price; nothing kept');
    }
    throw err;
  }
}

function retryLockConflicts<T>(run: () => Promise<T>): Promise<T> {
  return retryDb(run, { attempts: LOCK_RETRIES });
}
