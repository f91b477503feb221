import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ispSchema } from '../../config/isp-schema.js';
import { packageRoot } from '../../platform/package-root.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const FINGERPRINT = `SHA256:${'A'.repeat(43)}`;

function withOutbox(outbox: unknown) {
  return ispSchema.safeParse({ ...demo, billing: { ...demo.billing, outbox } });
}

describe('billing.outbox in the ISP schema', () => {
  it('fills the defaults of a local outbox', () => {
    const parsed = withOutbox({ type: 'local' });
    expect(parsed.data?.billing?.outbox).toEqual({
      type: 'local',
      tempSuffix: '.part',
      checksumFile: false,
    });
  });

  it('takes the intake SFTP connection fields, with its own folder and upload options', () => {
    const parsed = withOutbox({
      type: 'sftp',
      host: 'sftp.isp.example',
      username: 'relais',
      password: 'secret',
      hostKeyFingerprint: FINGERPRINT,
      doneMarker: '.done',
      checksumFile: true,
    });
    expect(parsed.data?.billing?.outbox).toMatchObject({
      port: 22,
      folder: '/outbox',
      fastPut: false,
      readBack: false,
      connectRetries: 3,
      doneMarker: '.done',
    });
  });

  it.each([
    [
      { type: 'sftp', host: 'h', username: 'u', hostKeyFingerprint: FINGERPRINT },
      '',
      'one of password',
    ],
    [{ type: 'local', tempSuffix: 'part' }, 'tempSuffix', 'starting with a dot'],
    [{ type: 'local', doneMarker: '.part' }, 'tempSuffix', 'must differ'],
    [{ type: 'local', doneMarker: '.sha256', checksumFile: true }, 'doneMarker', 'collide'],
    [{ type: 'local', inbox: '/x' }, '', 'inbox'],
    [
      {
        type: 'sftp',
        host: 'h',
        username: 'u',
        password: 'p',
        hostKeyFingerprint: FINGERPRINT,
        folder: 'out',
      },
      'folder',
      'absolute',
    ],
  ])('refuses %j at %s', (outbox, field, message) => {
    const parsed = withOutbox(outbox);
    expect(parsed.success).toBe(false);
    const found = (parsed.error?.issues ?? []).map((i) => ({
      path: i.path.slice(2).join('.'),
      text: JSON.stringify(i),
    }));
    expect(
      found.some((i) => i.path === field && i.text.includes(message)),
      JSON.stringify(found),
    ).toBe(true);
  });
});
