import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  InternalError,
  IspDataError,
  isDatabaseError,
  isRetryable,
  RequestError,
  TransientError,
} from './errors.js';

describe('error taxonomy', () => {
  it.each([
    [new IspDataError('HTTP_BAD_REQUEST', 'x'), false],
    [new TransientError('DB_UNAVAILABLE', 'x'), true],
    [new ConfigError('CONFIG_INVALID', 'x'), false],
    [new RequestError('HTTP_BAD_REQUEST', 'x'), false],
    [new InternalError('INTERNAL', 'x'), false],
  ])('%s says whether it is retryable', (err, retryable) => {
    expect(err.retryable).toBe(retryable);
    expect(isRetryable(err)).toBe(retryable);
  });

  it('keeps code, context, cause and its own class name', () => {
    const cause = new Error('socket closed');
    const err = new TransientError(
      'DB_UNAVAILABLE',
      'cannot reach mysql',
      { host: 'db' },
      { cause },
    );
    expect(err).toMatchObject({
      name: 'TransientError',
      code: 'DB_UNAVAILABLE',
      context: { host: 'db' },
      cause,
    });
    expect(err.httpStatus).toBe(503);
  });

  it('treats network and lock failures from libraries as retryable, anything else as a bug', () => {
    expect(isRetryable(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryable(Object.assign(new Error('x'), { code: 'ER_LOCK_DEADLOCK' }))).toBe(true);
    expect(isRetryable(new TypeError('undefined is not a function'))).toBe(false);
    expect(isRetryable(null)).toBe(false);
    expect(isRetryable(Object.assign(new Error('x'), { code: 'ER_SERVER_SHUTDOWN' }))).toBe(true);
    expect(isRetryable(Object.assign(new Error('pool'), { name: 'KnexTimeoutError' }))).toBe(true);
  });

  it('retries a connection mysql2 closed as fatal, but not a fatal refusal by the server', () => {
    // What a transaction rejects with when its connection was reset (knex's ROLLBACK fails).
    const closed = new Error("ROLLBACK - Can't add new command when connection is in closed state");
    expect(isRetryable(Object.assign(closed, { fatal: true }))).toBe(true);
    const denied = { code: 'ER_ACCESS_DENIED_ERROR', fatal: true };
    expect(isRetryable(Object.assign(new Error('access denied'), denied))).toBe(false);
    const handshake = { code: 'HANDSHAKE_NO_SSL_SUPPORT', fatal: true };
    expect(isRetryable(Object.assign(new Error('no TLS on the server'), handshake))).toBe(false);
    expect(isRetryable(Object.assign(new Error('x'), { fatal: false }))).toBe(false);
  });

  it('tells database failures from other foreign errors', () => {
    expect(isDatabaseError(Object.assign(new Error('x'), { code: 'ER_SERVER_SHUTDOWN' }))).toBe(
      true,
    );
    expect(isDatabaseError(Object.assign(new Error('x'), { sqlState: '08S01' }))).toBe(true);
    expect(isDatabaseError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(false);
    expect(
      isDatabaseError(Object.assign(new Error('x'), { code: 'ECONNREFUSED', fatal: true })),
    ).toBe(true);
    expect(isDatabaseError(new TypeError('x'))).toBe(false);
  });
});
