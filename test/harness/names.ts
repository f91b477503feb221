/**
 * Names for per-test-file resources. Each embeds its creation time so that the global setup can
 * drop leftovers of killed runs without touching a run that is still going.
 */
import { randomBytes } from 'node:crypto';

export const TEST_DB_PREFIX = 'relais_t_';

export function uniqueTestName(): string {
  const time = Math.floor(Date.now() / 1000).toString(36);
  return `${time}_${randomBytes(4).toString('hex')}`;
}

/** Creation time (ms) encoded in a name made by {@link uniqueTestName}, or undefined. */
export function createdAtOf(name: string): number | undefined {
  const match = /^relais_t_([0-9a-z]+)_[0-9a-f]{8}_/.exec(name);
  return match?.[1] ? Number.parseInt(match[1], 36) * 1000 : undefined;
}
