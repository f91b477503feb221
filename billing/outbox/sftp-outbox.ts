/**
 * The ISP outbox on its SFTP server, for month-end files. One connection (opened with the
 * intake's connectSftp: pinned host key, retries, and our own TCP socket with no-delay, without
 * which Nagle's algorithm stalls the small SFTP write requests) carries one delivery run.
 *
 * Renames use posix-rename@openssh.com when the server offers it, which is rename(2) on the
 * server: atomic. Without it, plain SFTP rename is used: OpenSSH and most servers refuse it
 * when the target exists, and the caller never renames onto an existing file anyway, because
 * remove-then-rename would leave a moment with no file, or with the wrong one.
 */
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import type { SftpOutboxSettings } from '../../config/billing-outbox-schema.js';
import { HashingCounter, hashFile } from '../../connectors/transports/local-files.js';
import type { SftpOptions } from '../../connectors/transports/sftp.options.js';
import {
  type ConnectBackoff,
  connectSftp,
  DEFAULT_BACKOFF,
  type SftpConnection,
} from '../../connectors/transports/sftp-connect.js';
import { isRelaisError, type RelaisError, TransientError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { FileDigest, OutboxTarget, UploadOptions } from './outbox-target.js';

/** Bytes per read request when reading a file back; OpenSSH serves up to 256 KiB. */
const READ_CHUNK_BYTES = 256 * 1024;
/** Local read size for a sequential upload; ssh2 splits each chunk into SFTP write requests. */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;
/** How long `close` waits for the server to acknowledge the end of the session. */
const END_TIMEOUT_MS = 2_000;

export interface SftpOutboxOptions {
  backoff?: ConnectBackoff;
  /**
   * Whether to try posix-rename@openssh.com first (default true). False forces plain SFTP
   * rename, for servers whose extension misbehaves, and for the tests of that path.
   */
  usePosixRename?: boolean;
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** The outbox settings in the shape connectSftp takes (it reads only the connection fields). */
function connectOptions(settings: SftpOutboxSettings): SftpOptions {
  return { ...settings, type: 'sftp', inbox: settings.folder, fastGet: false };
}

export class SftpOutbox implements OutboxTarget {
  readonly description: string;
  private hasPosixRename: boolean | undefined;
  private isClosed = false;

  private constructor(
    private readonly settings: SftpOutboxSettings,
    private readonly connection: SftpConnection,
    private readonly log: Logger,
    options: SftpOutboxOptions,
  ) {
    const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
    this.description = `sftp://${host}:${settings.port}${settings.folder}`;
    if (options.usePosixRename === false) this.hasPosixRename = false;
  }

  /**
   * Connects and checks that the outbox folder exists. Relais never creates it: a missing
   * outbox on the ISP's server means something there is wrong, and a file written elsewhere
   * would never be collected.
   */
  static async open(
    settings: SftpOutboxSettings,
    log: Logger,
    options: SftpOutboxOptions = {},
  ): Promise<SftpOutbox> {
    const connection = await connectSftp(
      connectOptions(settings),
      log,
      options.backoff ?? DEFAULT_BACKOFF,
    );
    const outbox = new SftpOutbox(settings, connection, log, options);
    try {
      await outbox.assertFolder();
    } catch (err) {
      await outbox.close();
      throw err;
    }
    return outbox;
  }

  private get client(): SftpClient {
    return this.connection.client;
  }

  async sizeOf(name: string): Promise<number | undefined> {
    const path = this.pathOf(name);
    return this.run(`stat ${path}`, async () => {
      try {
        const info = await this.client.stat(path);
        return info.isFile ? info.size : undefined;
      } catch (err) {
        if (codeOf(err) === 'ENOENT') return undefined;
        throw err;
      }
    });
  }

  async digestOf(name: string): Promise<FileDigest> {
    const path = this.pathOf(name);
    return this.run(`read back ${path}`, async () => {
      const counter = new HashingCounter();
      const source = this.client.createReadStream(path, { highWaterMark: READ_CHUNK_BYTES });
      counter.resume();
      await pipeline(source, counter);
      return counter.result();
    });
  }

  async readSmall(name: string): Promise<Buffer> {
    const path = this.pathOf(name);
    return this.run(`read ${path}`, async () => (await this.client.get(path)) as Buffer);
  }

  async upload(localPath: string, name: string, options: UploadOptions): Promise<FileDigest> {
    const path = this.pathOf(name);
    return this.run(`upload ${path}`, async () => {
      let sent: FileDigest;
      if (options.fastPut) {
        await this.client.fastPut(localPath, path);
        // fastPut reads the file itself; the caller reads the upload back, so hash it here.
        sent = await hashFile(localPath);
      } else {
        const counter = new HashingCounter();
        const local = createReadStream(localPath, { highWaterMark: UPLOAD_CHUNK_BYTES });
        try {
          await Promise.all([this.client.put(counter, path), pipeline(local, counter)]);
        } catch (err) {
          // A refused write leaves the local stream waiting on backpressure; end it.
          local.destroy();
          counter.destroy();
          throw err;
        }
        sent = counter.result();
      }
      await this.fsync(path);
      return sent;
    });
  }

  async writeSmall(name: string, content: Buffer): Promise<void> {
    const path = this.pathOf(name);
    await this.run(`write ${path}`, async () => {
      await this.client.put(content, path);
      await this.fsync(path);
    });
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.pathOf(from);
    const target = this.pathOf(to);
    await this.run(`rename ${source} to ${target}`, async () => {
      if (this.hasPosixRename !== false) {
        try {
          await this.client.posixRename(source, target);
          this.hasPosixRename = true;
          return;
        } catch (err) {
          if (!/does not support/i.test((err as Error).message)) throw err;
          this.hasPosixRename = false;
          this.log.info({ outbox: this.description }, 'sftp server lacks posix-rename');
        }
      }
      await this.client.rename(source, target);
    });
  }

  async folderExists(): Promise<boolean> {
    const kind = await this.run('look up the outbox', () =>
      this.client.exists(this.settings.folder),
    );
    return kind === 'd';
  }

  async remove(name: string): Promise<void> {
    const path = this.pathOf(name);
    await this.run(`delete ${path}`, async () => {
      await this.client.delete(path, true);
    });
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, END_TIMEOUT_MS);
    });
    await Promise.race([this.client.end().catch(() => undefined), timeout]);
    clearTimeout(timer);
    this.connection.socket.destroy();
  }

  /**
   * Flushes a file to the server's disk (fsync@openssh.com), so a power cut on the ISP's side
   * right after the rename cannot leave an empty file under the final name. Servers without
   * the extension are left to their own flushing.
   */
  private async fsync(path: string): Promise<void> {
    const sftp = (this.client as unknown as { sftp?: SFTPWrapper }).sftp;
    const extensions = (sftp as unknown as { _extensions?: Record<string, string> } | undefined)
      ?._extensions;
    if (!sftp || !extensions?.['fsync@openssh.com']) return;
    const call = <T>(fn: (cb: (err: Error | null | undefined, value: T) => void) => void) =>
      new Promise<T>((resolve, reject) => {
        fn((err, value) => (err ? reject(err) : resolve(value)));
      });
    const handle = await call<Buffer>((cb) => sftp.open(path, 'r', (err, h) => cb(err, h)));
    try {
      await call<unknown>((cb) => sftp.ext_openssh_fsync(handle, (err) => cb(err, undefined)));
    } finally {
      await call<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)));
    }
  }

  private async assertFolder(): Promise<void> {
    const { folder, host, port } = this.settings;
    const kind = await this.run(`look up ${folder}`, () => this.client.exists(folder));
    if (kind !== 'd') {
      throw new TransientError(
        'SFTP_TRANSFER_FAILED',
        `sftp outbox folder ${folder} does not exist on ${host}:${port}`,
        { host, port, folder },
      );
    }
  }

  private pathOf(name: string): string {
    return posix.join(this.settings.folder, name);
  }

  /** Runs one operation, turning a failure into an error that names the outbox and action. */
  private async run<T>(action: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      throw await this.toRelaisError(err, action);
    }
  }

  private async toRelaisError(err: unknown, action: string): Promise<RelaisError> {
    if (isRelaisError(err)) return err;
    const { folder, host, port } = this.settings;
    // "No such file" on an upload or a rename most often means the outbox folder itself went
    // away; say so, since that is what the ISP has to fix.
    const folderKind = await this.client.exists(folder).catch(() => 'unknown');
    const gone = folderKind === false ? ` (the outbox folder ${folder} is gone)` : '';
    return new TransientError(
      'SFTP_TRANSFER_FAILED',
      `sftp outbox ${this.description}: cannot ${action}${gone}: ${(err as Error).message}`,
      { host, port, folder, action, folderGone: folderKind === false },
      { cause: err },
    );
  }
}
