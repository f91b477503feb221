/**
 * The ISP outbox as a local or mounted folder. Files are copied through a hash, flushed to disk
 * (file, then folder after a rename), so a power cut never leaves an empty or partial file
 * under a final name. The default folder (`<workDir>/outbox`) is ours and is created; a
 * configured one is usually a share the ISP reads and must already exist, since creating it
 * could write into an unmounted mount point where the ISP would never look.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingCounter, hashFile } from '../../connectors/transports/local-files.js';
import { ConfigError, type RelaisError, TransientError } from '../../platform/errors.js';
import type { FileDigest, OutboxTarget } from './outbox-target.js';

/** Errors a person must fix (permissions, a file where the folder should be), not retry. */
const CONFIG_ERRNOS = new Set(['EACCES', 'EPERM', 'ENOTDIR', 'EROFS']);

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'UNKNOWN';
}

export class LocalOutbox implements OutboxTarget {
  readonly description: string;

  private constructor(private readonly folder: string) {
    this.description = `file://${folder}`;
  }

  /** Opens `folder`, creating it only when it is the ISP's default outbox. */
  static async open(folder: string, isDefault: boolean): Promise<LocalOutbox> {
    const outbox = new LocalOutbox(folder);
    try {
      if (isDefault) await mkdir(folder, { recursive: true });
      const info = await stat(folder);
      if (!info.isDirectory()) {
        throw new ConfigError('TRANSPORT_IO_FAILED', `local outbox ${folder} is not a folder`, {
          folder,
        });
      }
    } catch (err) {
      throw outbox.ioError(err, 'open the outbox');
    }
    return outbox;
  }

  async sizeOf(name: string): Promise<number | undefined> {
    try {
      const info = await stat(join(this.folder, name));
      return info.isFile() ? info.size : undefined;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw this.ioError(err, `stat ${name}`);
    }
  }

  async digestOf(name: string): Promise<FileDigest> {
    try {
      return await hashFile(join(this.folder, name));
    } catch (err) {
      throw this.ioError(err, `read back ${name}`);
    }
  }

  async readSmall(name: string): Promise<Buffer> {
    try {
      return await readFile(join(this.folder, name));
    } catch (err) {
      throw this.ioError(err, `read ${name}`);
    }
  }

  async upload(localPath: string, name: string): Promise<FileDigest> {
    const path = join(this.folder, name);
    const counter = new HashingCounter();
    try {
      await pipeline(createReadStream(localPath), counter, createWriteStream(path));
      await flush(path);
    } catch (err) {
      throw this.ioError(err, `copy ${name}`);
    }
    return counter.result();
  }

  async writeSmall(name: string, content: Buffer): Promise<void> {
    const path = join(this.folder, name);
    try {
      await writeFile(path, content);
      await flush(path);
    } catch (err) {
      throw this.ioError(err, `write ${name}`);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await rename(join(this.folder, from), join(this.folder, to));
      await flush(this.folder);
    } catch (err) {
      throw this.ioError(err, `rename ${from} to ${to}`);
    }
  }

  async folderExists(): Promise<boolean> {
    return stat(this.folder).then(
      (info) => info.isDirectory(),
      () => false,
    );
  }

  async remove(name: string): Promise<void> {
    try {
      await rm(join(this.folder, name), { force: true });
    } catch (err) {
      throw this.ioError(err, `delete ${name}`);
    }
  }

  async close(): Promise<void> {}

  private ioError(err: unknown, action: string): RelaisError {
    if (err instanceof ConfigError || err instanceof TransientError) return err;
    const errno = errnoOf(err);
    const gone = errno === 'ENOENT' ? ' (is the outbox folder still there?)' : '';
    const message = `local outbox ${this.folder}: cannot ${action} (${errno})${gone}`;
    const context = { folder: this.folder, errno, action };
    return CONFIG_ERRNOS.has(errno)
      ? new ConfigError('TRANSPORT_IO_FAILED', message, context, { cause: err })
      : new TransientError('TRANSPORT_IO_FAILED', message, context, { cause: err });
  }
}

/** fsync of a file or a folder (a folder's entry list holds the rename). */
async function flush(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
