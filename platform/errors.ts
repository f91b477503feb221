/**
 * The error taxonomy. Classes are split by who has to act, not by where the error happened:
 *
 * - {@link IspDataError}: the ISP sent something unusable. Not retried; the file or row is
 *   rejected and the ISP is told why.
 * - {@link TransientError}: infrastructure trouble (network, lock, a service restarting).
 *   Retried with backoff.
 * - {@link ConfigError}: a deployment or ISP config is wrong. Fails at start-up or at the
 *   config check, never on the first monthly run.
 * - {@link RequestError}: an API client sent a bad request. Answered with a 4xx, not logged
 *   as a failure of ours.
 * - {@link InternalError}: a bug. Logged at error level; the details never leave the server.
 *
 * Every class carries a stable {@link ErrorCode} and `retryable`, which is what queue policy
 * reads. Messages are lowercase, name the thing and its id, and never hold personal data.
 */
import { ERROR_CODES, type ErrorCode } from './error-codes.js';

export type ErrorContext = Record<string, unknown>;

export abstract class RelaisError extends Error {
  abstract readonly retryable: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }

  /** HTTP status an API client receives for this error. */
  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }
}

/** The ISP sent something unusable. Retrying will not help: reject it and tell the ISP. */
export class IspDataError extends RelaisError {
  readonly retryable = false;
}

/** A service is down or busy. Retrying later is expected to succeed. */
export class TransientError extends RelaisError {
  readonly retryable = true;
}

/** A configuration is wrong. A person must edit a file; nothing is retried. */
export class ConfigError extends RelaisError {
  readonly retryable = false;
}

/** An API client sent a request we refuse. Answered with the code's 4xx status. */
export class RequestError extends RelaisError {
  readonly retryable = false;
}

/** Something the code did not expect: a bug. */
export class InternalError extends RelaisError {
  readonly retryable = false;
}

export function isRelaisError(value: unknown): value is RelaisError {
  return value instanceof RelaisError;
}

/**
 * Whether a failure is worth retrying. Relais errors say so themselves; for foreign errors
 * only well-known network and lock failures count, anything else is treated as a bug.
 */
export function isRetryable(err: unknown): boolean {
  if (isRelaisError(err)) return err.retryable;
  // knex's pool gives up with this error (no code) while the database is unreachable.
  if ((err as { name?: unknown } | null)?.name === 'KnexTimeoutError') return true;
  const { code, fatal } = (err as { code?: unknown; fatal?: unknown } | null) ?? {};
  if (typeof code === 'string' && RETRYABLE_SYSTEM_CODES.has(code)) return true;
  // mysql2 marks the failures of a connection itself as fatal. One with no code at all is the
  // network, not the statement: after a reset, knex's ROLLBACK on the dead connection fails
  // with "Can't add new command when connection is in closed state" (no code), and that is the
  // error a transaction rejects with. The next connection works. A fatal error with a code
  // (a refused login, a TLS or handshake setting) fails the same way every time.
  return fatal === true && code === undefined;
}

/**
 * Whether a foreign error comes from MySQL/MariaDB or its pool (mysql2 codes and fatal
 * connection errors, knex's pool timeout), so an edge can answer DB_UNAVAILABLE rather than a bare internal error.
 */
export function isDatabaseError(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown; sqlState?: unknown; fatal?: unknown } | null;
  if (e?.name === 'KnexTimeoutError' || typeof e?.sqlState === 'string') return true;
  // mysql2 marks the failures of a connection itself (refused, reset) as fatal.
  if (e?.fatal === true) return true;
  return typeof e?.code === 'string' && /^(ER_|PROTOCOL_)/.test(e.code);
}

const RETRYABLE_SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  // A server shutting down or restarting: the statement dies, the next connection works.
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);
