/**
 * Prefixed random ids (`sub_…`, `feed_…`). The prefix says what an id names; the rest is
 * 128 random bits in Crockford base32, so an id can never be derived from customer data and
 * never collides in practice. Subscriber ids in particular are random by design: the whole
 * privacy promise rests on the mapping to customer refs living only on the connector side.
 */
import { randomFillSync } from 'node:crypto';

export const ID_PREFIXES = {
  sub: 'subscriber',
  feed: 'feed ledger entry',
  lic: 'licence',
  cmd: 'provisioning command',
  run: 'job run',
  req: 'HTTP request',
  evt: 'subscription event',
  act: 'activation',
  dl: 'download',
  inv: 'invoice',
  rec: 'reconciliation run',
  dlv: 'delivery',
  dev: 'device',
  rcp: 'erasure receipt',
} as const;

export type IdPrefix = keyof typeof ID_PREFIXES;

/** Crockford base32: no I, L, O or U, so ids read aloud or typed are hard to get wrong. */
export const CROCKFORD_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * Bytes from the system CSPRNG, drawn 4 KiB at a time: one call per id cost a first load of a
 * million customers several seconds. Each byte is handed out once, then the pool is refilled.
 */
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

/**
 * `count` fresh bytes from the system CSPRNG; a view into the pool, so use them before the
 * next call. Each byte is handed out once: as good as a direct call, a fraction of the cost.
 */
export function takeRandom(count: number): Buffer {
  if (count > pool.length) return randomFillSync(Buffer.alloc(count));
  if (poolOffset + count > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const taken = pool.subarray(poolOffset, poolOffset + count);
  poolOffset += count;
  return taken;
}

/** 26 characters of base32 (130 bits of room, 128 random bits). */
export function randomBase32(bytes = 16): string {
  const buf = takeRandom(bytes);
  let out = '';
  let bits = 0;
  let value = 0;
  for (let i = 0; i < buf.length; i++) {
    value = ((value << 8) | (buf[i] as number)) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += CROCKFORD_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += CROCKFORD_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBase32()}`;
}

/** The latest millisecond used: a clock stepping back never sorts new ids before older ones. */
let lastMs = 0;

/**
 * A prefixed id that sorts by creation time: 10 characters of milliseconds since 1970, then 80
 * random bits (16 characters), the same 26-character shape as `newId`. For tables written in
 * bulk whose primary key is the id: new rows land at the end of the index instead of all over
 * it, which keeps a million-row first load in the buffer pool. 80 random bits stay unguessable;
 * what such an id gives away is the instant it was made, so use it only where that is no secret
 * (never for subscriber ids, which must not link to anything).
 */
export function newOrderedId(prefix: IdPrefix, now = Date.now()): string {
  const ms = Math.max(now, lastMs);
  lastMs = ms;
  let time = '';
  let rest = ms;
  for (let i = 0; i < 10; i++) {
    time = (CROCKFORD_ALPHABET[rest % 32] as string) + time;
    rest = Math.floor(rest / 32);
  }
  return `${prefix}_${time}${randomBase32(10)}`;
}

const ID_PATTERN = /^([a-z]+)_([0-9a-hjkmnp-tv-z]{26})$/;

/** True when `value` is an id this helper could have made with `prefix`. */
export function isId(value: string, prefix: IdPrefix): boolean {
  const match = ID_PATTERN.exec(value);
  return match !== null && match[1] === prefix;
}
