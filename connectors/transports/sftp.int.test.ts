import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, chown, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, TransientError } from '../../platform/errors.js';
import { createLogger } from '../../platform/logger.js';
import { freePort } from '../../test/harness/ports.js';
import { type SshdServer, sftpLoginOf, startSshd } from '../../test/harness/sshd.js';
import { type OpenTuning, openPolledTransport } from './open.js';
import { type SftpOptions, sftpOptionsSchema } from './sftp.options.js';
import { fingerprintOf } from './sftp-host-key.js';
import type { PolledTransport } from './transport.js';

const FAST_RETRIES: OpenTuning = { connectBackoff: { baseDelayMs: 20, maxDelayMs: 50 } };
/** Slow enough that a single retry would show in the elapsed time. */
const SLOW_RETRIES: OpenTuning = { connectBackoff: { baseDelayMs: 5_000, maxDelayMs: 5_000 } };

function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'debug', destination }) };
}

function retriesIn(lines: Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.filter((line) => line.msg === 'sftp connect failed, retrying');
}

/** Waits until the local file holds `minBytes`, or the download has already settled. */
async function waitForSize(path: string, minBytes: number, download: Promise<unknown>) {
  let settled = false;
  download.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  while (!settled) {
    const size = await stat(path).then(
      (s) => s.size,
      () => 0,
    );
    if (size >= minBytes) return;
    await sleep(5);
  }
}

describe('sftp transport', () => {
  let server: SshdServer;
  let work: string;

  function optionsOf(overrides: Record<string, unknown> = {}): SftpOptions {
    return sftpOptionsSchema.parse({ ...sftpLoginOf(server), ...overrides });
  }

  /** A file in the server's inbox, owned by the SFTP user; sparse, so large ones are cheap. */
  async function putLarge(name: string, sizeBytes: number): Promise<string> {
    const path = join(server.root, 'inbox', name);
    await writeFile(path, '');
    await truncate(path, sizeBytes);
    const owner = await stat(join(server.root, 'inbox'));
    await chown(path, owner.uid, owner.gid);
    return path;
  }

  beforeAll(async () => {
    server = await startSshd();
    work = await mkdtemp(join(tmpdir(), 'relais-sftp-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
    await server?.stop();
  });

  describe('authentication', () => {
    it('logs in with a password', async () => {
      const options = optionsOf({ privateKey: undefined, password: server.password });
      const transport = await openPolledTransport(options, capturedLog().log);

      await expect(transport.list()).resolves.toEqual([]);
      await transport.close();
    });

    it('logs in with a private key given as text', async () => {
      const transport = await openPolledTransport(optionsOf(), capturedLog().log);

      await expect(transport.list()).resolves.toEqual([]);
      await transport.close();
    });

    it('logs in with an encrypted key file and its passphrase, and refuses a wrong one', async () => {
      const keyFile = join(work, 'client_key');
      await writeFile(keyFile, server.privateKey, { mode: 0o600 });
      execFileSync('ssh-keygen', ['-q', '-p', '-P', '', '-N', 'open sesame', '-f', keyFile]);
      const base = { privateKey: undefined, privateKeyFile: keyFile };

      const transport = await openPolledTransport(
        optionsOf({ ...base, passphrase: 'open sesame' }),
        capturedLog().log,
      );
      await expect(transport.list()).resolves.toEqual([]);
      await transport.close();

      const wrong = openPolledTransport(
        optionsOf({ ...base, passphrase: 'nope' }),
        capturedLog().log,
      );
      await expect(wrong).rejects.toMatchObject({ code: 'SFTP_AUTH_FAILED', retryable: false });
    });

    it('refuses a wrong password with SFTP_AUTH_FAILED and does not retry', async () => {
      const { lines, log } = capturedLog();
      const options = optionsOf({ privateKey: undefined, password: 'wrong', connectRetries: 3 });
      const startedAt = Date.now();

      const failure = openPolledTransport(options, log, SLOW_RETRIES);

      await expect(failure).rejects.toBeInstanceOf(ConfigError);
      await expect(failure).rejects.toMatchObject({ code: 'SFTP_AUTH_FAILED' });
      expect(retriesIn(lines)).toEqual([]);
      expect(Date.now() - startedAt).toBeLessThan(4_000);
    });
  });

  describe('host key', () => {
    it('refuses a server whose key is not the pinned one, though the credentials are good', async () => {
      const { lines, log } = capturedLog();
      const pinned = fingerprintOf(randomBytes(51));
      const options = optionsOf({ hostKeyFingerprint: pinned, connectRetries: 3 });

      const failure = openPolledTransport(options, log, SLOW_RETRIES);

      await expect(failure).rejects.toBeInstanceOf(ConfigError);
      const err = (await failure.catch((e: unknown) => e)) as ConfigError;
      expect(err.code).toBe('SFTP_HOST_KEY_MISMATCH');
      expect(err.message).toContain(pinned);
      expect(err.message).toContain(server.hostKeyFingerprint);
      expect(err.context).toMatchObject({ expected: pinned, presented: server.hostKeyFingerprint });
      expect(retriesIn(lines)).toEqual([]);
    });
  });

  describe('connecting', () => {
    it('gives up on a port nobody listens on with SFTP_CONNECT_FAILED after the retries', async () => {
      const { lines, log } = capturedLog();
      const options = optionsOf({
        port: await freePort(),
        password: 'not-logged',
        connectRetries: 2,
      });

      const failure = openPolledTransport(options, log, FAST_RETRIES);

      await expect(failure).rejects.toBeInstanceOf(TransientError);
      await expect(failure).rejects.toMatchObject({
        code: 'SFTP_CONNECT_FAILED',
        context: { attempts: 3 },
      });
      expect(retriesIn(lines).map((line) => line.attempt)).toEqual([1, 2]);
      expect(JSON.stringify(lines)).not.toContain('not-logged');
    });

    it('refuses an inbox that does not exist with a ConfigError', async () => {
      const failure = openPolledTransport(optionsOf({ inbox: '/nowhere' }), capturedLog().log);

      await expect(failure).rejects.toBeInstanceOf(ConfigError);
      await expect(failure).rejects.toMatchObject({ code: 'TRANSPORT_IO_FAILED' });
    });

    it('runs calls made at once one after another, each with its right answer', async () => {
      await putLarge('one.bin', 3 * 1024 * 1024);
      await putLarge('two.bin', 1024);
      const transport = await openPolledTransport(optionsOf(), capturedLog().log);

      const [listing, one, two, missing] = await Promise.all([
        transport.list(),
        transport.download('one.bin', join(work, 'one.bin')),
        transport.stat('two.bin'),
        transport.stat('three.bin'),
        transport.writeText('notes', 'n.txt', 'hello'),
      ]);

      expect(listing.map((f) => f.name).sort()).toEqual(['one.bin', 'two.bin']);
      expect(one.sizeBytes).toBe(3 * 1024 * 1024);
      expect(two?.sizeBytes).toBe(1024);
      expect(missing).toBeUndefined();
      await transport.close();
      await rm(join(server.root, 'inbox/one.bin'));
      await rm(join(server.root, 'inbox/two.bin'));
    });
  });

  describe('downloading', () => {
    it.each([
      ['get', false],
      ['fastGet', true],
    ])(
      'with %s, a server killed mid-download gives SFTP_TRANSFER_FAILED and no partial file',
      async (_mode, fastGet) => {
        await putLarge('big.bin', 200 * 1024 * 1024);
        const transport: PolledTransport = await openPolledTransport(
          optionsOf({ fastGet }),
          capturedLog().log,
          FAST_RETRIES,
        );
        const localPath = join(work, `big-${fastGet}`);

        const download = transport.download('big.bin', localPath);
        await waitForSize(localPath, 1024 * 1024, download);
        server.kill();

        await expect(download).rejects.toBeInstanceOf(TransientError);
        await expect(download).rejects.toMatchObject({ code: 'SFTP_TRANSFER_FAILED' });
        await expect(stat(localPath)).rejects.toThrow(/ENOENT/);

        await server.restart();
        await expect(transport.stat('big.bin')).resolves.toMatchObject({
          sizeBytes: 200 * 1024 * 1024,
        });
        await transport.close();
        await rm(join(server.root, 'inbox/big.bin'));
      },
    );

    it('refuses a download whose byte count differs from the size stat gave just before', async () => {
      const remote = await putLarge('growing.bin', 100 * 1024 * 1024);
      const transport = await openPolledTransport(optionsOf(), capturedLog().log);
      const localPath = join(work, 'growing.bin');

      const download = transport.download('growing.bin', localPath);
      await waitForSize(localPath, 1, download);
      await appendFile(remote, 'the ISP was still writing');

      await expect(download).rejects.toMatchObject({
        code: 'SFTP_TRANSFER_FAILED',
        context: { expected: 100 * 1024 * 1024 },
      });
      await expect(stat(localPath)).rejects.toThrow(/ENOENT/);
      await transport.close();
      await rm(remote);
    });
  });
});
