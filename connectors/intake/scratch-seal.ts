/**
 * Keeps e-mail addresses unreadable in a feed's sort runs. The sorted path writes every record
 * to run files in the feed's scratch folder; for an ISP whose addresses are kept (see
 * contacts.ts) the address must travel with its record, but must not sit on disk in clear.
 * Each feed's processing makes a key that lives only in memory: the runs are useless to
 * anyone reading the disk, and once the process ends (or crashes) to anyone at all, which is
 * fine since a rerun reads the feed again from its kept bytes.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface ScratchSeal {
  /** The text sealed, as base64 (fits a JSON line). */
  hide(text: string): string;
  reveal(hidden: string): string;
}

/**
 * The key is fresh for every feed and never leaves memory, so a counter is a safe IV (each
 * value used once under that key) and spares a CSPRNG call per record.
 */
export function createScratchSeal(): ScratchSeal {
  const key = randomBytes(32);
  let counter = 0;
  return {
    hide(text) {
      const iv = Buffer.alloc(IV_BYTES);
      iv.writeUIntBE(++counter, IV_BYTES - 6, 6);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
    },
    reveal(hidden) {
      const bytes = Buffer.from(hidden, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const body = bytes.subarray(IV_BYTES + TAG_BYTES);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    },
  };
}
