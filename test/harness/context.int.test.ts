import { describe, expect, it } from 'vitest';
import { createTestContext } from './context.js';
import { TEST_DB_PREFIX } from './names.js';

describe('the test context', () => {
  it('merges deployment overrides into its own sections, keeping its own databases and prefix', async () => {
    const ctx = await createTestContext({
      migrate: false,
      deployment: {
        mysql: { poolMax: 3, connectorDatabase: 'relais_connector' },
        redis: { prefix: 'relais' },
      },
    });
    try {
      const { mysql, redis } = ctx.config.deployment;
      expect(mysql.poolMax).toBe(3);
      expect(mysql.connectorDatabase.startsWith(TEST_DB_PREFIX)).toBe(true);
      expect(mysql.licensingDatabase.startsWith(TEST_DB_PREFIX)).toBe(true);
      expect(redis.prefix).toBe(ctx.prefix);
      expect(redis.prefix).not.toBe('relais');
    } finally {
      await ctx.cleanup();
    }
  });
});
