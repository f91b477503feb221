import { describe, expect, it } from 'vitest';
import { CROCKFORD_ALPHABET, isId, newId, randomBase32 } from './ids.js';

describe('newId', () => {
  it('makes a prefixed 26-character base32 id', () => {
    const id = newId('sub');
    expect(id).toMatch(/^sub_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(isId(id, 'sub')).toBe(true);
    expect(isId(id, 'feed')).toBe(false);
  });

  it('never repeats over many draws', () => {
    const ids = new Set(Array.from({ length: 20_000 }, () => newId('feed')));
    expect(ids.size).toBe(20_000);
  });

  it('uses every character of the alphabet and nothing else', () => {
    const seen = new Set(Array.from({ length: 400 }, () => randomBase32()).join(''));
    expect([...seen].sort().join('')).toBe([...CROCKFORD_ALPHABET].sort().join(''));
  });

  it('refuses look-alikes and foreign shapes', () => {
    expect(isId('sub_0123456789abcdefghjkmnpqrs', 'sub')).toBe(true);
    expect(isId('sub_0123456789abcdefghjkmnpqri', 'sub')).toBe(false);
    expect(isId('sub_short', 'sub')).toBe(false);
    expect(isId('SUB_0123456789abcdefghjkmnpqrs', 'sub')).toBe(false);
  });
});
