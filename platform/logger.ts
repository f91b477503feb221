/**
 * The one logger. Object first, constant message second, errors under `err`:
 * `log.info({ feedId, records }, 'feed applied')`. Child loggers pin `isp`, `feedId`, `jobId`.
 *
 * Redaction is a safety net, not the plan: code must never put a customer ref, an e-mail or a
 * secret in a log line in the first place. The censor catches the mistakes that slip through.
 */
import { type DestinationStream, type Logger as PinoLogger, pino } from 'pino';
import pretty from 'pino-pretty';

export type Logger = PinoLogger;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * Field names whose values are secret or personal. They are censored at the top level of a log
 * object, one and two levels down, and in request headers; deeper objects are not scanned, for
 * speed (docs/known-limitations.md).
 */
export const REDACTED_FIELDS = [
  'password',
  'passphrase',
  'secret',
  'token',
  'authorization',
  'cookie',
  'privateKey',
  'apiKey',
  'hmacSecret',
  'activationKey',
  'licenceKey',
  'customerRef',
  'email',
  'contactEmail',
  'firstName',
  'lastName',
  'fullName',
  'customerName',
  'address',
  'phone',
] as const;

export const REDACT_CENSOR = '[redacted]';

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const field of REDACTED_FIELDS) {
    paths.push(field, `*.${field}`, `*.*.${field}`, `req.headers.${field}`);
  }
  return paths;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Human-readable colour output; default: when stdout is a terminal. */
  pretty?: boolean;
  /** File descriptor to write to: 1 (stdout, services) or 2 (stderr, CLI commands). */
  fd?: 1 | 2;
  /** A stream instead of a file descriptor; tests pass one to read the log back. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 1;
  const isTty = fd === 1 ? process.stdout.isTTY : process.stderr.isTTY;
  const usePretty = options.destination === undefined && (options.pretty ?? isTty);
  const stream =
    options.destination ??
    (usePretty
      ? pretty({
          colorize: true,
          translateTime: 'HH:MM:ss.l',
          ignore: 'pid,hostname',
          destination: fd,
        })
      : pino.destination(fd));
  const settings = {
    level: options.level,
    redact: { paths: redactPaths(), censor: REDACT_CENSOR },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return pino(settings, stream);
}

/** A logger that writes nothing; for code paths under test that do not check the log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
