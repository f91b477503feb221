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
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError, InternalError } from '../platform/errors.js';
import { takeRandom } from '../platform/ids.js';
import { randomSecret } from '../platform/secret-files.js';

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
  const key = randomSecret(file);
  if (key.length !== 32) throw new ConfigError('SECRET_UNREADABLE', `${file} is not a 32-byte key`);
  return key;
}

export function openVault(keysDir: string): Vault {
  const key = vaultKey(keysDir);
  return {
    seal(plain, context) {
      // From the pooled CSPRNG (platform/ids.ts): one system call per seal was most of its cost.
      const iv = takeRandom(IV_BYTES);
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
