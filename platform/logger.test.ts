import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger, type LoggerOptions, REDACT_CENSOR } from './logger.js';
import { packageRoot } from './package-root.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'debug', destination }) };
}

describe('logger', () => {
  it('writes JSON with an ISO time, a level label and the message', () => {
    const { lines, log } = capture();
    log.info({ feedId: 'feed_1', records: 3 }, 'feed applied');
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'feed applied',
      feedId: 'feed_1',
      records: 3,
    });
    expect(String(lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('censors personal and secret fields at the top level and two levels down', () => {
    const { lines, log } = capture();
    log.warn(
      {
        customerRef: 'C-0042',
        email: 'jean@example.fr',
        record: { customerRef: 'C-0043', contactEmail: 'x@y.fr', offer: 'BASIC' },
        sftp: { connection: { password: 'hunter2', host: 'sftp.isp' } },
        activationKey: 'ABCD-EFGH',
      },
      'row rejected',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of [
      'C-0042',
      'C-0043',
      'jean@example.fr',
      'x@y.fr',
      'hunter2',
      'ABCD-EFGH',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(lines[0]).toMatchObject({
      customerRef: REDACT_CENSOR,
      record: { offer: 'BASIC' },
      sftp: { connection: { host: 'sftp.isp' } },
    });
  });

  it('keeps pinned fields on child loggers', () => {
    const { lines, log } = capture();
    log.child({ isp: 'demo-fai' }).debug({ row: 4 }, 'row mapped');
    expect(lines[0]).toMatchObject({ isp: 'demo-fai', row: 4, level: 'debug' });
  });
});

/**
 * Logs one line from a child process whose stdout is a pipe, or a terminal when `onTty` (through
 * util-linux `script`), and returns what it wrote: the only honest way to see what fd 1 gets.
 */
function logFromChild(options: LoggerOptions, onTty = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'relais-logger-'));
  const script = join(dir, 'log-once.mjs');
  const logger = pathToFileURL(join(packageRoot(), 'platform/logger.ts')).href;
  writeFileSync(
    script,
    `import { createLogger } from '${logger}';\n` +
      "createLogger(JSON.parse(process.env.LOG_OPTIONS)).info({ feedId: 'feed_1' }, 'feed applied');\n",
  );
  const tsx = pathToFileURL(join(packageRoot(), 'node_modules/tsx/dist/loader.mjs')).href;
  const argv = [process.execPath, '--import', tsx, script];
  const env = { ...process.env, LOG_OPTIONS: JSON.stringify(options) };
  try {
    if (onTty) {
      const line = argv.map((a) => `'${a}'`).join(' ');
      return execFileSync('script', ['-qec', line, '/dev/null'], { env, encoding: 'utf8' });
    }
    const [command, ...args] = argv as [string, ...string[]];
    return spawnSync(command, args, { env, encoding: 'utf8' }).stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const isJsonLine = (text: string) => {
  try {
    return typeof JSON.parse(text.trim()) === 'object';
  } catch {
    return false;
  }
};

const hasScript = spawnSync('script', ['--version']).status === 0;

describe('logger output', () => {
  it('writes JSON when stdout is not a terminal and pretty is not asked for', () => {
    const text = logFromChild({ level: 'info' });
    expect(JSON.parse(text.trim())).toMatchObject({ msg: 'feed applied', feedId: 'feed_1' });
  });

  it('writes human-readable lines when pretty is asked for, even into a pipe', () => {
    const text = logFromChild({ level: 'info', pretty: true });
    expect(isJsonLine(text)).toBe(false);
    expect(text).toMatch(/INFO.*feed applied/);
  });

  it.skipIf(!hasScript)('writes human-readable lines by default on a terminal', () => {
    const text = logFromChild({ level: 'info' }, true);
    expect(isJsonLine(text)).toBe(false);
    expect(text).toMatch(/INFO.*feed applied/);
  });

  it.skipIf(!hasScript)('writes JSON on a terminal when pretty is turned off', () => {
    const text = logFromChild({ level: 'info', pretty: false }, true);
    expect(JSON.parse(text.trim())).toMatchObject({ msg: 'feed applied' });
  });
});
