import { InternalError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { LocalFolderTransport } from './local-folder.js';
import type { TransportOptions } from './registry.js';
import { SftpTransport } from './sftp.js';
import { type ConnectBackoff, DEFAULT_BACKOFF } from './sftp-connect.js';
import type { PolledTransport } from './transport.js';

/** Settings that are not part of the ISP config; tests use them to keep retries short. */
export interface OpenTuning {
  /** Delays between SFTP connect attempts (default: 1 s doubling up to 30 s, with jitter). */
  connectBackoff?: ConnectBackoff;
}

/**
 * Opens the polled transport an ISP's config names, ready to use: the local inbox is checked,
 * an SFTP server is connected (host key verified, credentials accepted, inbox present).
 *
 * @throws ConfigError when the config cannot work (missing folder, wrong host key, refused
 * credentials); TransientError when the server cannot be reached; InternalError for `http`,
 * which is pushed to us and never polled.
 */
export async function openPolledTransport(
  options: TransportOptions,
  log: Logger,
  tuning: OpenTuning = {},
): Promise<PolledTransport> {
  switch (options.type) {
    case 'local':
      return LocalFolderTransport.open(options);
    case 'sftp':
      return SftpTransport.open(
        options,
        log.child({ transport: 'sftp' }),
        tuning.connectBackoff ?? DEFAULT_BACKOFF,
      );
    case 'http':
      throw new InternalError('INTERNAL', 'the http transport is pushed to, never polled');
  }
}
