/**
 * A throw-away `redis-server` on a free loopback port, for tests that need a Redis configured
 * differently from the shared one (another eviction policy, a server to stop) without touching
 * what other test files use. Nothing is persisted unless `extraArgs` turn persistence on (for
 * instance `['--appendonly', 'yes']`, as production runs: the later argument wins); `halt()`
 * and `restart()` then play a real outage, the server coming back on the same port from the
 * same folder with what its AOF kept.
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
  /**
   * Stops the server and keeps its folder: SIGTERM is an operator's stop (Redis flushes its
   * AOF and exits), SIGKILL a crash. Resolves once the process is gone.
   */
  halt(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts the server again on the same port, folder and arguments; resolves once it answers. */
  restart(): Promise<void>;
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

interface Running {
  process: ChildProcess;
  exited: Promise<void>;
}

function launch(args: string[]): Running {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { process: child, exited };
}

function isAlive(running: Running): boolean {
  return running.process.exitCode === null && running.process.signalCode === null;
}

/** Waits until the server on `port` answers PING; false if it exited or took over 5 s. */
async function waitForAnswer(port: number, running: Running): Promise<boolean> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await answers(port)) return true;
    if (!isAlive(running)) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Starts redis-server with `extraArgs` (e.g. `['--maxmemory-policy', 'allkeys-lru']`). */
export async function startRedisServer(extraArgs: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'relais-redis-'));
  const args = [
    ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir],
    ...['--save', '', '--appendonly', 'no', ...extraArgs],
  ];
  let running = launch(args);
  const halt = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    if (isAlive(running)) running.process.kill(signal);
    await running.exited;
  };
  const stop = async () => {
    await halt('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const restart = async () => {
    await halt('SIGKILL');
    running = launch(args);
    if (!(await waitForAnswer(port, running))) {
      throw new Error(`redis-server did not answer again on port ${port}`);
    }
  };
  if (await waitForAnswer(port, running)) {
    return { port, url: `redis://127.0.0.1:${port}`, stop, halt, restart };
  }
  await stop();
  throw new Error(`redis-server did not answer on port ${port}`);
}
