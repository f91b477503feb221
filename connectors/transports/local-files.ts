/**
 * The local end of a download: SHA-256 and byte count taken as the bytes stream past (so a file
 * is hashed in the pass that writes it and never sits whole in memory), and clean-up of a
 * partial file when a transfer breaks off.
 */
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import type { DownloadResult } from './transport.js';

/** A pass-through stream that hashes and counts every byte it forwards. */
export class HashingCounter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.count += chunk.length;
    done(null, chunk);
  }

  /** Size and lowercase hex SHA-256 of what passed; call once, after the stream ended. */
  result(): DownloadResult {
    return { sizeBytes: this.count, sha256: this.hash.digest('hex') };
  }
}

/** Size and SHA-256 of a local file, read as a stream. */
export async function hashFile(path: string): Promise<DownloadResult> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    sizeBytes += (chunk as Buffer).length;
  }
  return { sizeBytes, sha256: hash.digest('hex') };
}

/** Destroys a write stream, waits until its file is closed, then deletes the file. */
export async function discardPartial(out: WriteStream, path: string): Promise<void> {
  out.destroy();
  if (!out.closed) await once(out, 'close');
  await rm(path, { force: true });
}
