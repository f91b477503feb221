import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { collect, runCli, spawnCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { freePort } from './harness/ports.js';

const ctx = useTestContext();

function writeConfig(name: string, extra: Record<string, unknown>): string {
  const { mysql, redis } = ctx().config.deployment;
  const file = join(ctx().dir, name);
  writeFileSync(
    file,
    stringify({
      mysql: {
        connectorDatabase: mysql.connectorDatabase,
        licensingDatabase: mysql.licensingDatabase,
      },
      redis: { prefix: redis.prefix },
      log: { level: 'info', pretty: false },
      shutdownTimeoutMs: 5_000,
      ...extra,
    }),
  );
  return file;
}

async function waitFor(url: string, timeoutMs: number): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('relais start', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'serves the api and stops gracefully on %s',
    async (signal) => {
      const port = await freePort();
      const config = writeConfig(`start-${signal}.yaml`, { http: { port } });
      const child = spawnCli(['start', '--role', 'api', '--config', config]);
      const done = collect(child, 30_000);

      const ready = await waitFor(`http://127.0.0.1:${port}/readyz`, 20_000);
      expect(ready.status).toBe(200);
      child.kill(signal);
      const result = await done;

      expect(result.code).toBe(0);
      const messages = result.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).msg);
      expect(messages).toEqual(
        expect.arrayContaining(['relais started', 'shutting down', 'shutdown complete']),
      );
    },
  );

  it('refuses to start on a schema older than the code, and says what to run', async () => {
    const config = writeConfig('stale.yaml', {
      mysql: {
        connectorDatabase: `${ctx().config.deployment.mysql.connectorDatabase}_stale`,
        licensingDatabase: `${ctx().config.deployment.mysql.licensingDatabase}_stale`,
      },
    });
    await ctx().connectorDb.raw(
      `CREATE DATABASE IF NOT EXISTS \`${ctx().config.deployment.mysql.connectorDatabase}_stale\``,
    );
    await ctx().connectorDb.raw(
      `CREATE DATABASE IF NOT EXISTS \`${ctx().config.deployment.mysql.licensingDatabase}_stale\``,
    );
    try {
      const result = await runCli(['start', '--config', config]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(
        /DB_MIGRATIONS_PENDING: connector database has \d+ pending migration\(s\): run relais migrate/,
      );
    } finally {
      await ctx().connectorDb.raw(
        `DROP DATABASE IF EXISTS \`${ctx().config.deployment.mysql.connectorDatabase}_stale\``,
      );
      await ctx().connectorDb.raw(
        `DROP DATABASE IF EXISTS \`${ctx().config.deployment.mysql.licensingDatabase}_stale\``,
      );
    }
  });
});
