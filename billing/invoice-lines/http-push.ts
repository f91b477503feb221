/**
 * Pushes invoice lines to the ISP billing system's HTTP endpoint, in chunks of
 * `linesPerChunk`, for ISPs that import line items through an API (`billing.invoiceLines.type:
 * http`). Memory holds one chunk whatever the number of lines.
 *
 * A push cannot be taken back: once the ISP has a line, its customer is billed. So every line
 * carries an idempotency key in the body (its lineId, or a stable hash of ISP and lineId), and
 * every request an `Idempotency-Key` header derived from its lines. A retry (after a timeout, a
 * reset connection, a 429 or a 5xx) re-sends the very same chunk with the same keys, and the
 * receiving side drops what it already holds. A whole new push after a crash does the same, so
 * resuming needs no state here. Other 4xx answers are never retried: the chunk is refused as it
 * is, and the error names its lines.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpInvoiceLines } from '../../config/invoice-lines-schema.js';
import { FILE_FIELD_KINDS, LINE_FIELD_KINDS } from '../../config/invoice-lines-schema.js';
import { ConfigError, IspDataError, TransientError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { LineTally, unwritableLine } from './output.js';
import {
  compileFileValue,
  compileLineValue,
  decimalParts,
  type FileTotals,
  type Formatting,
  type InvoiceLinesContext,
} from './values.js';
import { compileXmlDocument } from './xml-layout.js';

export interface PushResult {
  lines: number;
  charges: number;
  adjustments: number;
  /** Exact sum of the line amounts pushed. */
  totalAmount: string;
  chunks: number;
  /** HTTP requests made, retries included. */
  requests: number;
}

export interface PushOptions {
  log?: Logger;
  /** Called after each chunk the ISP accepted, e.g. to show progress. */
  onChunk?: (chunk: { index: number; lines: number; key: string }) => void;
  signal?: AbortSignal;
}

interface Chunk {
  index: number;
  lines: IspInvoiceLine[];
}

/** One request body and its content type. */
type BodyBuilder = (lines: IspInvoiceLine[], totals: FileTotals) => string;

function jsonValue(
  spec: { field?: string | undefined; as: 'string' | 'number' },
  get: (input: never) => string,
  kinds: Record<string, string>,
): (input: never) => string {
  if (spec.as !== 'number') return (input) => JSON.stringify(get(input));
  const decimal = kinds[spec.field as string] === 'decimal';
  // The decimal text is written as a JSON number as it is: never through a float.
  return decimal
    ? (input) => {
        const parts = decimalParts(get(input), { separator: '.' }, String(spec.field));
        return parts.negative ? `-${parts.body}` : parts.body;
      }
    : get;
}

function jsonBody(
  settings: Extract<HttpInvoiceLines['body'], { type: 'json' }>,
  fmt: Formatting,
): BodyBuilder {
  // JSON numbers always take a point; the separator applies to string values only.
  const numberFmt: Formatting = { ...fmt, decimalSeparator: '.' };
  const lineProps = settings.fields.map((f, i) => {
    const label = `billing.invoiceLines.body.fields.${i}`;
    const get = compileLineValue(f, f.as === 'number' ? numberFmt : fmt, label);
    return { key: JSON.stringify(f.name), value: jsonValue(f, get as never, LINE_FIELD_KINDS) };
  });
  const envelope = settings.envelope.map((f, i) => {
    const label = `billing.invoiceLines.body.envelope.${i}`;
    const get = compileFileValue(f, f.as === 'number' ? numberFmt : fmt, label);
    return { key: JSON.stringify(f.name), value: jsonValue(f, get as never, FILE_FIELD_KINDS) };
  });
  const linesKey = JSON.stringify(settings.linesKey);
  return (lines, totals) => {
    let out = '{';
    for (const p of envelope) out += `${p.key}:${(p.value as (t: FileTotals) => string)(totals)},`;
    out += `${linesKey}:[`;
    lines.forEach((line, n) => {
      out += n === 0 ? '{' : ',{';
      lineProps.forEach((p, i) => {
        out += `${i === 0 ? '' : ','}${p.key}:${(p.value as (l: IspInvoiceLine) => string)(line)}`;
      });
      out += '}';
    });
    return `${out}]}`;
  };
}

function xmlBody(
  settings: Extract<HttpInvoiceLines['body'], { type: 'xml' }>,
  fmt: Formatting,
): BodyBuilder {
  const doc = compileXmlDocument(settings, fmt, 'utf-8', 'billing.invoiceLines.body');
  return (lines, totals) => {
    let out = doc.open(totals);
    for (const line of lines) out += doc.line(line);
    return out + doc.close(totals);
  };
}

/** The chunk's `Idempotency-Key`: the same lines of the same ISP and period, the same key. */
export function chunkKey(ctx: InvoiceLinesContext, lines: IspInvoiceLine[]): string {
  const hash = createHash('sha256').update(`${ctx.ispId}\n${ctx.period}`);
  for (const line of lines) hash.update(`\n${line.lineId}`);
  return hash.digest('hex');
}

function describeChunk(chunk: Chunk): string {
  const ids = chunk.lines.map((l) => l.lineId);
  const shown = ids.length <= 5 ? ids.join(', ') : `${ids[0]} … ${ids[ids.length - 1]}`;
  return `chunk ${chunk.index + 1} (${ids.length} lines: ${shown})`;
}

/** Whether an answer (or its absence) is worth another attempt. */
function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Seconds or an HTTP date in Retry-After, in milliseconds; undefined when absent or bad. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Pushes every line, chunk after chunk, and resolves once the ISP accepted them all.
 *
 * @throws BILLING_PUSH_REJECTED (not retryable) on a 4xx other than 408/429 and
 * `duplicateStatus`: a ConfigError for 401, 403, 404 and 405 (credential or URL), an
 * IspDataError otherwise. The chunks before it were delivered.
 * @throws BILLING_PUSH_UNAVAILABLE (retryable) when a chunk still fails after every retry.
 * @throws BILLING_LINE_UNWRITABLE when a value cannot be written as declared.
 */
export async function pushInvoiceLines(
  settings: HttpInvoiceLines,
  lines: AsyncIterable<IspInvoiceLine>,
  ctx: InvoiceLinesContext,
  options: PushOptions = {},
): Promise<PushResult> {
  const fmt: Formatting = {
    ...ctx,
    lineKey: settings.lineKey,
    decimalSeparator: settings.body.decimalSeparator,
    dateFormat: settings.body.dateFormat,
  };
  const build =
    settings.body.type === 'json' ? jsonBody(settings.body, fmt) : xmlBody(settings.body, fmt);
  const contentType =
    settings.body.type === 'json'
      ? 'application/json; charset=utf-8'
      : 'application/xml; charset=utf-8';
  const tally = new LineTally(ctx);
  const result = { chunks: 0, requests: 0 };

  const send = async (chunk: Chunk): Promise<void> => {
    const chunkTally = new LineTally(ctx);
    for (const line of chunk.lines) chunkTally.add(line);
    let body: string;
    try {
      body = build(chunk.lines, chunkTally.totals);
    } catch (err) {
      throw unwritableLine(err, chunk.lines[0]?.lineId);
    }
    const key = chunkKey(ctx, chunk.lines);
    await deliver(settings, chunk, body, key, contentType, result, options);
    result.chunks++;
    options.onChunk?.({ index: chunk.index, lines: chunk.lines.length, key });
  };

  let current: IspInvoiceLine[] = [];
  let index = 0;
  for await (const line of lines) {
    tally.add(line);
    current.push(line);
    if (current.length === settings.linesPerChunk) {
      await send({ index: index++, lines: current });
      current = [];
    }
  }
  if (current.length > 0) await send({ index: index++, lines: current });
  const { lines: count, charges, adjustments } = tally;
  return { lines: count, charges, adjustments, totalAmount: tally.totals.total, ...result };
}

async function deliver(
  settings: HttpInvoiceLines,
  chunk: Chunk,
  body: string,
  key: string,
  contentType: string,
  result: { requests: number },
  options: PushOptions,
): Promise<void> {
  // Headers compare names without case: ours win over a same-named one in `headers`.
  const headers = new Headers(settings.headers);
  headers.set('content-type', contentType);
  headers.set('idempotency-key', key);
  if (settings.auth) headers.set(settings.auth.header, settings.auth.value);
  const { retries, initialDelayMs, maxDelayMs } = settings.retry;
  const what = describeChunk(chunk);
  const host = new URL(settings.url).host;
  let lastProblem = '';

  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      // Exponential, capped, with jitter so many ISPs' pushes do not retry in step.
      const base = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
      const wait = Math.min(maxDelayMs, Math.max(base / 2 + Math.random() * (base / 2), 0));
      await sleep(wait, undefined, { signal: options.signal });
    }
    result.requests++;
    let response: Response;
    try {
      response = await fetch(settings.url, {
        method: settings.method,
        headers,
        body,
        signal: options.signal
          ? AbortSignal.any([options.signal, AbortSignal.timeout(settings.timeoutMs)])
          : AbortSignal.timeout(settings.timeoutMs),
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      lastProblem = (err as Error).name === 'TimeoutError' ? 'timed out' : networkReason(err);
      options.log?.warn(
        { host, chunk: chunk.index + 1, attempt, err },
        'invoice push failed, retrying',
      );
      continue;
    }
    // The answer's body is not needed; reading it frees the connection for the next request.
    await response.arrayBuffer().catch(() => undefined);
    const { status } = response;
    if ((status >= 200 && status < 300) || status === settings.duplicateStatus) return;
    if (isRetryableStatus(status)) {
      lastProblem = `HTTP ${status}`;
      const after = retryAfterMs(response.headers.get('retry-after'), Date.now());
      options.log?.warn(
        { host, chunk: chunk.index + 1, attempt, status },
        'invoice push refused for now, retrying',
      );
      if (after !== undefined && attempt < retries) {
        await sleep(Math.min(after, maxDelayMs), undefined, { signal: options.signal });
      }
      continue;
    }
    const context = {
      host,
      status,
      chunk: chunk.index + 1,
      lineIds: chunk.lines.map((l) => l.lineId),
    };
    const message = `the ISP billing system at ${host} refused ${what} with HTTP ${status}; nothing after it was sent`;
    if ([401, 403, 404, 405].includes(status)) {
      throw new ConfigError('BILLING_PUSH_REJECTED', message, context);
    }
    throw new IspDataError('BILLING_PUSH_REJECTED', message, context);
  }
  throw new TransientError(
    'BILLING_PUSH_UNAVAILABLE',
    `the ISP billing system at ${host} did not take ${what} after ${retries + 1} attempts (last: ${lastProblem}); retry the push, its keys make it safe`,
    { host, chunk: chunk.index + 1, lineIds: chunk.lines.map((l) => l.lineId) },
  );
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  return typeof cause?.message === 'string' ? cause.message : 'network error';
}
