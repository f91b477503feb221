/**
 * Cluster-wide mutual exclusion through MySQL named locks (GET_LOCK). The lock lives on one
 * pooled connection held for the duration, and MySQL releases it the moment that connection
 * drops, so a process killed mid-work never leaves a lock behind. Lock names are scoped to the
 * database, so two deployments (or two test runs) on one server never block each other.
 */
import { createHash } from 'node:crypto';
import type { Db } from './db.js';

export const BUSY = Symbol('busy');

function lockName(db: Db, name: string): string {
  const database = (db.client.config.connection as { database?: string }).database ?? '';
  const full = `${database}:${name}`;
  // MySQL limits lock names to 64 characters.
  return full.length <= 64
    ? full
    : `relais:${createHash('sha256').update(full).digest('hex').slice(0, 56)}`;
}

/**
 * Runs `fn` holding the named lock, or returns BUSY at once when another holder has it
 * (`waitS` > 0 waits that long first).
 */
export async function withNamedLock<T>(
  db: Db,
  name: string,
  fn: () => Promise<T>,
  waitS = 0,
): Promise<T | typeof BUSY> {
  const key = lockName(db, name);
  const connection = await db.client.acquireConnection();
  try {
    const [rows] = await db
      .raw('SELECT GET_LOCK(?, ?) AS got', [key, waitS])
      .connection(connection);
    if (Number((rows as { got: number | null }[])[0]?.got) !== 1) return BUSY;
    try {
      return await fn();
    } finally {
      await db.raw('SELECT RELEASE_LOCK(?)', [key]).connection(connection);
    }
  } finally {
    await db.client.releaseConnection(connection);
  }
}
