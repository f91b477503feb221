/**
 * A polled transport over a local or mounted folder (often a share the ISP's billing system
 * writes to). Copies stream through a hash; moves are renames, with copy-then-unlink when a
 * subfolder sits on another device; text files appear whole, written under a temp name first.
 */
import { createReadStream, createWriteStream, type Dirent, type Stats } from 'node:fs';
import {
  access,
  constants,
  copyFile,
  mkdir,
  readdir,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ConfigError,
  InternalError,
  type RelaisError,
  TransientError,
} from '../../platform/errors.js';
import { assertFileName, assertSubfolder, tempNameFor } from './inbox-names.js';
import { discardPartial, HashingCounter } from './local-files.js';
import type { LocalFolderOptions } from './local-folder.options.js';
import type { DownloadResult, InboxFile, PolledTransport } from './transport.js';

/** Errors a person must fix (permissions, a file where a folder should be), not retry. */
const CONFIG_ERRNOS = new Set(['EACCES', 'EPERM', 'ENOTDIR', 'EROFS']);

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'UNKNOWN';
}

/** A TRANSPORT_IO_FAILED error naming the folder and the action, never the file content. */
function ioError(
  err: unknown,
  action: string,
  folder: string,
  missingIsConfig = false,
): RelaisError {
  const errno = errnoOf(err);
  const message = `local folder ${folder}: cannot ${action} (${errno})`;
  const context = { folder, errno };
  const isConfig = CONFIG_ERRNOS.has(errno) || (missingIsConfig && errno === 'ENOENT');
  return isConfig
    ? new ConfigError('TRANSPORT_IO_FAILED', message, context, { cause: err })
    : new TransientError('TRANSPORT_IO_FAILED', message, context, { cause: err });
}

function toInboxFile(name: string, info: Stats): InboxFile {
  return { name, sizeBytes: info.size, mtimeMs: Math.trunc(info.mtimeMs) };
}

/** The local-folder {@link PolledTransport}; open it with {@link LocalFolderTransport.open}. */
export class LocalFolderTransport implements PolledTransport {
  readonly description: string;

  private constructor(private readonly inbox: string) {
    this.description = `file://${inbox}`;
  }

  /** Checks that the inbox is a folder Relais may read and write; otherwise a ConfigError. */
  static async open(options: LocalFolderOptions): Promise<LocalFolderTransport> {
    const inbox = options.inbox;
    if (inbox === undefined || !isAbsolute(inbox)) {
      throw new InternalError('INTERNAL', 'the config loader must resolve the local inbox path');
    }
    let info: Stats;
    try {
      info = await stat(inbox);
      await access(inbox, constants.R_OK | constants.W_OK);
    } catch (err) {
      throw ioError(err, 'open the inbox', inbox, true);
    }
    if (!info.isDirectory()) {
      throw new ConfigError('TRANSPORT_IO_FAILED', `local inbox ${inbox} is not a folder`, {
        folder: inbox,
      });
    }
    return new LocalFolderTransport(inbox);
  }

  async list(): Promise<InboxFile[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.inbox, { withFileTypes: true });
    } catch (err) {
      throw ioError(err, 'list files', this.inbox, true);
    }
    const files: InboxFile[] = [];
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const file = await this.stat(entry.name);
      if (file) files.push(file);
    }
    return files;
  }

  async stat(name: string, folder?: string): Promise<InboxFile | undefined> {
    const dir = this.folderPath(folder);
    assertFileName(name);
    try {
      const info = await stat(join(dir, name));
      return info.isFile() ? toInboxFile(name, info) : undefined;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
      throw ioError(err, `stat ${name}`, dir);
    }
  }

  async download(name: string, localPath: string): Promise<DownloadResult> {
    const expected = await this.stat(name);
    if (!expected) {
      throw new TransientError(
        'TRANSPORT_IO_FAILED',
        `local inbox ${this.inbox}: ${name} is gone`,
        {
          folder: this.inbox,
          file: name,
        },
      );
    }
    const counter = new HashingCounter();
    const out = createWriteStream(localPath);
    try {
      await pipeline(createReadStream(join(this.inbox, name)), counter, out);
    } catch (err) {
      await discardPartial(out, localPath);
      const path = (err as NodeJS.ErrnoException).path;
      throw ioError(err, `copy ${name}`, path === localPath ? dirname(localPath) : this.inbox);
    }
    const result = counter.result();
    if (result.sizeBytes !== expected.sizeBytes) {
      await rm(localPath, { force: true });
      throw new TransientError(
        'TRANSPORT_IO_FAILED',
        `local inbox ${this.inbox}: ${name} changed while being copied (${result.sizeBytes} bytes copied, ${expected.sizeBytes} expected)`,
        {
          folder: this.inbox,
          file: name,
          sizeBytes: result.sizeBytes,
          expected: expected.sizeBytes,
        },
      );
    }
    return result;
  }

  async moveTo(name: string, folder: string, newName = name): Promise<void> {
    assertFileName(name);
    assertFileName(newName);
    const dir = await this.ensureFolder(folder);
    const from = join(this.inbox, name);
    const to = join(dir, newName);
    try {
      await rename(from, to);
    } catch (err) {
      if (errnoOf(err) !== 'EXDEV') throw ioError(err, `move ${name} into ${folder}`, this.inbox);
      await this.copyAcrossDevices(from, to);
    }
  }

  async remove(name: string): Promise<void> {
    assertFileName(name);
    try {
      await unlink(join(this.inbox, name));
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw ioError(err, `delete ${name}`, this.inbox);
    }
  }

  async writeText(folder: string, name: string, text: string): Promise<void> {
    assertFileName(name);
    const dir = await this.ensureFolder(folder);
    const temp = join(dir, tempNameFor(name));
    try {
      await writeFile(temp, text, { encoding: 'utf8', flag: 'wx' });
      await rename(temp, join(dir, name));
    } catch (err) {
      await rm(temp, { force: true });
      throw ioError(err, `write ${name}`, dir);
    }
  }

  async close(): Promise<void> {}

  private folderPath(folder: string | undefined): string {
    if (folder === undefined) return this.inbox;
    assertSubfolder(folder);
    return join(this.inbox, folder);
  }

  private async ensureFolder(folder: string): Promise<string> {
    const dir = this.folderPath(folder);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw ioError(err, 'create the folder', dir);
    }
    return dir;
  }

  /** rename(2) cannot cross devices: copy beside the target, rename it in, then unlink. */
  private async copyAcrossDevices(from: string, to: string): Promise<void> {
    const temp = join(dirname(to), tempNameFor(basename(to)));
    try {
      const info = await stat(from);
      await copyFile(from, temp, constants.COPYFILE_EXCL);
      await utimes(temp, info.atime, info.mtime);
      await rename(temp, to);
      await unlink(from);
    } catch (err) {
      await rm(temp, { force: true });
      throw ioError(err, `move ${from} across devices`, dirname(to));
    }
  }
}
