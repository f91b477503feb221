/**
 * The connector's HTTP client of the subscription server. It sorts every failure into the two
 * kinds the provisioning worker acts on: the server is away or busy (network error, timeout,
 * 5xx, 429: a TransientError, retried with backoff, with the server's Retry-After as a minimum
 * when it sends one), or the server refused the request for good (4xx: a RequestError carrying
 * the server's code and message, never retried). Bodies hold ids, module codes and times only.
 */

import type { ErasureClaims } from '../licensing/erasure.js';
import type {
  BatchResponse,
  DeliveryReport,
  IssuedLicence,
  WireCommand,
} from '../licensing/provisioning-wire.js';
import type { SignedDocument } from '../licensing/signed-document.js';
import { ERROR_CODES, type ErrorCode } from '../platform/error-codes.js';
import { RequestError, TransientError } from '../platform/errors.js';

export interface LicensingClientOptions {
  /** The server's base URL, without a trailing slash (`config.deployment.server.url`). */
  baseUrl: string;
  /** The bearer token the ISP's connector presents. */
  tokenOf: (ispId: string) => string;
  /** Time allowed for one request, answer included. Default 60 s (a full batch is heavy). */
  timeoutMs?: number;
}

export interface LicensingClient {
  /** `POST /v1/provisioning/batches`: one result per command, in order. */
  sendBatch(ispId: string, commands: WireCommand[]): Promise<BatchResponse>;
  /** `POST /v1/licences/:id/key`: a fresh activation key for a licence (the old one stops). */
  reissueKey(ispId: string, licenceId: string): Promise<IssuedLicence>;
  /** `POST /v1/provisioning/deliveries`: keys handed over, for the server's ledger. */
  reportDeliveries(ispId: string, report: DeliveryReport): Promise<void>;
  /**
   * `DELETE /v1/subscribers/:id`: erases a subscriber at the server and returns its signed
   * receipt (the stored one again when it was erased before, with `repeated`).
   */
  eraseSubscriber(ispId: string, subscriberId: string): Promise<SubscriberErasure>;
}

/** The server's answer to an erasure (licensing/erasure.ts). */
export interface SubscriberErasure {
  receipt: SignedDocument;
  erasure: ErasureClaims;
  repeated: boolean;
}

/** Longest Retry-After honoured; beyond it the usual backoff applies. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** Milliseconds of a Retry-After header (seconds or an HTTP date), if usable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - now;
  if (!Number.isFinite(ms) || ms <= 0) return undefined;
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** The code to raise when the server's answer names none we know. */
function fallbackCode(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'PROVISIONING_UNAUTHORIZED';
  if (status === 409) return 'PROVISIONING_KEY_CONFLICT';
  if (status === 422) return 'PROVISIONING_REJECTED';
  return 'PROVISIONING_INVALID';
}

/** A request that got no answer (refused, reset, timed out), as the retryable error it is. */
export function unreachable(
  err: unknown,
  baseUrl: string,
  path: string,
  ispId: string,
): TransientError {
  const inner = (err as { cause?: { code?: string; message?: string } }).cause;
  const cause = inner?.code ?? inner?.message ?? (err as Error).name;
  return new TransientError(
    'LICENSING_SERVER_UNAVAILABLE',
    `licensing server at ${baseUrl} did not answer ${path} (${cause})`,
    { ispId, path, cause },
    { cause: err },
  );
}

/** The server's error body `{ code, message }`, or nothing when the body is not one. */
export function errorBody(text: string): { code?: unknown; message?: unknown } {
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null ? parsed : {};
  } catch {
    return {};
  }
}

export function createLicensingClient(options: LicensingClientOptions): LicensingClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 60_000;

  /** A POST with a JSON body, or a DELETE without one (`body` undefined). */
  async function post(ispId: string, path: string, body: unknown): Promise<unknown> {
    const url = `${baseUrl}${path}`;
    let response: Response;
    let text: string;
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.tokenOf(ispId)}`,
      accept: 'application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      response = await fetch(url, {
        method: body === undefined ? 'DELETE' : 'POST',
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Read the whole body in every case: an unread body keeps its connection from reuse.
      text = await response.text();
    } catch (err) {
      throw unreachable(err, baseUrl, path, ispId);
    }
    const { status } = response;
    if (status >= 200 && status < 300) {
      if (text === '') return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        throw new TransientError(
          'LICENSING_SERVER_UNAVAILABLE',
          `licensing server answered ${path} with a body that is not JSON`,
          { ispId, path, status },
          { cause: err },
        );
      }
    }
    const server = errorBody(text);
    const serverMessage = typeof server.message === 'string' ? server.message : '';
    if (status >= 500 || status === 429) {
      throw new TransientError(
        'LICENSING_SERVER_UNAVAILABLE',
        `licensing server answered ${path} with ${status}${serverMessage ? `: ${serverMessage}` : ''}`,
        {
          ispId,
          path,
          status,
          serverCode: server.code,
          retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
        },
      );
    }
    const code = isErrorCode(server.code) ? server.code : fallbackCode(status);
    throw new RequestError(
      code,
      serverMessage || `licensing server answered ${path} with ${status}`,
      {
        ispId,
        path,
        status,
      },
    );
  }

  return {
    async sendBatch(ispId, commands) {
      const answer = (await post(ispId, '/v1/provisioning/batches', { commands })) as
        | BatchResponse
        | undefined;
      if (!Array.isArray(answer?.results) || answer.results.length !== commands.length) {
        // A partial answer cannot be matched to its commands; the whole batch is sent again.
        throw new TransientError(
          'LICENSING_SERVER_UNAVAILABLE',
          `licensing server answered ${commands.length} commands with ${answer?.results?.length ?? 'no'} results`,
          { ispId },
        );
      }
      return answer;
    },
    async reissueKey(ispId, licenceId) {
      const answer = (await post(ispId, `/v1/licences/${encodeURIComponent(licenceId)}/key`, {})) as
        | (IssuedLicence & { licence?: IssuedLicence })
        | undefined;
      // Accept the licence bare or wrapped as `{ licence }`.
      const licence = answer?.licence ?? answer;
      if (typeof licence?.key !== 'string' || typeof licence.downloadUrl !== 'string') {
        throw new TransientError(
          'LICENSING_SERVER_UNAVAILABLE',
          `licensing server answered a key re-issue of ${licenceId} without a key`,
          { ispId, licenceId },
        );
      }
      return licence;
    },
    async reportDeliveries(ispId, report) {
      await post(ispId, '/v1/provisioning/deliveries', report);
    },
    async eraseSubscriber(ispId, subscriberId) {
      const path = `/v1/subscribers/${encodeURIComponent(subscriberId)}`;
      const answer = (await post(ispId, path, undefined)) as SubscriberErasure | undefined;
      if (typeof answer?.erasure?.receiptId !== 'string' || answer.receipt === undefined) {
        throw new TransientError(
          'LICENSING_SERVER_UNAVAILABLE',
          `licensing server answered the erasure of ${subscriberId} without a receipt`,
          { ispId, subscriberId },
        );
      }
      return answer;
    },
  };
}
