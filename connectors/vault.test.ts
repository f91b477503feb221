import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openVault } from './vault.js';

describe('the connector vault', () => {
  const dir = mkdtempSync(join(tmpdir(), 'relais-vault-'));
  const vault = openVault(dir);

  it('opens what it sealed, with a fresh IV each time and a private key file', () => {
    const a = vault.seal('jeanne@example.fr', 'email:sub_1');
    const b = vault.seal('jeanne@example.fr', 'email:sub_1');
    expect(a.equals(b)).toBe(false);
    expect(a.toString('latin1')).not.toContain('jeanne');
    expect(vault.open(a, 'email:sub_1')).toBe('jeanne@example.fr');
    expect(openVault(dir).open(b, 'email:sub_1')).toBe('jeanne@example.fr');
    expect(statSync(join(dir, 'connector-vault.key')).mode & 0o077).toBe(0);
  });

  it('refuses a value moved to another context, altered, or sealed under another key', () => {
    const sealed = vault.seal('jeanne@example.fr', 'email:sub_1');
    expect(() => vault.open(sealed, 'email:sub_2')).toThrow('sealed value does not open');
    const altered = Buffer.from(sealed);
    altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 1;
    expect(() => vault.open(altered, 'email:sub_1')).toThrow('sealed value does not open');
    const other = openVault(mkdtempSync(join(tmpdir(), 'relais-vault-')));
    expect(() => other.open(sealed, 'email:sub_1')).toThrow('sealed value does not open');
    expect(() => vault.open(Buffer.from('x'), 'email:sub_1')).toThrow('unknown form');
  });

  it('never repeats an IV, across refills of its random pool', () => {
    const ivs = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const sealed = vault.seal('jeanne@example.fr', 'email:sub_1');
      ivs.add(sealed.subarray(1, 13).toString('hex'));
      if (i % 500 === 0) expect(vault.open(sealed, 'email:sub_1')).toBe('jeanne@example.fr');
    }
    expect(ivs.size).toBe(2_000);
  });
});
