/**
 * Period close: at the end of each period (a calendar month in the ISP time zone) the licences
 * of an ISP move on. Those whose subscription is still active are renewed to the end of the
 * next period plus the ISP's grace days; suspended ones are held (not extended, so they run
 * out unless the ISP resumes them); cancelled ones lapse at the end of the period closed, or
 * of the period they were cancelled in when that is later (a close run late must not cut short
 * what the cancel left the customer).
 *
 * An ISP may hold a million licences, so the close walks them in chunks ordered by licence id.
 * Each chunk's updates, its ledger events, its counts and the cursor of the run commit in one
 * transaction, with the `period_closes` row locked first: a run killed half-way resumes after
 * its last committed chunk, two runs of one close take turns rather than repeat a chunk, and a
 * closed period is a no-op. Renewal only touches licences whose `period` is behind the one it
 * renews to, and every event carries an idempotency key, so even a chunk seen twice changes
 * nothing twice.
 */
import type { Knex } from 'knex';
import { Counter, Histogram } from 'prom-client';
import { retryLockConflicts } from '../platform/db.js';
import { isRelaisError, RequestError } from '../platform/errors.js';
import { type Metrics, perRegistry } from '../platform/metrics.js';
import { type LicensingDeps, servedIsp } from './context.js';
import { appendEvents, type LedgerEvent } from './ledger.js';
import { nextPeriod, PERIOD_PATTERN, periodBounds, periodOf, validUntilFor } from './periods.js';

export interface RenewalResult {
  /** Licences of active subscriptions extended to the next period (whole close). */
  renewed: number;
  /** Licences of suspended subscriptions left as they were. */
  held: number;
  /** Licences of cancelled subscriptions cut to the end of the period (or of their cancel's). */
  lapsed: number;
  /** The period was closed before this call: nothing was done, the counts are the close's. */
  alreadyClosed: boolean;
}

export interface RenewalProgress {
  period: string;
  scanned: number;
  total: number;
  renewed: number;
  held: number;
  lapsed: number;
}

export interface RenewalOptions {
  /** Licences read per transaction. */
  chunkSize?: number;
  onProgress?: (progress: RenewalProgress) => void;
  /** Called after each committed chunk (tests interrupt a run here). */
  afterChunk?: (chunk: number) => void | Promise<void>;
}

const DEFAULT_CHUNK = 1000;
const DEADLOCK_RETRIES = 3;
const PROGRESS_LOG_MS = 5_000;

interface CloseRow {
  renewed: number;
  held: number;
  lapsed: number;
  cursor: string | null;
  finished_at: Date | null;
}

interface LicenceRow {
  id: string;
  subscriber_id: string;
  period: string | null;
  valid_until: Date | null;
  subscription_status: string;
  /** When the subscription last changed: for a cancelled one, when the server applied the cancel. */
  subscription_updated_at: Date;
}

/**
 * The end of `period` in the ISP zone, refusing a malformed period or one still running: a
 * close of the current month would renew licences for a month nobody has been billed for yet.
 */
export function endOfClosablePeriod(period: string, timeZone: string, now: Date): Date {
  if (!PERIOD_PATTERN.test(period)) {
    throw new RequestError(
      'PERIOD_INVALID',
      `period must be a month written YYYY-MM, got "${period}"`,
      {
        period,
      },
    );
  }
  const { end } = periodBounds(period, timeZone);
  if (end.getTime() > now.getTime()) {
    throw new RequestError(
      'PERIOD_INVALID',
      `period ${period} has not ended yet in ${timeZone}: it ends at ${end.toISOString()}`,
      { period, timeZone },
    );
  }
  return end;
}

function isBehind(licencePeriod: string | null, period: string): boolean {
  return licencePeriod === null || licencePeriod <= period;
}

function countsOf(row: CloseRow): Omit<RenewalResult, 'alreadyClosed'> {
  return { renewed: Number(row.renewed), held: Number(row.held), lapsed: Number(row.lapsed) };
}

/**
 * A cancelled licence lapses once per validity it had: the key names the period it was last
 * valid for (set to the closed one when it had none), so a later close skips it, and a licence
 * resumed and cancelled again lapses anew.
 */
function lapseKey(row: LicenceRow, closing: string): string {
  return `lapsed:${row.id}:${row.period ?? closing}`;
}

/**
 * The latest a cancelled licence may run: the end of the closed period, or of the period of the
 * cancel when later. A close of November run on 15 December must leave a customer who cancelled
 * on 3 December until the end of December, as the cancel did. The cancel's time is bounded by
 * now, so a clock skew cannot stretch it into the future.
 */
function lapseEnd(row: LicenceRow, periodEnd: Date, timeZone: string, now: Date): Date {
  const cancelledAt = row.subscription_updated_at < now ? row.subscription_updated_at : now;
  const cancelEnd = periodBounds(periodOf(cancelledAt, timeZone), timeZone).end;
  return cancelEnd > periodEnd ? cancelEnd : periodEnd;
}

async function notLapsedYet(
  trx: Knex.Transaction,
  cancelled: LicenceRow[],
  closing: string,
): Promise<LicenceRow[]> {
  if (cancelled.length === 0) return [];
  const recorded = (await trx('subscription_events')
    .whereIn(
      'idempotency_key',
      cancelled.map((r) => lapseKey(r, closing)),
    )
    .select('idempotency_key')) as { idempotency_key: string }[];
  const seen = new Set(recorded.map((e) => e.idempotency_key));
  return cancelled.filter((r) => !seen.has(lapseKey(r, closing)));
}

/**
 * Period closes per ISP: runs by outcome, failures by code, the duration of the runs that
 * finished a close, and the licences each finished close renewed, held or lapsed (counted by
 * the run that finishes, so a close resumed after a crash counts its licences once).
 */
export const renewalMetrics = perRegistry((registry: Metrics) => ({
  closes: new Counter({
    name: 'relais_period_closes_total',
    help: 'Period close (licence renewal) runs by ISP and outcome: closed, already-closed, failed.',
    labelNames: ['isp', 'outcome'] as const,
    registers: [registry],
  }),
  failures: new Counter({
    name: 'relais_period_close_failures_total',
    help: 'Period close runs that failed, by ISP and error code.',
    labelNames: ['isp', 'code'] as const,
    registers: [registry],
  }),
  licences: new Counter({
    name: 'relais_period_close_licences_total',
    help: 'Licences of finished period closes by ISP and result: renewed, held, lapsed.',
    labelNames: ['isp', 'result'] as const,
    registers: [registry],
  }),
  seconds: new Histogram({
    name: 'relais_period_close_duration_seconds',
    help: 'Duration of the period close runs that finished a close.',
    labelNames: ['isp'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600],
    registers: [registry],
  }),
}));

/** Closes `period` for one ISP; see the module comment for what happens to each licence. */
export async function renewPeriod(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  options: RenewalOptions = {},
): Promise<RenewalResult> {
  const metrics = renewalMetrics(deps.metrics);
  const startedMs = performance.now();
  try {
    const result = await runRenewal(deps, ispId, period, options);
    metrics.closes.inc({ isp: ispId, outcome: result.alreadyClosed ? 'already-closed' : 'closed' });
    if (!result.alreadyClosed) {
      metrics.seconds.observe({ isp: ispId }, (performance.now() - startedMs) / 1000);
      for (const what of ['renewed', 'held', 'lapsed'] as const) {
        metrics.licences.inc({ isp: ispId, result: what }, result[what]);
      }
    }
    return result;
  } catch (err) {
    metrics.closes.inc({ isp: ispId, outcome: 'failed' });
    metrics.failures.inc({ isp: ispId, code: isRelaisError(err) ? err.code : 'INTERNAL' });
    throw err;
  }
}

async function runRenewal(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  options: RenewalOptions,
): Promise<RenewalResult> {
  const isp = servedIsp(deps, ispId);
  const timeZone = isp.timeZone;
  const periodEnd = endOfClosablePeriod(period, timeZone, deps.now());
  const next = nextPeriod(period);
  const renewedUntil = validUntilFor(next, timeZone, isp.licensing.graceDays);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  const closeKey = { isp_id: ispId, period };
  const log = deps.log.child({ isp: ispId, period });

  await deps
    .db('period_closes')
    .insert({ ...closeKey, renewed: 0, held: 0, lapsed: 0, started_at: deps.now() })
    .onConflict(['isp_id', 'period'])
    .ignore();
  const before = (await deps.db('period_closes').where(closeKey).first()) as CloseRow;
  if (before.finished_at !== null) {
    log.info(countsOf(before), 'period already closed; nothing to do');
    return { ...countsOf(before), alreadyClosed: true };
  }
  log.info({ renewedUntil, resumedAfter: before.cursor }, 'period close started');

  const [{ total }] = (await deps
    .db('licences')
    .where({ isp_id: ispId, status: 'valid' })
    .count({ total: '*' })) as [{ total: number | string }];
  let scanned = before.cursor
    ? Number(
        (
          (await deps
            .db('licences')
            .where({ isp_id: ispId, status: 'valid' })
            .andWhere('id', '<=', before.cursor)
            .count({ n: '*' })) as [{ n: number | string }]
        )[0].n,
      )
    : 0;
  let chunk = 0;
  let lastLog = Date.now();

  /** One chunk in one transaction; returns the close's row after it, or null when finished. */
  const closeChunk = async (trx: Knex.Transaction): Promise<{ row: CloseRow; seen: number }> => {
    const close = (await trx('period_closes').where(closeKey).forUpdate().first()) as CloseRow;
    if (close.finished_at !== null) return { row: close, seen: 0 };
    const now = deps.now();
    const rows = (await trx('licences as l')
      .join('subscriptions as s', 's.subscriber_id', 'l.subscriber_id')
      .where('l.isp_id', ispId)
      .andWhere('l.status', 'valid')
      .modify((q) => {
        if (close.cursor !== null) q.andWhere('l.id', '>', close.cursor);
      })
      .orderBy('l.id')
      .limit(chunkSize)
      .select(
        'l.id',
        'l.subscriber_id',
        'l.period',
        'l.valid_until',
        's.status as subscription_status',
        's.updated_at as subscription_updated_at',
      )
      .forUpdate()) as LicenceRow[];

    const behind = rows.filter((r) => isBehind(r.period, period));
    const renew = behind.filter((r) => r.subscription_status === 'active');
    const held = behind.filter((r) => r.subscription_status === 'suspended').length;
    const lapse = await notLapsedYet(
      trx,
      behind.filter((r) => r.subscription_status === 'cancelled'),
      period,
    );

    const events: LedgerEvent[] = [];
    if (renew.length > 0) {
      await trx('licences')
        .whereIn(
          'id',
          renew.map((r) => r.id),
        )
        .update({ period: next, valid_until: renewedUntil, updated_at: now });
      for (const r of renew) {
        events.push({
          ispId,
          subscriberId: r.subscriber_id,
          licenceId: r.id,
          type: 'renewed',
          data: { period: next, validUntil: renewedUntil.toISOString() },
          idempotencyKey: `renewed:${r.id}:${next}`,
          occurredAt: now,
        });
      }
    }
    if (lapse.length > 0) {
      // valid_until = min(valid_until, lapse end): a cancel may have cut it already. One update
      // per lapse end, and those are few (the closed period's, a late close's next ones).
      const byEnd = new Map<number, string[]>();
      for (const r of lapse) {
        const end = lapseEnd(r, periodEnd, timeZone, now).getTime();
        byEnd.set(end, [...(byEnd.get(end) ?? []), r.id]);
      }
      for (const [endMs, ids] of byEnd) {
        const end = new Date(endMs);
        await trx('licences')
          .whereIn('id', ids)
          .update({
            valid_until: trx.raw('LEAST(COALESCE(valid_until, ?), ?)', [end, end]),
            period: trx.raw('COALESCE(period, ?)', [period]),
            updated_at: now,
          });
      }
      for (const r of lapse) {
        const end = lapseEnd(r, periodEnd, timeZone, now);
        const until = r.valid_until === null || r.valid_until > end ? end : r.valid_until;
        events.push({
          ispId,
          subscriberId: r.subscriber_id,
          licenceId: r.id,
          type: 'lapsed',
          data: { period, validUntil: until.toISOString() },
          idempotencyKey: lapseKey(r, period),
          occurredAt: now,
        });
      }
    }
    await appendEvents(trx, events, now);

    const finished = rows.length < chunkSize;
    const last = rows.at(-1);
    const update: Record<string, unknown> = {
      renewed: trx.raw('renewed + ?', [renew.length]),
      held: trx.raw('held + ?', [held]),
      lapsed: trx.raw('lapsed + ?', [lapse.length]),
    };
    if (last) update.cursor = last.id;
    if (finished) update.finished_at = now;
    await trx('period_closes').where(closeKey).update(update);
    return {
      row: {
        renewed: Number(close.renewed) + renew.length,
        held: Number(close.held) + held,
        lapsed: Number(close.lapsed) + lapse.length,
        cursor: last?.id ?? close.cursor,
        finished_at: finished ? now : null,
      },
      seen: rows.length,
    };
  };

  for (;;) {
    // Provisioning locks a subscription then its licence; a chunk locks them the other way
    // round. InnoDB picks one side of such a cycle to fail: that chunk simply runs again.
    const result = await retryLockConflicts(() => deps.db.transaction(closeChunk), {
      attempts: DEADLOCK_RETRIES,
      onRetry: (attempt) =>
        log.warn({ attempt }, 'period close chunk hit a lock conflict; running it again'),
    });
    chunk++;
    scanned += result.seen;
    const progress = { period, scanned, total: Number(total), ...countsOf(result.row) };
    options.onProgress?.(progress);
    if (Date.now() - lastLog >= PROGRESS_LOG_MS) {
      log.info(progress, 'period close progress');
      lastLog = Date.now();
    }
    if (result.row.finished_at !== null) {
      log.info(progress, 'period closed');
      return { ...countsOf(result.row), alreadyClosed: false };
    }
    await options.afterChunk?.(chunk);
  }
}
