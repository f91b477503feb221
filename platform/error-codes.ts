/**
 * Every error code Relais raises on purpose, with what it means and what to do about it.
 *
 * This table is the single source of `docs/errors.md` (a test fails when the two drift). Codes
 * are SCREAMING_SNAKE with an area prefix. A retired code keeps its row with `retired: true` and
 * is never reused: support staff at ISPs quote these codes in tickets.
 */
export interface ErrorCodeInfo {
  /** HTTP status when the error reaches an API client. */
  readonly httpStatus: number;
  /** One sentence: what happened. */
  readonly meaning: string;
  /** One sentence: what the person reading it should do. */
  readonly action: string;
  readonly retired?: true;
}

export const ERROR_CODES = {
  CONFIG_INVALID: {
    httpStatus: 500,
    meaning:
      'A configuration file does not match its schema; every problem is listed with file, line and column.',
    action: 'Fix each listed line, then run `relais config check` until it prints no problem.',
  },
  CONFIG_NOT_FOUND: {
    httpStatus: 500,
    meaning: 'A configuration file does not exist or cannot be read.',
    action: 'Check the path given with --config (or RELAIS_CONFIG) and the file permissions.',
  },
  DB_UNAVAILABLE: {
    httpStatus: 503,
    meaning: 'MySQL/MariaDB could not be reached or refused the connection.',
    action:
      'Check that the database server is up and that mysql settings in relais.yaml are right; Relais retries transient failures.',
  },
  DB_MIGRATIONS_PENDING: {
    httpStatus: 503,
    meaning: 'The database schema is older than this version of Relais.',
    action: 'Run `relais migrate` before starting this version.',
  },
  REDIS_UNAVAILABLE: {
    httpStatus: 503,
    meaning: 'Redis could not be reached, so no work can be queued.',
    action: 'Check that Redis is up; producers fail fast and callers may retry later.',
  },
  HTTP_NOT_FOUND: {
    httpStatus: 404,
    meaning: 'No route answers this method and path.',
    action: 'Check the URL against the API reference in docs/.',
  },
  HTTP_BAD_REQUEST: {
    httpStatus: 400,
    meaning: 'The request body or parameters are malformed.',
    action: 'Read the message for the offending field and correct the request.',
  },
  HTTP_PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    meaning: 'The request body is larger than the configured limit.',
    action: 'Send smaller bodies, or raise the limit in config if the size is legitimate.',
  },
  INTERNAL: {
    httpStatus: 500,
    meaning: 'A bug: something happened that the code did not expect.',
    action:
      'Report it with the requestId or log line; the details are in the server log, never in the response.',
  },
  SHUTDOWN_TIMEOUT: {
    httpStatus: 500,
    meaning:
      'Graceful shutdown did not finish within the configured bound, so the process exited anyway.',
    action: 'Interrupted jobs are retried by the queue; look at the log for the step that hung.',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}
