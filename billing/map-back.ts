/**
 * Maps the subscription server's rated lines back to the ISP's customer refs, on the connector
 * side where the pairing lives. Lines are read in chunks; each chunk's subscriber ids are looked
 * up in one query (the unique index on `subscribers.subscriber_id`), and the next chunk's query
 * runs while the current chunk is written, so the database wait hides behind the writer.
 *
 * A subscriber erased since the period keeps its customer ref in `erased_subscribers`: the ISP
 * still bills the month it used, and the ref is the ISP's own number, not personal data the
 * erasure removes from the ISP. A subscriber id known to neither table stops the export: the
 * line cannot be given to the ISP, and dropping it would bill less than the invoice says.
 */
import type { Db } from '../platform/db.js';
import { InternalError } from '../platform/errors.js';
import { sqlText } from '../platform/sql-literal.js';
import type { IspInvoiceLine, VendorRatedLine as RatedLine } from './invoice-line.js';

const CHUNK = 2000;

export async function* mapToCustomerRefs(
  db: Db,
  ispId: string,
  lines: AsyncIterable<RatedLine>,
  chunkSize = CHUNK,
): AsyncGenerator<IspInvoiceLine> {
  const chunks = chunked(lines, chunkSize);
  let next = await chunks.next();
  let refs = next.done ? undefined : refsOf(db, ispId, next.value);
  try {
    while (!next.done && refs) {
      const chunk = next.value;
      const known = await refs;
      next = await chunks.next();
      // Start the next lookup before handing this chunk on.
      refs = next.done ? undefined : refsOf(db, ispId, next.value);
      yield* withRefs(ispId, chunk, known);
    }
  } finally {
    // A reader that stops early leaves a lookup in flight; its outcome no longer matters.
    refs?.catch(() => undefined);
  }
}

function* withRefs(
  ispId: string,
  chunk: RatedLine[],
  known: Map<string, string>,
): Generator<IspInvoiceLine> {
  for (const line of chunk) {
    const customerRef = known.get(line.subscriberId);
    if (customerRef === undefined) {
      throw new InternalError(
        'BILLING_SUBSCRIBER_UNKNOWN',
        `rated line ${line.lineId} names subscriber ${line.subscriberId}, unknown to this connector for ${ispId}`,
        { ispId, lineId: line.lineId, subscriberId: line.subscriberId },
      );
    }
    yield { ...line, customerRef };
  }
}

async function* chunked<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let chunk: T[] = [];
  for await (const item of source) {
    chunk.push(item);
    if (chunk.length >= size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

async function refsOf(db: Db, ispId: string, lines: RatedLine[]): Promise<Map<string, string>> {
  const ids = [...new Set(lines.map((l) => l.subscriberId))];
  const found = new Map<string, string>();
  // Raw SQL: knex's builder spends longer on a 2,000-value IN list than MariaDB does.
  const lookup = async (table: string, wanted: string[]) => {
    const [rows] = (await db.raw(
      `SELECT subscriber_id, customer_ref FROM ${table}
        WHERE isp_id = ${sqlText(ispId)} AND subscriber_id IN (${wanted.map(sqlText).join(',')})`,
    )) as [{ subscriber_id: string; customer_ref: string }[]];
    for (const row of rows) found.set(row.subscriber_id, row.customer_ref);
  };
  await lookup('subscribers', ids);
  const missing = ids.filter((id) => !found.has(id));
  if (missing.length > 0) await lookup('erased_subscribers', missing);
  return found;
}
