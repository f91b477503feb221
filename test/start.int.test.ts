import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { collect, runCli, spawnCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { freePort } from './harness/ports.js';
import { startRedisServer } from './harness/redis-server.js';

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

/** Resolves with the first JSON log line on the child's stdout that `matches`. */
function waitForLogLine(
  child: ChildProcess,
  matches: (line: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(
      () => reject(new Error(`no such log line in: ${buffered}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const text of buffered.split('\n').slice(0, -1)) {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (!matches(line)) continue;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(line);
        return;
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', () => reject(new Error(`exited before the log line: ${buffered}`)));
  });
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

  it('warns on the log at start-up when Redis may evict queued jobs, and runs on', async () => {
    const redis = await startRedisServer(['--maxmemory-policy', 'allkeys-lru']);
    onTestFinished(() => redis.stop());
    const port = await freePort();
    const config = writeConfig('evicting.yaml', {
      http: { port },
      redis: { url: redis.url, prefix: ctx().config.deployment.redis.prefix },
    });
    const child = spawnCli(['start', '--role', 'api', '--config', config]);
    const done = collect(child, 30_000);

    const warning = await waitForLogLine(child, (line) => line.policy !== undefined, 20_000);
    expect(warning).toMatchObject({
      level: 'warn',
      policy: 'allkeys-lru',
      msg: 'redis maxmemory-policy is not noeviction: queued jobs can be evicted',
    });
    await waitFor(`http://127.0.0.1:${port}/healthz`, 20_000);
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
  });

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
