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

/** Lines of any UTF-8 byte stream (a file, an HTTP body), with the same backpressure. */
export async function* splitLines(source: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  // Pieces of a line that spans chunks, joined once its end is found.
  let pieces: string[] = [];
  for await (const chunk of source) {
    const text = decoder.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      const tail = text.slice(start, end);
      if (pieces.length === 0) yield tail;
      else {
        pieces.push(tail);
        yield pieces.join('');
        pieces = [];
      }
      start = end + 1;
    }
    if (start < text.length) pieces.push(text.slice(start));
  }
  pieces.push(decoder.end());
  const last = pieces.join('');
  if (last.length > 0) yield last;
}
