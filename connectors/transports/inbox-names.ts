/**
 * Guards shared by the transports: every path they touch stays inside the inbox. File names
 * come from a listing (or from them plus a suffix), folders from the ISP config.
 */
import { randomBytes } from 'node:crypto';
import { ConfigError, InternalError } from '../../platform/errors.js';

/** Refuses a file name that is empty, a dot entry or holds a path separator. */
export function assertFileName(name: string): void {
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw new InternalError('INTERNAL', `not a plain file name: ${JSON.stringify(name)}`);
  }
}

/** Refuses a subfolder that is absolute or climbs out of the inbox. */
export function assertSubfolder(folder: string): void {
  const parts = folder.split('/');
  if (folder.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `inbox subfolder ${JSON.stringify(folder)} must be a relative path inside the inbox`,
      { folder },
    );
  }
}

/** A hidden temp name beside `name`: pickup ignores dot-files and `*.tmp`. */
export function tempNameFor(name: string): string {
  return `.${name}.${randomBytes(4).toString('hex')}.tmp`;
}
