import { describe, expect, it } from 'vitest';
import { createScratchSeal } from './scratch-seal.js';

describe('createScratchSeal', () => {
  it('reveals what it hid, and shows nothing of it', () => {
    const seal = createScratchSeal();
    const hidden = seal.hide('zoe.lefevre@exemple.fr');
    expect(Buffer.from(hidden, 'base64').toString('latin1')).not.toContain('exemple');
    expect(seal.reveal(hidden)).toBe('zoe.lefevre@exemple.fr');
  });

  it('hides the same text differently each time, and only its own feed reveals it', () => {
    const seal = createScratchSeal();
    const a = seal.hide('a@exemple.fr');
    expect(seal.hide('a@exemple.fr')).not.toBe(a);
    expect(() => createScratchSeal().reveal(a)).toThrow();
    const altered = Buffer.from(a, 'base64');
    altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 1;
    expect(() => seal.reveal(altered.toString('base64'))).toThrow();
  });
});
