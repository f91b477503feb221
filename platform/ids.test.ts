import { describe, expect, it } from 'vitest';
import { CROCKFORD_ALPHABET, isId, newId, newOrderedId, randomBase32 } from './ids.js';

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

describe('newOrderedId', () => {
  const msOf = (id: string) =>
    [...id.slice(4, 14)].reduce((n, c) => n * 32 + CROCKFORD_ALPHABET.indexOf(c), 0);

  it('has the shape of any id, its time first and 80 random bits after', () => {
    const before = Date.now();
    const id = newOrderedId('lic');
    expect(isId(id, 'lic')).toBe(true);
    expect(msOf(id)).toBeGreaterThanOrEqual(before);
    expect(msOf(id)).toBeLessThanOrEqual(Date.now());
    const tails = new Set(Array.from({ length: 5000 }, () => newOrderedId('lic').slice(14)));
    expect(tails.size).toBe(5000);
  });

  it('sorts by creation time as text, even when the clock steps back', () => {
    // Far in the future, so the ids made by the test above cannot clamp these.
    const early = newOrderedId('lic', Date.UTC(2100, 0, 1));
    const later = newOrderedId('lic', Date.UTC(2101, 0, 1));
    const stepBack = newOrderedId('lic', Date.UTC(2100, 5, 1));
    expect(msOf(early)).toBe(Date.UTC(2100, 0, 1));
    expect(early < later).toBe(true);
    expect(msOf(stepBack)).toBe(Date.UTC(2101, 0, 1));
    const start = Date.UTC(2102, 0, 1);
    const many = Array.from({ length: 1000 }, (_, i) => newOrderedId('lic', start + i * 37));
    expect([...many].sort()).toEqual(many);
  });
});
