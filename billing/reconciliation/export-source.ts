/**
 * Where an ISP's billing export is found when no file is named: the newest file matching
 * `billing.reconciliation.source.pattern` in the configured transport (by default the intake's
 * own inbox, local or SFTP), downloaded to a local file first so that the reader never holds a
 * connection while it sorts. The file is left where it is: reconciliation is a read, and can be
 * run again on the same export.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import picomatch from 'picomatch';
import type { IspConfig } from '../../config/load.js';
import type { ReconciliationSource } from '../../config/reconciliation-schema.js';
import { openPolledTransport } from '../../connectors/transports/open.js';
import type { TransportOptions } from '../../connectors/transports/registry.js';
import type { InboxFile } from '../../connectors/transports/transport.js';
import { ConfigError, IspDataError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';

/**
 * The transport exports arrive through, with paths resolved the way the loader resolves the
 * intake's: a configured local inbox relative to the ISP file, an absent one under the ISP's
 * working folder, a key file relative to the ISP file.
 *
 * @throws ConfigError when no transport is configured and the intake is pushed over HTTP.
 */
export function exportTransport(isp: IspConfig, source: ReconciliationSource): TransportOptions {
  const base = dirname(isp.file);
  const own = source.transport;
  if (own === undefined) {
    if (isp.intake.transport.type === 'http') {
      throw new ConfigError(
        'CONFIG_INVALID',
        `isp ${isp.id}: billing.reconciliation.source.transport is required, the intake is pushed over http and has no inbox to look in`,
        { isp: isp.id },
      );
    }
    return isp.intake.transport;
  }
  if (own.type === 'local') {
    const inbox = own.inbox ?? join(isp.workDir, 'billing-exports');
    return { ...own, inbox: isAbsolute(inbox) ? inbox : resolve(base, inbox) };
  }
  return own.privateKeyFile ? { ...own, privateKeyFile: resolve(base, own.privateKeyFile) } : own;
}

/** The newest of the matching files: latest modification time, then the greatest name. */
export function newestExport(files: readonly InboxFile[], pattern: string): InboxFile | undefined {
  const matches = picomatch(pattern, { dot: false });
  let newest: InboxFile | undefined;
  for (const file of files) {
    if (!matches(file.name)) continue;
    if (
      newest === undefined ||
      file.mtimeMs > newest.mtimeMs ||
      (file.mtimeMs === newest.mtimeMs && file.name > newest.name)
    ) {
      newest = file;
    }
  }
  return newest;
}

/**
 * Downloads the newest export into `dir` and returns its local path and name.
 *
 * @throws IspDataError RECONCILIATION_EXPORT_NOT_FOUND when no file matches the pattern.
 */
export async function fetchNewestExport(
  isp: IspConfig,
  source: ReconciliationSource,
  dir: string,
  log: Logger,
): Promise<{ path: string; fileName: string }> {
  const transport = await openPolledTransport(exportTransport(isp, source), log);
  try {
    const newest = newestExport(await transport.list(), source.pattern);
    if (!newest) {
      throw new IspDataError(
        'RECONCILIATION_EXPORT_NOT_FOUND',
        `isp ${isp.id}: no billing export matching ${source.pattern} in ${transport.description}`,
        { isp: isp.id, pattern: source.pattern, where: transport.description },
      );
    }
    const path = join(dir, 'export.download');
    await transport.download(newest.name, path);
    return { path, fileName: newest.name };
  } finally {
    await transport.close();
  }
}
