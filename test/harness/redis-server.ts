/**
 * A throw-away `redis-server` on a free loopback port, for tests that need a Redis configured
 * differently from the shared one (another eviction policy, a server to kill) without touching
 * what other test files use. Nothing is persisted: no RDB snapshots, no AOF.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';

export interface RedisServer {
  port: number;
  url: string;
  /** Kills the server and removes its working folder. */
  stop(): Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  const probe = new Redis({
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** Starts redis-server with `extraArgs` (e.g. `['--maxmemory-policy', 'allkeys-lru']`). */
export async function startRedisServer(extraArgs: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'relais-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir];
  const server: ChildProcess = spawn(
    'redis-server',
    [...args, '--save', '', '--appendonly', 'no', ...extraArgs],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await answers(port)) return { port, url: `redis://127.0.0.1:${port}`, stop };
    if (server.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`redis-server did not answer on port ${port}`);
}
