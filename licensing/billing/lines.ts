/**
 * Reading a closed billing period back: its frozen lines in `lineId` order, as `RatedLine`s or
 * as NDJSON text, one object per line. Lines are read in keyset pages over the primary key
 * (isp_id, period, line_id), so memory holds one page whatever the period's size and no
 * connection is held while a slow client reads. The JSON of a line is built in the schema's
 * field order from frozen values only, so reading a period twice gives the same bytes.
 */
import type { Knex } from 'knex';
import { RequestError } from '../../platform/errors.js';
import { PERIOD_PATTERN } from '../periods.js';
import { type BillingClose, findClose } from './close.js';
import type { RatedLine } from './rated-line.js';

const PAGE_LINES = 5000;

interface LineRow {
  line_id: string;
  kind: 'charge' | 'adjustment';
  period: string;
  service_period: string;
  isp_id: string;
  subscriber_id: string;
  licence_id: string;
  module: string;
  days: number;
  days_in_period: number;
  quantity: string;
  unit_price: string;
  amount: string;
  currency: string;
  activation_event_id: string | number;
  activated_at: Date;
}

function toLine(r: LineRow): RatedLine {
  return {
    lineId: r.line_id,
    kind: r.kind,
    period: r.period,
    servicePeriod: r.service_period,
    ispId: r.isp_id,
    subscriberId: r.subscriber_id,
    licenceId: r.licence_id,
    module: r.module,
    days: Number(r.days),
    daysInPeriod: Number(r.days_in_period),
    quantity: r.quantity,
    unitPrice: r.unit_price,
    amount: String(r.amount),
    currency: r.currency,
    activationEventId: String(r.activation_event_id),
    activatedAt: r.activated_at.toISOString(),
  };
}

/**
 * The close of `period`, or BILLING_PERIOD_NOT_CLOSED (also for a period still closing: its
 * lines are not final). PERIOD_INVALID for a malformed period.
 */
export async function closedPeriod(db: Knex, ispId: string, period: string): Promise<BillingClose> {
  if (!PERIOD_PATTERN.test(period)) {
    throw new RequestError(
      'PERIOD_INVALID',
      `period must be a month written YYYY-MM, got "${period}"`,
      {
        period,
      },
    );
  }
  const close = await findClose(db, ispId, period);
  if (!close) {
    throw new RequestError(
      'BILLING_PERIOD_NOT_CLOSED',
      `billing period ${period} of ${ispId} is not closed; its lines are not available yet`,
      { ispId, period },
    );
  }
  return close;
}

/** Every frozen line of a closed period, in lineId order. Call closedPeriod first. */
export async function* readRatedLines(
  db: Knex,
  ispId: string,
  period: string,
  pageLines = PAGE_LINES,
): AsyncGenerator<RatedLine> {
  const pageAfter = (after: string) =>
    db('rated_lines')
      .where({ isp_id: ispId, period })
      .andWhere('line_id', '>', after)
      .orderBy('line_id')
      .limit(pageLines)
      .select('*') as Promise<LineRow[]>;
  let next: Promise<LineRow[]> | undefined = pageAfter('');
  try {
    while (next) {
      const page: LineRow[] = await next;
      // The next page is read while this one is handed on: the reader never waits twice.
      next = page.length < pageLines ? undefined : pageAfter((page.at(-1) as LineRow).line_id);
      for (const row of page) yield toLine(row);
    }
  } finally {
    // A reader that stops early leaves a page in flight; its outcome no longer matters.
    next?.catch(() => undefined);
  }
}

/** The same lines as NDJSON, one chunk of text per page. */
export async function* ratedLinesNdjson(
  db: Knex,
  ispId: string,
  period: string,
  pageLines = PAGE_LINES,
): AsyncGenerator<string> {
  let chunk = '';
  let count = 0;
  for await (const line of readRatedLines(db, ispId, period, pageLines)) {
    chunk += `${JSON.stringify(line)}\n`;
    if (++count % pageLines === 0) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk !== '') yield chunk;
}
