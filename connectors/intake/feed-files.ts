/**
 * Where received bytes live on the connector host. Every feed's content is kept under its own
 * SHA-256 (`<workDir>/feeds/<sha256>.feed`), moved into place before the ledger row exists: a
 * crash can leave an orphan file, never a ledger row without its bytes. Content addressing
 * also means a duplicate costs no disk. Staging files are written under `staging/` and renamed.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TransientError } from '../../platform/errors.js';

export interface HashedFile {
  sizeBytes: number;
  sha256: string;
}

export class FeedFiles {
  constructor(private readonly workDirOf: (ispId: string) => string) {}

  /** A fresh staging path for bytes on their way in; the folder is created. */
  stagingPath(ispId: string): string {
    const dir = join(this.workDirOf(ispId), 'staging');
    mkdirSync(dir, { recursive: true });
    return join(dir, `${Date.now()}-${randomBytes(6).toString('hex')}.part`);
  }

  /** A scratch folder for one feed's processing (sort runs, change lists). */
  scratchDir(ispId: string, feedId: string): string {
    return join(this.workDirOf(ispId), 'staging', feedId);
  }

  pathOf(ispId: string, sha256: string): string {
    return join(this.workDirOf(ispId), 'feeds', `${sha256}.feed`);
  }

  /** Moves a staged file to its content address (dropping it when that content is already kept). */
  keep(ispId: string, stagedPath: string, sha256: string): string {
    const target = this.pathOf(ispId, sha256);
    try {
      mkdirSync(join(this.workDirOf(ispId), 'feeds'), { recursive: true });
      if (existsSync(target)) rmSync(stagedPath, { force: true });
      else renameSync(stagedPath, target);
    } catch (err) {
      throw new TransientError(
        'TRANSPORT_IO_FAILED',
        `cannot keep received file for isp ${ispId}`,
        {},
        { cause: err },
      );
    }
    return target;
  }

  outboxDir(ispId: string, ...sub: string[]): string {
    const dir = join(this.workDirOf(ispId), 'outbox', ...sub);
    mkdirSync(dir, { recursive: true });
    return dir;
  }
}

/** A pass-through stream that counts and hashes what flows through it. */
export class HashingCounter extends Transform {
  private readonly hash = createHash('sha256');
  sizeBytes = 0;

  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    done: (err?: Error | null, data?: Buffer) => void,
  ): void {
    this.hash.update(chunk);
    this.sizeBytes += chunk.length;
    done(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Writes a stream to `path`, returning its size and SHA-256; removes the file on failure. */
export async function writeHashed(input: Readable, path: string): Promise<HashedFile> {
  const counter = new HashingCounter();
  try {
    await pipeline(input, counter, createWriteStream(path));
  } catch (err) {
    rmSync(path, { force: true });
    throw err;
  }
  return { sizeBytes: counter.sizeBytes, sha256: counter.digest() };
}

export function copyHashed(source: string, path: string): Promise<HashedFile> {
  return writeHashed(createReadStream(source), path);
}
