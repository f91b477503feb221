/**
 * Runs once before the test files: checks that MariaDB and Redis answer (a clear message beats
 * forty connection errors) and drops test databases left by runs killed more than six hours ago.
 */

import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { createdAtOf, TEST_DB_PREFIX } from './names.js';

const STALE_AFTER_MS = 6 * 3600 * 1000;

export default async function setup(): Promise<void> {
  let conn: Awaited<ReturnType<typeof createConnection>>;
  try {
    conn = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '' });
  } catch (err) {
    throw new Error(
      `tests need MariaDB on 127.0.0.1:3306 (root, no password): ${(err as Error).message}`,
    );
  }
  try {
    const [rows] = await conn.query(`SHOW DATABASES LIKE '${TEST_DB_PREFIX}%'`);
    for (const row of rows as Record<string, string>[]) {
      const name = Object.values(row)[0] as string;
      const created = createdAtOf(name);
      if (created !== undefined && Date.now() - created > STALE_AFTER_MS) {
        await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
      }
    }
  } finally {
    await conn.end();
  }

  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`tests need Redis on 127.0.0.1:6379: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
}
