import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Lifecycle } from './lifecycle.js';
import { silentLogger } from './logger.js';
import { packageRoot } from './package-root.js';

describe('Lifecycle', () => {
  it('runs closers last-registered first, once, even when one fails', async () => {
    const order: string[] = [];
    const lifecycle = new Lifecycle(silentLogger(), 1_000);
    lifecycle.onShutdown('db', () => {
      order.push('db');
    });
    lifecycle.onShutdown('broken', () => {
      order.push('broken');
      throw new Error('boom');
    });
    lifecycle.onShutdown('api', async () => {
      order.push('api');
    });
    expect(await lifecycle.shutdown('test')).toBe(true);
    expect(await lifecycle.shutdown('again')).toBe(true);
    expect(order).toEqual(['api', 'broken', 'db']);
  });

  it('gives up after the bound when a closer hangs', async () => {
    const lifecycle = new Lifecycle(silentLogger(), 100);
    lifecycle.onShutdown('hangs', () => new Promise(() => {}));
    const started = Date.now();
    expect(await lifecycle.shutdown('test')).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

interface ChildExit {
  code: number | null;
  afterSignalMs: number;
  messages: string[];
}

/**
 * A real process with one closer that never finishes and the real signal handlers, bounded by
 * `timeoutMs`. Sends `signal` once it is ready (and again once it says it is shutting down, when
 * `twice`), then reports how it ended and what it logged.
 */
async function runHangingProcess(
  timeoutMs: number,
  signal: NodeJS.Signals,
  twice = false,
): Promise<ChildExit> {
  const root = packageRoot();
  const dir = mkdtempSync(join(tmpdir(), 'relais-lifecycle-'));
  const script = join(dir, 'hang.mjs');
  const url = (file: string) => pathToFileURL(join(root, file)).href;
  writeFileSync(
    script,
    [
      `import { Lifecycle } from '${url('platform/lifecycle.ts')}';`,
      `import { createLogger } from '${url('platform/logger.ts')}';`,
      "const log = createLogger({ level: 'info', pretty: false });",
      `const lifecycle = new Lifecycle(log, ${timeoutMs});`,
      "lifecycle.onShutdown('hangs', () => new Promise(() => {}));",
      'lifecycle.installSignalHandlers();',
      'setInterval(() => {}, 60_000);',
      "log.info('ready');",
    ].join('\n'),
  );
  const tsx = url('node_modules/tsx/dist/loader.mjs');
  const child = spawn(process.execPath, ['--import', tsx, script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  let signalledAt = 0;
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`process did not exit; stdout: ${stdout}`));
    }, 15_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (signalledAt === 0 && stdout.includes('"ready"')) {
        signalledAt = Date.now();
        child.kill(signal);
      }
      // Two signals sent back to back merge into one; the second must follow the first.
      if (twice && stdout.includes('"shutting down"')) {
        twice = false;
        child.kill(signal);
      }
    });
    child.once('close', (code) => {
      clearTimeout(guard);
      rmSync(dir, { recursive: true, force: true });
      const lines = stdout.split('\n').filter(Boolean);
      const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
      resolve({ code, afterSignalMs: Date.now() - signalledAt, messages });
    });
  });
}

describe('Lifecycle signal handlers', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'exits 1 within the bound on %s when a closer hangs',
    async (signal) => {
      const result = await runHangingProcess(300, signal);
      expect(result.code).toBe(1);
      expect(result.afterSignalMs).toBeGreaterThanOrEqual(300);
      expect(result.afterSignalMs).toBeLessThan(3_000);
      expect(result.messages).toEqual(['ready', 'shutting down', 'shutdown timed out']);
    },
  );

  it('exits 1 at once on a second signal, without waiting for the bound', async () => {
    const result = await runHangingProcess(20_000, 'SIGINT', true);
    expect(result.code).toBe(1);
    expect(result.afterSignalMs).toBeLessThan(3_000);
    expect(result.messages).toContain('second signal, exiting now');
  });
});
