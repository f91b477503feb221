/**
 * Readiness checks: can this process do its work right now? Each check answers within a bound
 * (a hung database must turn /readyz red, not hang it) and gives a reason a person can act on.
 */
import type { Redis } from 'ioredis';
import type { DatabaseSide, Db } from './db.js';
import { pendingMigrations } from './migrations.js';

export interface CheckResult {
  ok: boolean;
  /** Why the check failed; absent when ok. Never holds a secret or personal data. */
  reason?: string;
}

export interface ReadinessCheck {
  name: string;
  run(): Promise<CheckResult>;
}

export const CHECK_TIMEOUT_MS = 2_000;

/** Runs a check with a time bound; a throw or a timeout becomes a failed result. */
export async function runCheck(
  check: ReadinessCheck,
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reason: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([check.run(), timeout]);
  } catch (err) {
    return { ok: false, reason: describeFailure(err) };
  } finally {
    clearTimeout(timer);
  }
}

function describeFailure(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const text = e.code ? `${e.code}: ${e.message ?? ''}` : String(e.message ?? err);
  return text.split('\n')[0]?.slice(0, 200) ?? 'failed';
}

/** MySQL reachable and every migration this code knows applied. */
export function databaseCheck(db: Db, side: DatabaseSide): ReadinessCheck {
  return {
    name: `mysql.${side}`,
    async run() {
      await db.raw('SELECT 1');
      const pending = await pendingMigrations(db, side);
      if (pending.length > 0) {
        return { ok: false, reason: `${pending.length} migration(s) pending: run relais migrate` };
      }
      return { ok: true };
    },
  };
}

export function redisCheck(redis: Redis): ReadinessCheck {
  return {
    name: 'redis',
    async run() {
      const pong = await redis.ping();
      return pong === 'PONG' ? { ok: true } : { ok: false, reason: `unexpected reply ${pong}` };
    },
  };
}
