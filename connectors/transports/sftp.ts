/**
 * A polled transport over an ISP's SFTP server (ssh2-sftp-client 12 on ssh2). One connection,
 * opened at `open` and again after it drops, carries one operation at a time. Downloads stream
 * through a hash and are checked against the size the server reported just before.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type SftpClient from 'ssh2-sftp-client';
import {
  ConfigError,
  InternalError,
  isRelaisError,
  type RelaisError,
  TransientError,
} from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { createSerialRunner } from '../../platform/serial.js';
import { assertFileName, assertSubfolder, tempNameFor } from './inbox-names.js';
import { discardPartial, HashingCounter, hashFile } from './local-files.js';
import type { SftpOptions } from './sftp.options.js';
import {
  type ConnectBackoff,
  connectSftp,
  DEFAULT_BACKOFF,
  type SftpConnection,
} from './sftp-connect.js';
import type { DownloadResult, InboxFile, PolledTransport } from './transport.js';

/** Bytes asked for per read request by `get`; OpenSSH serves up to 256 KiB per request. */
const READ_CHUNK_BYTES = 256 * 1024;
/** How long `close` waits for the server to acknowledge the end of the session. */
const END_TIMEOUT_MS = 2_000;

/** Codes ssh2-sftp-client gives when the server answered "no"; the connection is still fine. */
const REFUSAL_CODES = new Set(['ENOENT', 'EACCES', 'ENOTDIR', 'ERR_BAD_PATH']);

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

function isServerRefusal(err: unknown): boolean {
  const code = codeOf(err);
  return isRelaisError(err) || typeof code === 'number' || REFUSAL_CODES.has(String(code));
}

/** A local file-system error (it carries a syscall), as opposed to one from the server. */
function isLocalError(err: unknown): err is NodeJS.ErrnoException {
  return typeof (err as NodeJS.ErrnoException | null)?.syscall === 'string';
}

/** `get` piped through the hash into the local file; on failure nothing is left behind. */
async function streamDownload(
  client: SftpClient,
  remote: string,
  localPath: string,
): Promise<DownloadResult> {
  const counter = new HashingCounter();
  const out = createWriteStream(localPath);
  const written = pipeline(counter, out);
  const readStreamOptions = { highWaterMark: READ_CHUNK_BYTES } as SftpClient.ReadStreamOptions;
  try {
    await Promise.all([client.get(remote, counter, { readStreamOptions }), written]);
  } catch (err) {
    counter.destroy();
    const localError = await written.then(
      () => undefined,
      (e: unknown) => (isLocalError(e) ? e : undefined),
    );
    await discardPartial(out, localPath);
    throw localError ?? err;
  }
  return counter.result();
}

/** ssh2's parallel-chunk download to the local path, then a hash of what landed there. */
async function fastDownload(
  client: SftpClient,
  remote: string,
  localPath: string,
): Promise<DownloadResult> {
  try {
    await client.fastGet(remote, localPath);
    return await hashFile(localPath);
  } catch (err) {
    await rm(localPath, { force: true });
    throw err;
  }
}

/**
 * The SFTP {@link PolledTransport}. Open it with {@link SftpTransport.open} (or
 * `openPolledTransport`); `inbox` and every folder below it are remote paths on the server.
 */
export class SftpTransport implements PolledTransport {
  readonly description: string;
  private readonly serial = createSerialRunner();
  private connection: SftpConnection | undefined;
  private isClosed = false;
  /** Whether the server has posix-rename@openssh.com; unknown until the first rename. */
  private hasPosixRename: boolean | undefined;

  private constructor(
    private readonly options: SftpOptions,
    private readonly log: Logger,
    private readonly backoff: ConnectBackoff,
  ) {
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.description = `sftp://${host}:${options.port}${options.inbox}`;
  }

  /**
   * Connects (with retries) and checks that the inbox exists, so a wrong host key, wrong
   * credentials or a wrong inbox fail here rather than at the first poll.
   */
  static async open(
    options: SftpOptions,
    log: Logger,
    backoff: ConnectBackoff = DEFAULT_BACKOFF,
  ): Promise<SftpTransport> {
    const transport = new SftpTransport(options, log, backoff);
    try {
      await transport.run(`open ${options.inbox}`, async (client) => {
        if ((await client.exists(options.inbox)) !== 'd') {
          throw new ConfigError(
            'TRANSPORT_IO_FAILED',
            `sftp inbox ${options.inbox} is not a folder on ${options.host}:${options.port}`,
            { host: options.host, port: options.port, folder: options.inbox },
          );
        }
      });
    } catch (err) {
      await transport.close();
      throw err;
    }
    return transport;
  }

  async list(): Promise<InboxFile[]> {
    return this.run(`list ${this.options.inbox}`, async (client) => {
      const entries = await client.list(this.options.inbox);
      return entries
        .filter((entry) => entry.type === '-')
        .map((entry) => ({ name: entry.name, sizeBytes: entry.size, mtimeMs: entry.modifyTime }));
    });
  }

  async stat(name: string, folder?: string): Promise<InboxFile | undefined> {
    const path = this.remotePath(name, folder);
    return this.run(`stat ${path}`, async (client) => {
      try {
        const info = await client.stat(path);
        return info.isFile ? { name, sizeBytes: info.size, mtimeMs: info.modifyTime } : undefined;
      } catch (err) {
        if (codeOf(err) === 'ENOENT') return undefined;
        throw err;
      }
    });
  }

  async download(name: string, localPath: string): Promise<DownloadResult> {
    const path = this.remotePath(name);
    return this.run(`download ${path}`, async (client) => {
      const expected = (await client.stat(path)).size;
      const result = this.options.fastGet
        ? await fastDownload(client, path, localPath)
        : await streamDownload(client, path, localPath);
      if (result.sizeBytes !== expected) {
        await rm(localPath, { force: true });
        throw new TransientError(
          'SFTP_TRANSFER_FAILED',
          `sftp download of ${path} from ${this.description} delivered ${result.sizeBytes} bytes, expected ${expected}`,
          { ...this.where(path), sizeBytes: result.sizeBytes, expected },
        );
      }
      return result;
    });
  }

  async moveTo(name: string, folder: string, newName = name): Promise<void> {
    const from = this.remotePath(name);
    const to = this.remotePath(newName, folder);
    return this.run(`move ${from} to ${to}`, async (client) => {
      await client.mkdir(posix.dirname(to), true);
      await this.renameOver(client, from, to);
    });
  }

  async remove(name: string): Promise<void> {
    const path = this.remotePath(name);
    return this.run(`delete ${path}`, async (client) => {
      await client.delete(path, true);
    });
  }

  async writeText(folder: string, name: string, text: string): Promise<void> {
    const target = this.remotePath(name, folder);
    const temp = posix.join(posix.dirname(target), tempNameFor(name));
    return this.run(`write ${target}`, async (client) => {
      await client.mkdir(posix.dirname(target), true);
      try {
        await client.put(Buffer.from(text, 'utf8'), temp);
        await this.renameOver(client, temp, target);
      } catch (err) {
        await client.delete(temp, true).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Waits for queued operations, then ends the session. Later calls fail. */
  async close(): Promise<void> {
    this.isClosed = true;
    await this.serial(async () => {
      const connection = this.connection;
      this.connection = undefined;
      if (connection) await endConnection(connection);
    });
  }

  /** Runs one operation on a live connection, after every earlier one, mapping its failure. */
  private run<T>(action: string, operation: (client: SftpClient) => Promise<T>): Promise<T> {
    if (this.isClosed) {
      const closed = new InternalError('INTERNAL', `sftp transport ${this.description} is closed`);
      return Promise.reject(closed);
    }
    return this.serial(async () => {
      const connection = await this.connected();
      try {
        return await operation(connection.client);
      } catch (err) {
        if (!isServerRefusal(err)) this.drop(connection);
        throw this.toRelaisError(err, action);
      }
    });
  }

  private async connected(): Promise<SftpConnection> {
    if (this.connection) return this.connection;
    const connection = await connectSftp(this.options, this.log, this.backoff);
    connection.client.on('close', () => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.log.debug({ host: this.options.host }, 'sftp connection closed by the server');
    });
    this.connection = connection;
    return connection;
  }

  /** Forgets a connection that failed mid-operation; the next operation opens a new one. */
  private drop(connection: SftpConnection): void {
    if (this.connection === connection) this.connection = undefined;
    connection.socket.destroy();
  }

  /** posix-rename replaces the target atomically; plain SFTP rename refuses an existing one. */
  private async renameOver(client: SftpClient, from: string, to: string): Promise<void> {
    if (this.hasPosixRename !== false) {
      try {
        await client.posixRename(from, to);
        this.hasPosixRename = true;
        return;
      } catch (err) {
        if (!/does not support/i.test((err as Error).message)) throw err;
        this.hasPosixRename = false;
      }
    }
    await client.delete(to, true);
    await client.rename(from, to);
  }

  private remotePath(name: string, folder?: string): string {
    assertFileName(name);
    if (folder === undefined) return posix.join(this.options.inbox, name);
    assertSubfolder(folder);
    return posix.join(this.options.inbox, folder, name);
  }

  private where(path: string): Record<string, unknown> {
    return { host: this.options.host, port: this.options.port, path };
  }

  private toRelaisError(err: unknown, action: string): RelaisError {
    if (isRelaisError(err)) return err;
    if (isLocalError(err)) {
      const folder = err.path ? dirname(err.path) : 'the local staging folder';
      return new TransientError(
        'TRANSPORT_IO_FAILED',
        `local folder ${folder}: cannot ${action} (${err.code})`,
        { folder, errno: err.code },
        { cause: err },
      );
    }
    return new TransientError(
      'SFTP_TRANSFER_FAILED',
      `sftp ${action} failed on ${this.description}: ${(err as Error).message}`,
      { host: this.options.host, port: this.options.port, action },
      { cause: err },
    );
  }
}

async function endConnection(connection: SftpConnection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, END_TIMEOUT_MS);
  });
  await Promise.race([connection.client.end().catch(() => undefined), timeout]);
  clearTimeout(timer);
  connection.socket.destroy();
}
