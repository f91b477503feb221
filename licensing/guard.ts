/**
 * Guessing protection of the activation endpoints, kept in Redis so every api process shares
 * it. A 120-bit key cannot be guessed, but a storm of guesses still costs database work and
 * could probe for keys leaked in part; so:
 *
 * - each client address may make `perAddressPerMinute` requests a minute (activation, check-in,
 *   device removal), and each key prefix (the first group of a well-formed key) takes
 *   `perKeyPrefixPerMinute` attempts a minute whoever sends them: beyond, RATE_LIMITED;
 * - each failed key attempt (an activation or a device removal with an unknown or mistyped
 *   key) counts against the address; from the `lockoutAfterFailures`-th on, the address is
 *   locked out of key attempts for `lockoutBaseS`, doubled per further failure up to
 *   `lockoutMaxS`: ACTIVATION_LOCKED. A success forgets the failures; so does a day without one.
 *
 * Windows are fixed minutes (a counter with a 60 s expiry): cheap, and the Retry-After is the
 * counter's remaining life. One Lua script checks and counts before the attempt (one round
 * trip); a second runs only after a failure, or after a success that has failures to forget.
 */
import type { Redis } from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import type { ServerSettings } from '../config/licensing-schema.js';
import { RequestError } from '../platform/errors.js';

type Limits = ServerSettings['activation'];

const WINDOW_S = 60;
const FAILURE_MEMORY_S = 86_400;

// KEYS: lock, address counter, failures[, key prefix counter]
// ARGV: check lock (1|0), address limit, prefix limit, window seconds
// Returns {0, failures} | {1, lock ms left} | {2, address ms left} | {3, prefix ms left}.
const CHECK_SCRIPT = `
if ARGV[1] == '1' then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then return {1, left} end
end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
if n > tonumber(ARGV[2]) then return {2, redis.call('PTTL', KEYS[2])} end
if KEYS[4] then
  local p = redis.call('INCR', KEYS[4])
  if p == 1 then redis.call('EXPIRE', KEYS[4], ARGV[4]) end
  if p > tonumber(ARGV[3]) then return {3, redis.call('PTTL', KEYS[4])} end
end
return {0, tonumber(redis.call('GET', KEYS[3]) or '0')}
`;

// KEYS: failures, lock. ARGV: failures before lockout, base s, max s, failure memory s
// Returns {failures, lockout seconds (0: none)}.
const FAIL_SCRIPT = `
local f = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local after = tonumber(ARGV[1])
if f < after then return {f, 0} end
local lock = tonumber(ARGV[2]) * (2 ^ (f - after))
if lock > tonumber(ARGV[3]) then lock = tonumber(ARGV[3]) end
redis.call('SET', KEYS[2], '1', 'EX', math.floor(lock))
return {f, math.floor(lock)}
`;

interface GuardRedis extends Redis {
  relaisActivationCheck(numKeys: number, ...args: (string | number)[]): Promise<[number, number]>;
  relaisActivationFail(...args: (string | number)[]): Promise<[number, number]>;
}

/** A refusal with the seconds the client must wait (sent as Retry-After). */
export class ThrottledError extends RequestError {
  constructor(
    code: 'RATE_LIMITED' | 'ACTIVATION_LOCKED',
    message: string,
    readonly retryAfterS: number,
  ) {
    super(code, message, { retryAfterS });
  }
}

export interface Admission {
  /** Failures the address has on record; a success clears them when > 0. */
  failures: number;
}

export interface ActivationGuard {
  /**
   * Counts a request and refuses it when over a limit. `activation` for any attempt that proves
   * itself with a key (activation, device removal by key): it also checks the address lockout;
   * `keyPrefix` when that key is well-formed.
   */
  admit(address: string, options: { activation: boolean; keyPrefix?: string }): Promise<Admission>;
  /** Records a failed key attempt; returns the lockout it started, in seconds (0: none). */
  failed(address: string): Promise<number>;
  /** Forgets the address's failures after a successful activation. */
  succeeded(address: string, admission: Admission): Promise<void>;
}

export interface GuardMetrics {
  attempts: Counter<'result'>;
  lockouts: Counter;
}

function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: L[],
): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** The activation counters, registered once per registry. */
export function guardMetrics(registry: Registry): GuardMetrics {
  return {
    attempts: counter(
      registry,
      'relais_activation_attempts_total',
      'Activation attempts by result (activated, reactivated, device-added, unknown, mistyped, suspended, cancelled, seat-limit, rate-limited, locked).',
      ['result'],
    ),
    lockouts: counter(
      registry,
      'relais_activation_lockouts_total',
      'Client addresses locked out of activation after repeated failures.',
      [],
    ),
  };
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function createActivationGuard(
  redis: Redis,
  redisPrefix: string,
  limits: Limits,
  metrics: GuardMetrics,
): ActivationGuard {
  const r = redis as GuardRedis;
  if (typeof r.relaisActivationCheck !== 'function') {
    redis.defineCommand('relaisActivationCheck', { lua: CHECK_SCRIPT });
    redis.defineCommand('relaisActivationFail', { numberOfKeys: 2, lua: FAIL_SCRIPT });
  }
  const key = (...parts: string[]) => `${redisPrefix}:activation:${parts.join(':')}`;

  return {
    async admit(address, { activation, keyPrefix }) {
      const keys = [key('lock', address), key('addr', address), key('fail', address)];
      if (keyPrefix) keys.push(key('prefix', keyPrefix));
      const [verdict, value] = await r.relaisActivationCheck(
        keys.length,
        ...keys,
        activation ? '1' : '0',
        limits.perAddressPerMinute,
        limits.perKeyPrefixPerMinute,
        WINDOW_S,
      );
      if (verdict === 0) return { failures: value };
      if (verdict === 1) {
        metrics.attempts.inc({ result: 'locked' });
        throw new ThrottledError(
          'ACTIVATION_LOCKED',
          'too many failed activations from this address; wait before trying again',
          seconds(value),
        );
      }
      metrics.attempts.inc({ result: 'rate-limited' });
      const what = verdict === 2 ? 'this address' : 'keys starting like this one';
      throw new ThrottledError('RATE_LIMITED', `too many requests for ${what}`, seconds(value));
    },

    async failed(address) {
      const [, lockS] = await r.relaisActivationFail(
        key('fail', address),
        key('lock', address),
        limits.lockoutAfterFailures,
        limits.lockoutBaseS,
        limits.lockoutMaxS,
        FAILURE_MEMORY_S,
      );
      if (lockS > 0) metrics.lockouts.inc();
      return lockS;
    },

    async succeeded(address, admission) {
      if (admission.failures > 0) await redis.del(key('fail', address));
    },
  };
}
