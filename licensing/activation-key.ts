/**
 * Activation keys: what a customer types into the desktop software.
 *
 * Form: 25 characters of Crockford base32 in five groups of five (`7K3QD-M0XNA-...`), 24 random
 * characters (120 bits) and a check character. Crockford's alphabet has no I, L, O or U, and a
 * reader folds look-alikes (I and L read as 1, O as 0), ignores case, spaces and dashes, so a key
 * read over the phone or typed from a letter survives. The check character is Luhn mod 32 over
 * the 24 others: it catches every single wrong character and every swap of two neighbours but
 * one (0 and Z, as plain Luhn misses 09 and 90), so the client can refuse a typo before calling
 * the server (the server checks it again).
 *
 * The server never stores a key: only HMAC-SHA256(key hash secret, canonical key), which is
 * what a lookup compares. The canonical form is the 25 characters, upper case, no dashes.
 */
import { createHmac } from 'node:crypto';
import { RequestError } from '../platform/errors.js';
import { takeRandom } from '../platform/ids.js';

export const KEY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const GROUPS = 5;
const GROUP_LENGTH = 5;
export const KEY_LENGTH = GROUPS * GROUP_LENGTH;
const RANDOM_LENGTH = KEY_LENGTH - 1;

const VALUE = new Map<string, number>();
for (let i = 0; i < KEY_ALPHABET.length; i++) VALUE.set(KEY_ALPHABET[i] as string, i);
for (const [lookAlike, meant] of [
  ['I', '1'],
  ['L', '1'],
  ['O', '0'],
] as const) {
  VALUE.set(lookAlike, VALUE.get(meant) as number);
}

/** Luhn mod 32 check character over `body` (canonical characters). */
export function checkCharacter(body: string): string {
  let sum = 0;
  let double = true;
  for (let i = body.length - 1; i >= 0; i--) {
    let v = VALUE.get(body[i] as string) as number;
    if (double) {
      v *= 2;
      v = Math.floor(v / 32) + (v % 32);
    }
    sum += v;
    double = !double;
  }
  return KEY_ALPHABET[(32 - (sum % 32)) % 32] as string;
}

/** Groups a canonical key as `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`. */
export function formatKey(canonical: string): string {
  const groups: string[] = [];
  for (let i = 0; i < canonical.length; i += GROUP_LENGTH) {
    groups.push(canonical.slice(i, i + GROUP_LENGTH));
  }
  return groups.join('-');
}

/** A new random key, grouped for display. */
export function generateKey(): string {
  const bytes = takeRandom(RANDOM_LENGTH);
  let body = '';
  // 256 is a multiple of 32, so `byte & 31` is uniform.
  for (const byte of bytes) body += KEY_ALPHABET[byte & 31];
  return formatKey(body + checkCharacter(body));
}

export type KeyReading =
  | { ok: true; canonical: string; prefix: string }
  | { ok: false; reason: string };

/**
 * Reads what a person typed: folds case and look-alikes, drops spaces and dashes, and checks
 * the length, the alphabet and the check character. Never throws.
 */
export function readKey(typed: string): KeyReading {
  if (typed.length > 64) return { ok: false, reason: 'too long for an activation key' };
  let canonical = '';
  for (const raw of typed.toUpperCase()) {
    if (raw === '-' || raw === ' ') continue;
    const value = VALUE.get(raw);
    if (value === undefined) return { ok: false, reason: `character "${raw}" is not in a key` };
    canonical += KEY_ALPHABET[value];
  }
  if (canonical.length !== KEY_LENGTH) {
    return {
      ok: false,
      reason: `a key has ${KEY_LENGTH} characters, this one ${canonical.length}`,
    };
  }
  const body = canonical.slice(0, RANDOM_LENGTH);
  if (checkCharacter(body) !== canonical[RANDOM_LENGTH]) {
    return { ok: false, reason: 'the check character does not match: a character is mistyped' };
  }
  return { ok: true, canonical, prefix: canonical.slice(0, GROUP_LENGTH) };
}

/** Like {@link readKey}, but throws ACTIVATION_KEY_MALFORMED. */
export function canonicalKey(typed: string): { canonical: string; prefix: string } {
  const reading = readKey(typed);
  if (!reading.ok) throw new RequestError('ACTIVATION_KEY_MALFORMED', reading.reason);
  return reading;
}

/** The stored form of a key: HMAC-SHA256 under the server's key hash secret. */
export function hashKey(secret: Buffer, canonical: string): Buffer {
  return createHmac('sha256', secret).update(canonical).digest();
}
