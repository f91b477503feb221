/**
 * The one place where our errors meet BullMQ's retry policy: an error that says it is not
 * retryable (bad ISP data, a wrong config, a bug) becomes an UnrecoverableError, so BullMQ fails
 * the job at once instead of retrying it for hours; anything retryable is rethrown as is.
 */
import { UnrecoverableError } from 'bullmq';
import { isRelaisError, isRetryable } from '../platform/errors.js';

export function forQueue(err: unknown): Error {
  if (isRetryable(err)) return err as Error;
  const text = isRelaisError(err)
    ? `${err.code}: ${err.message}`
    : ((err as Error)?.message ?? String(err));
  return new UnrecoverableError(text);
}
