/**
 * The session settings createDb promises (platform/db.ts): DECIMAL and big BIGINT values arrive
 * as exact strings, and DATETIME(3) columns hold UTC whatever zone the process or a session is in.
 */
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { createDb } from '../platform/db.js';
import { useTestContext } from './harness/context.js';

const ctx = useTestContext({ migrate: false });

const processZone = process.env.TZ;
afterEach(() => {
  if (processZone === undefined) delete process.env.TZ;
  else process.env.TZ = processZone;
});

/** The first row of `sql` on a mysql2 connection without createDb's settings, at `timeZone`. */
async function rawRow(timeZone: string, sql: string): Promise<RowDataPacket | undefined> {
  const { host, port, user, password, connectorDatabase } = ctx().config.deployment.mysql;
  const conn = await createConnection({ host, port, user, password, database: connectorDatabase });
  try {
    await conn.query(`SET time_zone = '${timeZone}'`);
    const [rows] = await conn.query<RowDataPacket[]>(sql);
    return rows[0];
  } finally {
    await conn.end();
  }
}

describe('createDb', () => {
  it('reads DECIMAL as the exact string, never a float', async () => {
    const [[row]] = await ctx().connectorDb.raw('SELECT CAST(12.3400 AS DECIMAL(12,4)) AS d');
    expect(row.d).toBe('12.3400');
  });

  it('reads a BIGINT beyond 2^53 as the exact string', async () => {
    const [[row]] = await ctx().connectorDb.raw('SELECT CAST(9007199254740993 AS SIGNED) AS n');
    expect(row.n).toBe('9007199254740993');
  });

  it('pins the session to UTC, which a session left at another zone would not be', async () => {
    const [[ours]] = await ctx().connectorDb.raw(
      'SELECT @@session.time_zone AS tz, TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW()) AS ahead',
    );
    expect({ tz: ours.tz, ahead: Number(ours.ahead) }).toEqual({ tz: '+00:00', ahead: 0 });
    const other = await rawRow(
      '+05:00',
      'SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW()) AS a',
    );
    expect(Number(other?.a)).toBe(300);
  });

  it('stores a Date as its UTC time even when the process runs five hours east', async () => {
    process.env.TZ = 'Asia/Karachi';
    expect(new Date('2026-03-29T01:30:00Z').getTimezoneOffset()).toBe(-300);
    const db = createDb(ctx().config.deployment.mysql, 'connector');
    onTestFinished(() => db.destroy());
    await db.schema.createTable('zone_probes', (t) => {
      t.string('id', 8).primary();
      t.datetime('at', { precision: 3 }).notNullable();
    });
    const at = new Date('2026-03-29T01:30:00.123Z');
    await db('zone_probes').insert({ id: 'p1', at });

    const stored = await rawRow(
      '+05:00',
      "SELECT DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f') AS t FROM zone_probes WHERE id = 'p1'",
    );
    expect(stored?.t).toBe('2026-03-29 01:30:00.123000');
    const row = await db('zone_probes').where({ id: 'p1' }).first();
    expect(row.at.toISOString()).toBe('2026-03-29T01:30:00.123Z');
  });
});
