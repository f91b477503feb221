import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprintOf, pinHostKey, sameFingerprint } from './sftp-host-key.js';

const dir = mkdtempSync(join(tmpdir(), 'relais-hostkey-'));
let keys = 0;

/** A fresh key: its raw public blob and the fingerprint ssh-keygen prints for it. */
function generatedKey(type: 'ed25519' | 'rsa'): { blob: Buffer; fingerprint: string } {
  keys += 1;
  const file = join(dir, `key_${keys}_${type}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]);
  const blob = Buffer.from(readFileSync(`${file}.pub`, 'utf8').split(' ')[1] as string, 'base64');
  const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`]);
  return { blob, fingerprint: printed.toString().split(' ')[1] as string };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fingerprintOf', () => {
  it.each(['ed25519', 'rsa'] as const)('matches ssh-keygen for an %s key', (type) => {
    const key = generatedKey(type);

    expect(fingerprintOf(key.blob)).toBe(key.fingerprint);
    expect(fingerprintOf(key.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('sameFingerprint', () => {
  it.each([
    ['SHA256:abc', 'SHA256:abc', true],
    ['SHA256:abc', 'SHA256:abd', false],
    ['SHA256:abc', 'SHA256:ab', false],
    ['SHA256:abc', 'sha256:abc', false],
  ])('compares %s with %s: %s', (a, b, same) => {
    expect(sameFingerprint(a, b)).toBe(same);
  });
});

describe('pinHostKey', () => {
  it('accepts only the pinned key and records the fingerprint of any other', () => {
    const pinned = generatedKey('ed25519');
    const other = generatedKey('ed25519');
    const pin = pinHostKey(pinned.fingerprint);

    expect(pin.check()).toEqual({ state: 'pending' });
    expect(pin.verify(other.blob)).toBe(false);
    expect(pin.check()).toEqual({ state: 'refused', presented: other.fingerprint });
    expect(pin.verify(pinned.blob)).toBe(true);
    expect(pin.check()).toEqual({ state: 'accepted' });
  });
});
