/**
 * Secret files in the deployment's keys folder: read when present, created on first use when
 * absent. A new file is written with mode 0600 under a temporary name and linked into place,
 * which fails if the name exists, so two processes starting together keep one secret: the
 * loser reads the winner's file.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from './errors.js';

/** The bytes of a secret file; a file that exists but cannot be read is SECRET_UNREADABLE. */
export function readSecretFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError('SECRET_UNREADABLE', `cannot read ${file}`, {}, { cause: err });
  }
}

/** Writes `content` at `file` unless it exists; either way returns what the file holds. */
export function createSecretFileOnce(file: string, content: Buffer | string): Buffer {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, content, { mode: 0o600 });
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(temp, { force: true });
  }
  return readSecretFile(file);
}

/**
 * The random secret held in `file` (base64url text), made of 32 fresh bytes on first use.
 * A file shorter than 32 bytes of secret is refused rather than replaced: replacing it would
 * silently invalidate everything made with the old one.
 */
export function randomSecret(file: string): Buffer {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError('SECRET_UNREADABLE', `cannot read ${file}`, {}, { cause: err });
    }
    text = createSecretFileOnce(file, `${randomBytes(32).toString('base64url')}\n`);
  }
  const value = Buffer.from(text.toString('utf8').trim(), 'base64url');
  if (value.length < 32) {
    throw new ConfigError('SECRET_UNREADABLE', `${file} holds fewer than 32 bytes of secret`);
  }
  return value;
}
