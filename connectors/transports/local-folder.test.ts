import { mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, TransientError } from '../../platform/errors.js';
import { LocalFolderTransport } from './local-folder.js';

/** A tmpfs on Linux, so a different device from the temp folder. */
const OTHER_DEVICE = '/dev/shm';

describe('LocalFolderTransport', () => {
  let base: string;
  let inbox: string;

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'relais-local-'));
    inbox = join(base, 'inbox');
    await mkdir(inbox);
  });

  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('refuses a missing inbox with a ConfigError naming the folder', async () => {
    const missing = join(base, 'nowhere');

    const failure = LocalFolderTransport.open({ type: 'local', inbox: missing });

    await expect(failure).rejects.toBeInstanceOf(ConfigError);
    await expect(failure).rejects.toMatchObject({
      code: 'TRANSPORT_IO_FAILED',
      context: { folder: missing },
    });
  });

  it('refuses an inbox that is a file', async () => {
    await writeFile(join(base, 'file'), 'x');

    const failure = LocalFolderTransport.open({ type: 'local', inbox: join(base, 'file') });

    await expect(failure).rejects.toMatchObject({ code: 'TRANSPORT_IO_FAILED' });
  });

  it('reports a missing inbox on list as a ConfigError', async () => {
    const transport = await LocalFolderTransport.open({ type: 'local', inbox });
    await rm(inbox, { recursive: true });

    await expect(transport.list()).rejects.toBeInstanceOf(ConfigError);
  });

  it.skipIf(process.platform !== 'linux')(
    'moves into a subfolder on another device by copy and unlink, keeping the mtime',
    async () => {
      const elsewhere = await mkdtemp(join(OTHER_DEVICE, 'relais-local-'));
      try {
        expect((await stat(elsewhere)).dev).not.toBe((await stat(inbox)).dev);
        await symlink(elsewhere, join(inbox, 'processed'));
        const mtime = new Date('2026-01-02T03:04:05Z');
        await writeFile(join(inbox, 'a.csv'), 'payload');
        await utimes(join(inbox, 'a.csv'), mtime, mtime);
        const transport = await LocalFolderTransport.open({ type: 'local', inbox });

        await transport.moveTo('a.csv', 'processed');

        expect(await transport.stat('a.csv')).toBeUndefined();
        expect(await readFile(join(elsewhere, 'a.csv'), 'utf8')).toBe('payload');
        expect((await stat(join(elsewhere, 'a.csv'))).mtime).toEqual(mtime);
      } finally {
        await rm(elsewhere, { recursive: true, force: true });
      }
    },
  );

  it('fails a download into a missing staging folder with a TransientError naming it', async () => {
    await writeFile(join(inbox, 'a.csv'), 'secret customer line');
    const transport = await LocalFolderTransport.open({ type: 'local', inbox });
    const staging = join(base, 'no-staging');

    const failure = transport.download('a.csv', join(staging, 'a.csv'));

    await expect(failure).rejects.toBeInstanceOf(TransientError);
    const err = (await failure.catch((e: unknown) => e)) as TransientError;
    expect(err).toMatchObject({ code: 'TRANSPORT_IO_FAILED', context: { folder: staging } });
    expect(err.message).not.toContain('secret customer line');
  });
});
