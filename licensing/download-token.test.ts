import { describe, expect, it } from 'vitest';
import { createDownloadToken, downloadUrl, readDownloadToken } from './download-token.js';

const secret = Buffer.alloc(32, 7);
const claims = { licenceId: 'lic_0123456789abcdefghjkmnpqrs', generation: 2, expiresAt: 2_000 };

describe('download link tokens', () => {
  it('read back their claims until they expire', () => {
    const token = createDownloadToken(secret, claims);
    expect(readDownloadToken(secret, token, 1_999)).toEqual({ ok: true, claims });
    expect(readDownloadToken(secret, token, 2_000)).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuse a changed payload, another secret and garbage', () => {
    const token = createDownloadToken(secret, claims);
    const [, mac] = token.split('.');
    const longer = Buffer.from(JSON.stringify([claims.licenceId, 2, 9_999_999])).toString(
      'base64url',
    );
    expect(readDownloadToken(secret, `${longer}.${mac}`, 1)).toEqual({
      ok: false,
      reason: 'tampered',
    });
    expect(readDownloadToken(Buffer.alloc(32, 8), token, 1)).toEqual({
      ok: false,
      reason: 'tampered',
    });
    expect(readDownloadToken(secret, 'no-dot', 1)).toEqual({ ok: false, reason: 'malformed' });
    expect(readDownloadToken(secret, 'a.b.c', 1)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('name no subscriber and make a URL under the server', () => {
    const token = createDownloadToken(secret, claims);
    expect(Buffer.from(token.split('.')[0] as string, 'base64url').toString()).not.toMatch(/sub_/);
    expect(downloadUrl('https://licences.example', token)).toBe(
      `https://licences.example/v1/downloads/${token}`,
    );
  });
});
