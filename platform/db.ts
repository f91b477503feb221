/**
 * MySQL/MariaDB connections. Relais keeps two databases: the connector's (customer refs live
 * there) and the licensing server's (only subscriber ids). Two knex instances, never one with
 * cross-database queries, so the privacy boundary is physical: the licensing side holds no
 * connection that could read a customer ref.
 *
 * Session settings every connection gets: UTC time zone (DATETIME(3) columns hold UTC), DECIMAL
 * as strings (money never becomes a float), BIGINT as strings beyond 2^53.
 */

import knexFactory, { type Knex } from 'knex';
import mysql from 'mysql2';
import { createConnection } from 'mysql2/promise';
import { TransientError } from './errors.js';
import type { Logger } from './logger.js';

export type Db = Knex;

export interface MysqlSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  connectorDatabase: string;
  licensingDatabase: string;
  poolMax: number;
  connectTimeoutMs: number;
}

export type DatabaseSide = 'connector' | 'licensing';

export function databaseName(settings: MysqlSettings, side: DatabaseSide): string {
  return side === 'connector' ? settings.connectorDatabase : settings.licensingDatabase;
}

/** Dates go to and come from the database as UTC. */
const TIME_ZONE = 'Z';

/**
 * How mysql2 puts values into a statement: exactly its default, except that a statement with no
 * values is sent as it is. The default scans every statement for `?` placeholders even then,
 * which cost the intake about a second per million rows on its large hand-built upserts.
 */
function queryFormat(sql: string, values: unknown): string {
  if (values === undefined || values === null) return sql;
  if (Array.isArray(values) && values.length === 0) return sql;
  return mysql.format(sql, values as mysql.SqlValue[], false, TIME_ZONE);
}

function connectionSettings(settings: MysqlSettings, database?: string) {
  return {
    queryFormat: queryFormat as (sql: string, values: unknown) => void,
    host: settings.host,
    port: settings.port,
    user: settings.user,
    password: settings.password,
    database,
    timezone: TIME_ZONE,
    charset: 'utf8mb4',
    decimalNumbers: false,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: false,
    connectTimeout: settings.connectTimeoutMs,
  };
}

/** Routes knex's own warnings to our logger instead of the console. */
function knexLog(log: Logger | undefined, side: DatabaseSide) {
  const at = (level: 'warn' | 'error' | 'debug') => (message: unknown) => {
    const text = String(message).split('\n')[0];
    log?.[level]({ side, detail: text }, 'knex reported a problem');
  };
  return { warn: at('warn'), error: at('error'), deprecate: at('warn'), debug: at('debug') };
}

/** A knex instance on one of the two databases. The caller owns it and must `destroy()` it. */
export function createDb(settings: MysqlSettings, side: DatabaseSide, log?: Logger): Db {
  return knexFactory({
    log: knexLog(log, side),
    client: 'mysql2',
    connection: {
      ...connectionSettings(settings, databaseName(settings, side)),
      // The licensing side sends a first activation's statements in two multi-statement round
      // trips (licensing/activation.ts). Every statement there takes its values as
      // placeholders or escaped literals, never as spliced text; see docs/decisions.md.
      multipleStatements: side === 'licensing',
    },
    pool: {
      min: 0,
      max: settings.poolMax,
      afterCreate(
        conn: { query: (sql: string, cb: (err: Error | null) => void) => void },
        done: (err: Error | null, conn: unknown) => void,
      ) {
        conn.query("SET time_zone = '+00:00'", (err) => done(err, conn));
      },
    },
    acquireConnectionTimeout: settings.connectTimeoutMs,
  });
}

/**
 * Creates both databases when absent (utf8mb4, binary collation: customer refs and ids compare
 * exactly). Uses a short-lived connection without a default database.
 */
export async function ensureDatabases(settings: MysqlSettings): Promise<void> {
  let conn: Awaited<ReturnType<typeof createConnection>>;
  try {
    conn = await createConnection(connectionSettings(settings));
  } catch (err) {
    throw new TransientError(
      'DB_UNAVAILABLE',
      `cannot connect to mysql at ${settings.host}:${settings.port}`,
      {},
      { cause: err },
    );
  }
  try {
    for (const name of [settings.connectorDatabase, settings.licensingDatabase]) {
      await conn.query(
        `CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
      );
    }
  } finally {
    await conn.end();
  }
}

/** Drops both databases; for tests and for `relais demo --reset`. */
export async function dropDatabases(settings: MysqlSettings): Promise<void> {
  const conn = await createConnection(connectionSettings(settings));
  try {
    for (const name of [settings.connectorDatabase, settings.licensingDatabase]) {
      await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    }
  } finally {
    await conn.end();
  }
}

/** InnoDB ended this transaction to break a lock conflict (deadlock victim, lock wait timeout). */
export function isLockConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT';
}

export interface LockConflictRetry {
  /** Runs in all, the first included. */
  attempts: number;
  /** Other failures a fresh run cures (a concurrent insert of the same key, for one). */
  also?: (err: unknown) => boolean;
  onRetry?: (attempt: number, err: unknown) => void;
}

/**
 * Runs `run` (a whole transaction) again when InnoDB rolled it back over a lock conflict:
 * the transaction was undone, so running it again is safe, and it then sees what the other
 * side committed. Any other failure, or the last attempt's, is thrown.
 */
export async function retryLockConflicts<T>(
  run: () => Promise<T>,
  { attempts, also, onRetry }: LockConflictRetry,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const curable = isLockConflict(err) || (also?.(err) ?? false);
      if (!curable || attempt >= attempts) throw err;
      onRetry?.(attempt, err);
    }
  }
}
