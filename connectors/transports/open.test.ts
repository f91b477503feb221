import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InternalError } from '../../platform/errors.js';
import { silentLogger } from '../../platform/logger.js';
import { httpPushOptionsSchema } from './http-push.options.js';
import { LocalFolderTransport } from './local-folder.js';
import { openPolledTransport } from './open.js';

describe('openPolledTransport', () => {
  it('opens a local folder as a LocalFolderTransport', async () => {
    const inbox = await mkdtemp(join(tmpdir(), 'relais-open-'));
    try {
      const transport = await openPolledTransport({ type: 'local', inbox }, silentLogger());

      expect(transport).toBeInstanceOf(LocalFolderTransport);
      expect(transport.description).toBe(`file://${inbox}`);
      await transport.close();
    } finally {
      await rm(inbox, { recursive: true, force: true });
    }
  });

  it('refuses the http transport, which is pushed to and never polled', async () => {
    const http = httpPushOptionsSchema.parse({ type: 'http', secret: 'x'.repeat(32) });

    const failure = openPolledTransport(http, silentLogger());

    await expect(failure).rejects.toBeInstanceOf(InternalError);
  });
});
