import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openKeystore } from './keystore.js';
import { signDocument, verifyDocument } from './signed-document.js';

function folder(): string {
  return mkdtempSync(join(tmpdir(), 'relais-keys-'));
}

describe('the keystore', () => {
  it('creates its secrets once, private to the owner, and finds the same ones again', () => {
    const dir = folder();
    const first = openKeystore(dir, new Date('2026-12-04T00:00:00Z'));
    const again = openKeystore(dir);
    expect(again.keyHashSecret.equals(first.keyHashSecret)).toBe(true);
    expect(again.linkSecret.equals(first.linkSecret)).toBe(true);
    expect(again.signing.kid).toBe('k20261204');
    expect(first.keyHashSecret.equals(first.linkSecret)).toBe(false);
    for (const name of ['key-hash.secret', 'link.secret', 'isp-token.secret']) {
      expect(statSync(join(dir, name)).mode & 0o077).toBe(0);
    }
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('signs with the newest key and still publishes the older ones after a rotation', () => {
    const dir = folder();
    const old = openKeystore(dir, new Date('2026-01-01T00:00:00Z'));
    const document = signDocument(old.signing, 'relais-licence/1', { licenceId: 'lic_x' });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(
      join(dir, 'licence-signing', 'k20270101.pem'),
      privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const rotated = openKeystore(dir);
    expect(rotated.signing.kid).toBe('k20270101');
    expect(rotated.publicKeys.map((k) => k.kid)).toEqual(['k20270101', 'k20260101']);
    expect(verifyDocument(rotated.publicKeys, document, 'relais-licence/1')).toEqual({
      ok: true,
      claims: { licenceId: 'lic_x' },
    });
  });

  it('derives a distinct, stable API token per ISP', () => {
    const dir = folder();
    const keys = openKeystore(dir);
    expect(keys.derivedIspToken('fai-a')).toBe(openKeystore(dir).derivedIspToken('fai-a'));
    expect(keys.derivedIspToken('fai-a')).not.toBe(keys.derivedIspToken('fai-b'));
    expect(keys.derivedIspToken('fai-a').length).toBeGreaterThanOrEqual(32);
  });

  it('refuses a damaged secret instead of replacing it', () => {
    const dir = folder();
    writeFileSync(join(dir, 'key-hash.secret'), 'short\n');
    expect(() => openKeystore(dir)).toThrow(expect.objectContaining({ code: 'SECRET_UNREADABLE' }));
    const other = folder();
    openKeystore(other);
    writeFileSync(join(other, 'licence-signing', 'k20300101.pem'), 'not a key');
    expect(() => openKeystore(other)).toThrow(
      expect.objectContaining({ code: 'SECRET_UNREADABLE' }),
    );
  });
});

describe('signed documents', () => {
  const keys = openKeystore(folder());
  const doc = signDocument(keys.signing, 'relais-licence/1', { modules: ['antivirus'] });

  it('verify offline with the published keys', () => {
    expect(verifyDocument(keys.publicKeys, doc, 'relais-licence/1')).toEqual({
      ok: true,
      claims: { modules: ['antivirus'] },
    });
  });

  it('refuse an altered payload, a foreign key, another type and garbage', () => {
    const altered = {
      ...doc,
      payload: Buffer.from(JSON.stringify({ modules: ['antivirus', 'backup'] })).toString(
        'base64url',
      ),
    };
    expect(verifyDocument(keys.publicKeys, altered, 'relais-licence/1')).toEqual({
      ok: false,
      reason: 'signature does not match',
    });
    const stranger = openKeystore(folder(), new Date('2020-01-01T00:00:00Z'));
    const forged = signDocument(stranger.signing, 'relais-licence/1', { modules: ['backup'] });
    expect(verifyDocument(keys.publicKeys, forged, 'relais-licence/1').ok).toBe(false);
    expect(
      verifyDocument(keys.publicKeys, { ...forged, kid: doc.kid }, 'relais-licence/1'),
    ).toEqual({ ok: false, reason: 'signature does not match' });
    expect(verifyDocument(keys.publicKeys, doc, 'relais-erasure-receipt/1')).toMatchObject({
      ok: false,
    });
    expect(
      verifyDocument(
        keys.publicKeys,
        { ...doc, type: 'relais-erasure-receipt/1' },
        'relais-erasure-receipt/1',
      ),
    ).toEqual({
      ok: false,
      reason: 'signature does not match',
    });
    expect(verifyDocument(keys.publicKeys, 'garbage', 'relais-licence/1')).toEqual({
      ok: false,
      reason: 'not a signed document',
    });
  });
});
