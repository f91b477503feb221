import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SshdServer, startSshd } from './sshd.js';

/** OpenSSH's fingerprint of a raw host key: base64 SHA-256 without padding. */
function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

describe('sshd test harness', () => {
  let server: SshdServer;
  beforeAll(async () => {
    server = await startSshd();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('serves SFTP by key in a chroot, with the host key it announces', async () => {
    writeFileSync(join(server.root, 'inbox/export.csv'), 'ref;offer\n');
    const client = new SftpClient();
    let seen = '';
    await client.connect({
      host: server.host,
      port: server.port,
      username: server.username,
      privateKey: server.privateKey,
      hostVerifier: (key: Buffer) => {
        seen = fingerprintOf(key);
        return seen === server.hostKeyFingerprint;
      },
    });
    try {
      expect(seen).toBe(server.hostKeyFingerprint);
      expect((await client.list('/inbox')).map((f) => f.name)).toEqual(['export.csv']);
      await client.put(Buffer.from('invoice'), '/outbox/inv.tmp');
      await client.posixRename('/outbox/inv.tmp', '/outbox/inv.csv');
      expect(readFileSync(join(server.root, 'outbox/inv.csv'), 'utf8')).toBe('invoice');
      await expect(client.list('/etc')).rejects.toThrow();
    } finally {
      await client.end();
    }
  });

  it('accepts the password and refuses a wrong one', async () => {
    const ok = new SftpClient();
    await ok.connect({
      host: server.host,
      port: server.port,
      username: server.username,
      password: server.password,
    });
    expect(await ok.exists('/inbox')).toBe('d');
    await ok.end();

    const bad = new SftpClient();
    await expect(
      bad.connect({
        host: server.host,
        port: server.port,
        username: server.username,
        password: 'wrong',
        retries: 0,
      } as never),
    ).rejects.toThrow(/authentication/i);
  });
});
