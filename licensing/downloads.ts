/**
 * Serving download links. A link token names a licence, a link generation and an expiry (see
 * download-token.ts); this module decides whether a token still opens anything, which
 * installers it lists (those of the subscription's current modules, found in the installers
 * folder) and records each download in the `downloads` table and the ledger.
 *
 * Every refusal is the same DOWNLOAD_LINK_INVALID to the caller, whatever the reason: a link
 * that leaks "this licence exists but was revoked" is an oracle. The reason goes to the log.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { RequestError } from '../platform/errors.js';
import type { LicensingDeps } from './context.js';
import { readDownloadToken } from './download-token.js';
import { appendEvents } from './ledger.js';

/** Module codes as the config and the wire write them; also what keeps paths inside the folder. */
const MODULE_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
/** Installer file extensions served: letters and digits only, so a file name needs no quoting. */
const EXTENSION_PATTERN = /^\.[A-Za-z0-9]{1,16}$/;

export type LinkRefusal =
  | 'malformed'
  | 'tampered'
  | 'expired'
  | 'unknown-licence'
  | 'replaced'
  | 'revoked'
  | 'erased'
  | 'cancelled';

export interface OpenLink {
  licenceId: string;
  subscriberId: string;
  ispId: string;
  /** The subscription's current modules, sorted. */
  modules: string[];
  expiresAt: Date;
}

export interface Installer {
  module: string;
  file: string;
  fileName: string;
  bytes: number;
}

function refused(deps: LicensingDeps, reason: LinkRefusal, licenceId?: string): RequestError {
  deps.log.info({ reason, licenceId }, 'download link refused');
  return new RequestError(
    'DOWNLOAD_LINK_INVALID',
    'this download link is not valid: it expired, was replaced by a newer one or was withdrawn',
  );
}

/** What a token opens, or DOWNLOAD_LINK_INVALID. */
export async function openDownloadLink(deps: LicensingDeps, token: string): Promise<OpenLink> {
  const nowS = Math.floor(deps.now().getTime() / 1000);
  const reading = readDownloadToken(deps.keystore.linkSecret, token, nowS);
  if (!reading.ok) throw refused(deps, reading.reason);
  const { licenceId, generation, expiresAt } = reading.claims;
  const row = (await deps
    .db('licences as l')
    .join('subscriptions as s', 's.subscriber_id', 'l.subscriber_id')
    .where('l.id', licenceId)
    .first(
      'l.subscriber_id',
      'l.isp_id',
      'l.status',
      'l.link_generation',
      's.status as subscription_status',
      's.modules',
      's.erased_at',
    )) as
    | {
        subscriber_id: string;
        isp_id: string;
        status: string;
        link_generation: number;
        subscription_status: string;
        modules: string;
        erased_at: Date | null;
      }
    | undefined;
  if (!row) throw refused(deps, 'unknown-licence', licenceId);
  if (row.erased_at !== null) throw refused(deps, 'erased', licenceId);
  if (row.status !== 'valid') throw refused(deps, 'revoked', licenceId);
  if (row.subscription_status === 'cancelled') throw refused(deps, 'cancelled', licenceId);
  if (generation !== Number(row.link_generation)) throw refused(deps, 'replaced', licenceId);
  return {
    licenceId,
    subscriberId: row.subscriber_id,
    ispId: row.isp_id,
    modules: row.modules === '' ? [] : row.modules.split(',').sort(),
    expiresAt: new Date(expiresAt * 1000),
  };
}

/**
 * The installer of each module present in the folder: the first file (by name) that is the
 * module code plus one plain extension, e.g. `parental-control.bin`. Modules with no file are
 * left out of the list rather than offered as a broken link.
 */
export async function findInstallers(
  installersDir: string,
  modules: readonly string[],
): Promise<Installer[]> {
  const names = (await readdir(installersDir)).sort();
  const found: Installer[] = [];
  for (const module of modules) {
    if (!MODULE_PATTERN.test(module)) continue;
    const fileName = names.find((name) => {
      const ext = extname(name);
      return EXTENSION_PATTERN.test(ext) && name.slice(0, -ext.length) === module;
    });
    if (fileName === undefined) continue;
    const file = join(installersDir, fileName);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) continue;
    found.push({ module, file, fileName, bytes: info.size });
  }
  return found;
}

/** The installer of one module the link covers, or DOWNLOAD_MODULE_UNAVAILABLE. */
export async function installerFor(
  deps: LicensingDeps,
  link: OpenLink,
  module: string,
): Promise<Installer> {
  const unavailable = () =>
    new RequestError(
      'DOWNLOAD_MODULE_UNAVAILABLE',
      MODULE_PATTERN.test(module)
        ? `module ${module} is not available through this link`
        : 'module must be a module code (lowercase letters, digits and dashes)',
    );
  if (!MODULE_PATTERN.test(module) || !link.modules.includes(module)) throw unavailable();
  const [installer] = await findInstallers(deps.config.deployment.server.installersDir, [module]);
  if (!installer) {
    deps.log.warn({ module }, 'no installer file for a subscribed module');
    throw unavailable();
  }
  return installer;
}

/** Records one download: a `downloads` row and a `downloaded` ledger event, together. */
export async function recordDownload(
  deps: LicensingDeps,
  link: OpenLink,
  module: string,
): Promise<void> {
  const now = deps.now();
  await deps.db.transaction(async (trx) => {
    await trx('downloads').insert({
      licence_id: link.licenceId,
      subscriber_id: link.subscriberId,
      module,
      downloaded_at: now,
    });
    await appendEvents(
      trx,
      [
        {
          ispId: link.ispId,
          subscriberId: link.subscriberId,
          licenceId: link.licenceId,
          type: 'downloaded',
          data: { module },
          occurredAt: now,
        },
      ],
      now,
    );
  });
}
