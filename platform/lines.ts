/**
 * Lines of a UTF-8 file, read with backpressure: one chunk in memory at a time, plus the line
 * being assembled, whatever the size of a line. node:readline's async iterator buffers up to
 * 1,024 lines ahead of its reader, which for the intake's change lists (lines of half a
 * megabyte) meant half a gigabyte of RSS.
 */
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

export function readLines(path: string): AsyncGenerator<string> {
  return splitLines(createReadStream(path, { highWaterMark: 1 << 16 }));
}

/**
 * The lines of a file a chunk at a time: one await per read (64 KB unless `chunkBytes` says
 * otherwise) instead of one per line, for readers that go through millions of short lines
 * (sort runs, spools). A batch's lines keep their chunk's text alive while any is held.
 */
export function readLineBatches(path: string, chunkBytes = 1 << 16): AsyncGenerator<string[]> {
  return splitLineBatches(createReadStream(path, { highWaterMark: chunkBytes }));
}

/** Lines of any UTF-8 byte stream (a file, an HTTP body), with the same backpressure. */
export async function* splitLines(source: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  for await (const batch of splitLineBatches(source)) yield* batch;
}

/** The complete lines of each chunk of a UTF-8 byte stream, as one array per chunk. */
export async function* splitLineBatches(
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<string[]> {
  const decoder = new StringDecoder('utf8');
  // Pieces of a line that spans chunks, joined once its end is found.
  let pieces: string[] = [];
  for await (const chunk of source) {
    const text = decoder.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    const lines: string[] = [];
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      const tail = text.slice(start, end);
      if (pieces.length === 0) lines.push(tail);
      else {
        pieces.push(tail);
        lines.push(pieces.join(''));
        pieces = [];
      }
      start = end + 1;
    }
    if (start < text.length) pieces.push(text.slice(start));
    if (lines.length > 0) yield lines;
  }
  pieces.push(decoder.end());
  const last = pieces.join('');
  if (last.length > 0) yield [last];
}
