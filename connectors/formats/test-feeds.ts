/**
 * Test support for the format readers: deterministic customers, and byte streams built from
 * them lazily, so that a 50 MB feed never exists in memory at once. Test-only, and free of
 * vitest so that importing it registers no test; it sits next to the format tests because
 * those are its only users.
 */
import { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import type { FormatItem } from './format.js';
import type { FeedEncoding } from './text-input.js';

/** A generated customer. `ref` keeps leading zeros; `name` has French accents. */
export interface Customer {
  ref: string;
  offer: string;
  name: string;
  /** A column no mapping reads; its length sets the size of a record. */
  note: string;
}

const OFFERS = ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_INTEGRAL'];
const FIRST_NAMES = ['Élodie', 'François', 'Chloé', 'Gaëlle', 'Jérôme', 'Loïc', 'Zoé'];
const LAST_NAMES = ['Lefèvre', 'Garçon', 'Bécue', 'Noël', 'Dupré', 'Hébert', 'Mercier'];

/** The customer at `index`: the same for the same index, on every run. */
export function customerAt(index: number, noteChars = 12): Customer {
  return {
    ref: String(index + 1).padStart(8, '0'),
    offer: OFFERS[index % OFFERS.length] as string,
    name: `${FIRST_NAMES[index % 7]} ${LAST_NAMES[(index * 3 + 1) % 7]}`,
    note: `n${index % 10}`.repeat(Math.ceil(noteChars / 2)).slice(0, noteChars),
  };
}

export function customers(count: number, noteChars = 12): Customer[] {
  return Array.from({ length: count }, (_, index) => customerAt(index, noteChars));
}

export interface StreamOptions {
  encoding?: FeedEncoding;
  /** Start with a UTF-8 byte order mark. */
  hasBom?: boolean;
  /** Largest chunk the stream hands out; small values test chunk boundaries. */
  chunkBytes?: number;
}

/**
 * A byte stream of `parts`, encoded on demand. Parts are only rendered as the reader pulls,
 * so a generator of parts gives a feed of any size in constant memory.
 */
export function feedStream(parts: Iterable<string>, options: StreamOptions = {}): Readable {
  const { encoding = 'utf-8', hasBom = false, chunkBytes = 65_536 } = options;
  function* chunks(): Generator<Buffer> {
    if (hasBom) yield Buffer.from([0xef, 0xbb, 0xbf]);
    for (const part of parts) yield* splitBytes(iconv.encode(part, encoding), chunkBytes);
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** A byte stream of `bytes` in chunks of at most `chunkBytes`. */
export function bytesStream(bytes: Buffer, chunkBytes = 65_536): Readable {
  return Readable.from(splitBytes(bytes, chunkBytes), { objectMode: false });
}

function* splitBytes(bytes: Buffer, chunkBytes: number): Generator<Buffer> {
  for (let start = 0; start < bytes.length; start += chunkBytes) {
    yield bytes.subarray(start, start + chunkBytes);
  }
}

/** Encodes `text`, then puts `bytes` where each `marker` character was (to plant bad bytes). */
export function encodeWithBytes(text: string, marker: string, bytes: number[]): Buffer {
  const pieces = text.split(marker).map((piece) => Buffer.from(piece, 'utf8'));
  const planted = Buffer.from(bytes);
  return Buffer.concat(pieces.flatMap((piece, i) => (i === 0 ? [piece] : [planted, piece])));
}

export async function readAll(items: AsyncIterable<FormatItem>): Promise<FormatItem[]> {
  const all: FormatItem[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** What a read yielded before it failed, and the failure (undefined when it did not fail). */
export async function readUntilFailure(
  items: AsyncIterable<FormatItem>,
): Promise<{ items: FormatItem[]; error: unknown }> {
  const seen: FormatItem[] = [];
  try {
    for await (const item of items) seen.push(item);
  } catch (error) {
    return { items: seen, error };
  }
  return { items: seen, error: undefined };
}
