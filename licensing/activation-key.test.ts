import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalKey,
  checkCharacter,
  formatKey,
  generateKey,
  hashKey,
  KEY_ALPHABET,
  KEY_LENGTH,
  readKey,
} from './activation-key.js';

const body = fc
  .array(fc.constantFrom(...KEY_ALPHABET), { minLength: KEY_LENGTH - 1, maxLength: KEY_LENGTH - 1 })
  .map((chars) => chars.join(''));

describe('activation keys', () => {
  it('are five groups of five from the Crockford alphabet, and read back as themselves', () => {
    const key = generateKey();
    expect(key).toMatch(/^([0-9A-HJKMNP-TV-Z]{5}-){4}[0-9A-HJKMNP-TV-Z]{5}$/);
    const reading = readKey(key);
    expect(reading).toEqual({
      ok: true,
      canonical: key.replace(/-/g, ''),
      prefix: key.slice(0, 5),
    });
  });

  it('carry at least 100 bits of randomness: no repeat in 20,000 keys, every symbol used', () => {
    const seen = new Set<string>();
    const symbols = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const key = generateKey();
      seen.add(key);
      for (const c of key.slice(0, 5)) symbols.add(c);
    }
    expect(seen.size).toBe(20_000);
    expect(symbols.size).toBe(32);
  });

  it('survive the way people type: lower case, spaces, no dashes, I L O for 1 1 0', () => {
    const canonical = '0123456789ABCDEFGHJKMNPQ';
    const key = formatKey(canonical + checkCharacter(canonical));
    const typed = key.toLowerCase().replace(/-/g, ' ').replace('0', 'o').replace('1', 'l');
    const reading = readKey(typed);
    expect(reading.ok && reading.canonical).toBe(key.replace(/-/g, ''));
  });

  it('reject every single wrong character through the check character', () => {
    fc.assert(
      fc.property(body, fc.nat(KEY_LENGTH - 1), fc.nat(30), (b, position, shift) => {
        const key = b + checkCharacter(b);
        const original = KEY_ALPHABET.indexOf(key[position] as string);
        const wrong = KEY_ALPHABET[(original + shift + 1) % 32] as string;
        const typo = key.slice(0, position) + wrong + key.slice(position + 1);
        expect(readKey(typo).ok).toBe(false);
      }),
    );
  });

  it('reject a swap of two different neighbours, except 0 and Z (as Luhn misses 09 and 90)', () => {
    fc.assert(
      fc.property(body, fc.nat(KEY_LENGTH - 2), (b, i) => {
        const key = b + checkCharacter(b);
        fc.pre(key[i] !== key[i + 1]);
        fc.pre(!['0Z', 'Z0'].includes(`${key[i]}${key[i + 1]}`));
        const swapped = key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2);
        expect(readKey(swapped).ok).toBe(false);
      }),
    );
  });

  it('miss exactly the 0/Z swap, the one blind spot of Luhn mod 32', () => {
    const b = `0Z${'A'.repeat(KEY_LENGTH - 3)}`;
    const key = b + checkCharacter(b);
    expect(readKey(`Z0${key.slice(2)}`).ok).toBe(true);
  });

  it('explain what is wrong with text that is not a key', () => {
    expect(readKey('ABC')).toEqual({ ok: false, reason: 'a key has 25 characters, this one 3' });
    expect(readKey(`${generateKey().slice(0, -1)}U`)).toMatchObject({
      ok: false,
      reason: 'character "U" is not in a key',
    });
    expect(readKey('x'.repeat(65))).toMatchObject({ ok: false });
    expect(() => canonicalKey('nope')).toThrow(
      expect.objectContaining({ code: 'ACTIVATION_KEY_MALFORMED' }),
    );
  });

  it('are stored as a keyed hash that depends on the secret', () => {
    const { canonical } = canonicalKey(generateKey());
    const a = hashKey(Buffer.alloc(32, 1), canonical);
    expect(a).toHaveLength(32);
    expect(hashKey(Buffer.alloc(32, 1), canonical).equals(a)).toBe(true);
    expect(hashKey(Buffer.alloc(32, 2), canonical).equals(a)).toBe(false);
    expect(a.toString('hex')).not.toContain(Buffer.from(canonical).toString('hex'));
  });
});
