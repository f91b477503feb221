/**
 * The connector's reader of a closed period at the subscription server: the close summary and
 * the frozen rated lines, streamed as NDJSON and checked line by line against the wire schema.
 * The lines never sit in memory as a whole: the caller pulls them one by one, and the HTTP body
 * is read only as fast as the caller writes.
 *
 * A stream that stops early at a line boundary would look complete, so the reader counts the
 * lines and compares them with the summary's count: a short stream is a TransientError (read
 * the period again), never a short invoice.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  checkRatedLine,
  type RatedLine,
  ratedLineSchema,
} from '../licensing/billing/rated-line.js';
import { isErrorCode } from '../platform/error-codes.js';
import { RequestError, TransientError } from '../platform/errors.js';
import { splitLines } from '../platform/lines.js';
import { errorBody, unreachable } from './licensing-client.js';

export interface BillingClientOptions {
  /** The server's base URL, without a trailing slash. */
  baseUrl: string;
  tokenOf: (ispId: string) => string;
  /** Time allowed for the server to start answering. Default 60 s. */
  timeoutMs?: number;
}

/** What the server says about a closed period (`GET /v1/billing/periods/:period`). */
export interface PeriodSummary {
  ispId: string;
  period: string;
  closedAt: string;
  lineCount: number;
  currency: string;
  /** Sum of every line amount, a decimal string. */
  total: string;
  [field: string]: unknown;
}

export interface BillingClient {
  summary(ispId: string, period: string): Promise<PeriodSummary>;
  /** The period's rated lines in `lineId` order; throws if the stream ends short. */
  lines(ispId: string, period: string, expected: number): AsyncGenerator<RatedLine>;
}

export function createBillingClient(options: BillingClientOptions): BillingClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 60_000;

  async function get(ispId: string, path: string, accept: string): Promise<Response> {
    let response: Response;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutMs);
    try {
      response = await fetch(`${baseUrl}${path}`, {
        headers: { authorization: `Bearer ${options.tokenOf(ispId)}`, accept },
        signal: timeout.signal,
      });
    } catch (err) {
      throw unreachable(err, baseUrl, path, ispId);
    } finally {
      // Headers are in; the body is read at the caller's pace, with no deadline of its own.
      clearTimeout(timer);
    }
    if (response.ok) return response;
    const server = errorBody(await response.text());
    const message =
      typeof server.message === 'string' ? server.message : `status ${response.status}`;
    if (response.status >= 500 || response.status === 429) {
      throw new TransientError(
        'LICENSING_SERVER_UNAVAILABLE',
        `licensing server answered ${path} with ${response.status}: ${message}`,
        { ispId, path, status: response.status },
      );
    }
    const code =
      typeof server.code === 'string' && isErrorCode(server.code)
        ? server.code
        : response.status === 401 || response.status === 403
          ? 'PROVISIONING_UNAUTHORIZED'
          : 'BILLING_PERIOD_NOT_CLOSED';
    throw new RequestError(
      code,
      `licensing server refused ${path} (${response.status}): ${message}`,
      { ispId, path, status: response.status },
    );
  }

  return {
    async summary(ispId, period) {
      const response = await get(ispId, `/v1/billing/periods/${period}`, 'application/json');
      return (await response.json()) as PeriodSummary;
    },

    async *lines(ispId, period, expected) {
      const path = `/v1/billing/periods/${period}/lines`;
      const response = await get(ispId, path, 'application/x-ndjson');
      if (response.body === null) {
        throw new TransientError('LICENSING_SERVER_UNAVAILABLE', `${path} answered no body`, {
          ispId,
        });
      }
      const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
      let count = 0;
      try {
        for await (const text of splitLines(body)) {
          if (text === '') continue;
          count += 1;
          yield parseLine(text, path, count);
        }
      } catch (err) {
        if (err instanceof RequestError) throw err;
        throw new TransientError(
          'LICENSING_SERVER_UNAVAILABLE',
          `the rated lines of ${ispId} ${period} stopped after ${count} lines (${(err as Error).message})`,
          { ispId, period, count },
          { cause: err },
        );
      } finally {
        body.destroy();
      }
      if (count !== expected) {
        throw new TransientError(
          'LICENSING_SERVER_UNAVAILABLE',
          `the rated lines of ${ispId} ${period} ended after ${count} of ${expected} lines`,
          { ispId, period, count, expected },
        );
      }
    },
  };
}

function parseLine(text: string, path: string, line: number): RatedLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RequestError('BILLING_LINE_INVALID', `${path} line ${line} is not JSON`, { line });
  }
  if (checkRatedLine(value) === null) return value as RatedLine;
  // Slow path, only for a line already known to be wrong: zod words the reason.
  const parsed = ratedLineSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(line)';
    throw new RequestError(
      'BILLING_LINE_INVALID',
      `${path} line ${line}, field ${field}: ${issue?.message ?? 'invalid'}`,
      { line, field },
    );
  }
  return parsed.data;
}
