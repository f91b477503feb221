/**
 * The connector's vault: AES-256-GCM for the few secrets the connector must hold for a while
 * (a customer's e-mail address until the key is mailed, a key and link until delivered). The
 * key lives in `<keysDir>/connector-vault.key` (generated on first use, mode 0600), never in
 * the database, so a database dump alone reveals nothing.
 *
 * Sealed form: version byte (1), 12-byte random IV, 16-byte tag, ciphertext. The caller's
 * `context` (e.g. `email:<subscriberId>`) is bound as associated data, so a sealed value
 * copied to another row or purpose fails to open.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, InternalError } from '../platform/errors.js';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface Vault {
  seal(plain: string, context: string): Buffer;
  /** @throws InternalError when the value was altered or sealed for another context. */
  open(sealed: Buffer, context: string): string;
}

function vaultKey(keysDir: string): Buffer {
  const file = join(keysDir, 'connector-vault.key');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError('SECRET_UNREADABLE', `cannot read ${file}`, {}, { cause: err });
    }
    mkdirSync(keysDir, { recursive: true, mode: 0o700 });
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(temp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
    try {
      linkSync(temp, file);
    } catch (linkErr) {
      if ((linkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw linkErr;
    } finally {
      rmSync(temp, { force: true });
    }
    text = readFileSync(file, 'utf8');
  }
  const key = Buffer.from(text.trim(), 'base64url');
  if (key.length !== 32) throw new ConfigError('SECRET_UNREADABLE', `${file} is not a 32-byte key`);
  return key;
}

/**
 * IVs drawn from the CSPRNG 4 KiB at a time: one call per seal was most of a seal's cost
 * (about 10 µs of 15), which the intake pays once per new subscriber of an e-mail ISP.
 */
const ivPool = Buffer.alloc(4080);
let ivOffset = ivPool.length;

/** A fresh IV; a view into the pool, so use it before the next call (seal is synchronous). */
function freshIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

export function openVault(keysDir: string): Vault {
  const key = vaultKey(keysDir);
  return {
    seal(plain, context) {
      const iv = freshIv();
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]);
    },
    open(sealed, context) {
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
        throw new InternalError('INTERNAL', 'sealed value of unknown form');
      }
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tag);
      try {
        const body = sealed.subarray(1 + IV_BYTES + TAG_BYTES);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch (err) {
        throw new InternalError('INTERNAL', 'sealed value does not open', {}, { cause: err });
      }
    },
  };
}
