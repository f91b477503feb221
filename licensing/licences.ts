/**
 * Licences as the provisioning side makes and mends them: a new licence for a subscribe (its
 * activation key, shown once, and its download link), a fresh key for a licence whose key was
 * never used (the connector lost the first answer), and a re-issued download link (older links
 * stop working). Activation, renewal and downloads read the same rows but live elsewhere.
 *
 * Only the keyed hash of a key is ever stored; the clear key leaves in one answer and is gone.
 */
import type { Knex } from 'knex';
import type { IspConfig } from '../config/load.js';
import { RequestError } from '../platform/errors.js';
import { newOrderedId } from '../platform/ids.js';
import { generateKey, hashKey } from './activation-key.js';
import { type LicensingDeps, servedIsp } from './context.js';
import { createDownloadToken, downloadUrl } from './download-token.js';
import { appendEvents } from './ledger.js';
import { periodOf, validUntilFor } from './periods.js';
import type { IssuedLicence } from './provisioning-wire.js';

const DAY_MS = 86_400_000;
const LICENCE_ID = /^lic_[0-9a-hjkmnp-tv-z]{26}$/;

/** A `licences` row as this module reads and writes it. */
export interface LicenceRow {
  id: string;
  subscriber_id: string;
  isp_id: string;
  key_hash: Buffer;
  status: 'valid' | 'revoked';
  valid_until: Date | null;
  activated_at: Date | null;
  period: string | null;
  device_limit: number;
  link_generation: number;
  revoked_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface IssuedLink {
  downloadUrl: string;
  /** ISO 8601 UTC, whole seconds (the token carries unix seconds). */
  downloadExpiresAt: string;
  expiresAt: Date;
}

type LinkDeps = Pick<LicensingDeps, 'config' | 'keystore' | 'now'>;

/**
 * A download link for a licence's current generation, valid `downloadLinkDays` of its ISP from
 * now. Pure: nothing is stored, any number of links of one generation work side by side.
 */
export function issueDownloadLink(
  deps: LinkDeps,
  link: { licenceId: string; generation: number; ispId: string },
): IssuedLink {
  const isp = servedIsp(deps, link.ispId);
  const expiresS = Math.floor(
    (deps.now().getTime() + isp.licensing.downloadLinkDays * DAY_MS) / 1000,
  );
  const token = createDownloadToken(deps.keystore.linkSecret, {
    licenceId: link.licenceId,
    generation: link.generation,
    expiresAt: expiresS,
  });
  const expiresAt = new Date(expiresS * 1000);
  return {
    downloadUrl: downloadUrl(deps.config.deployment.server.url, token),
    downloadExpiresAt: expiresAt.toISOString(),
    expiresAt,
  };
}

/** Seats of a licence sold under `offer`: the offer's own limit, else the ISP's. */
export function deviceLimitFor(isp: IspConfig, offer: string | undefined): number {
  const byOffer = offer === undefined ? undefined : isp.licensing.offerDeviceLimits[offer];
  return byOffer ?? isp.licensing.deviceLimit;
}

/** A fresh key: the grouped form to show once, and the hash to store. */
export function freshKey(deps: Pick<LicensingDeps, 'keystore'>): { key: string; hash: Buffer } {
  const key = generateKey();
  // A generated key is canonical but for its group dashes: no need to read it back.
  return { key, hash: hashKey(deps.keystore.keyHashSecret, key.replaceAll('-', '')) };
}

/** Valid until the end of the current period plus grace, in the ISP's zone. */
export function currentValidity(isp: IspConfig, now: Date): { period: string; validUntil: Date } {
  const period = periodOf(now, isp.timeZone);
  return { period, validUntil: validUntilFor(period, isp.timeZone, isp.licensing.graceDays) };
}

/** A new licence row for a subscriber (not yet stored) and its key. */
export function newLicence(
  deps: Pick<LicensingDeps, 'keystore'>,
  isp: IspConfig,
  subscriberId: string,
  offer: string | undefined,
  now: Date,
): { row: LicenceRow; key: string } {
  const { key, hash } = freshKey(deps);
  const { period, validUntil } = currentValidity(isp, now);
  const row: LicenceRow = {
    // Time-ordered: a first load appends to the licences index instead of scattering over it.
    id: newOrderedId('lic'),
    subscriber_id: subscriberId,
    isp_id: isp.id,
    key_hash: hash,
    status: 'valid',
    valid_until: validUntil,
    activated_at: null,
    period,
    device_limit: deviceLimitFor(isp, offer),
    link_generation: 1,
    revoked_at: null,
    created_at: now,
    updated_at: now,
  };
  return { row, key };
}

/**
 * The licence `licenceId` of `ispId`, locked for the transaction. Another ISP's licence, an
 * unknown id and an erased one all answer LICENCE_NOT_FOUND: no ISP can probe another's ids.
 */
async function lockedLicence(
  trx: Knex.Transaction,
  ispId: string,
  licenceId: string,
): Promise<LicenceRow> {
  const row: LicenceRow | undefined = LICENCE_ID.test(licenceId)
    ? await trx('licences').where({ id: licenceId, isp_id: ispId }).forUpdate().first()
    : undefined;
  if (row?.status !== 'valid') {
    throw new RequestError('LICENCE_NOT_FOUND', `no licence ${licenceId} for this ISP`);
  }
  return row;
}

/**
 * `POST /v1/licences/:id/key`: replaces the key of a licence never activated, for a connector
 * that lost the first answer (crash between the server's commit and its own). The old key stops
 * working at once. An activated licence keeps its key: KEY_ALREADY_ACTIVATED.
 */
export async function reissueKey(
  deps: LicensingDeps,
  ispId: string,
  licenceId: string,
): Promise<IssuedLicence> {
  servedIsp(deps, ispId);
  const now = deps.now();
  return deps.db.transaction(async (trx) => {
    const row = await lockedLicence(trx, ispId, licenceId);
    if (row.activated_at !== null) {
      throw new RequestError(
        'KEY_ALREADY_ACTIVATED',
        `licence ${licenceId} was activated; its key cannot be replaced`,
      );
    }
    const { key, hash } = freshKey(deps);
    await trx('licences').where({ id: row.id }).update({ key_hash: hash, updated_at: now });
    await appendEvents(
      trx,
      [
        {
          ispId,
          subscriberId: row.subscriber_id,
          licenceId: row.id,
          type: 'key-reissued',
          occurredAt: now,
        },
      ],
      now,
    );
    const link = issueDownloadLink(deps, {
      licenceId: row.id,
      generation: row.link_generation,
      ispId,
    });
    return {
      licenceId: row.id,
      key,
      downloadUrl: link.downloadUrl,
      downloadExpiresAt: link.downloadExpiresAt,
      validUntil: (row.valid_until ?? now).toISOString(),
    };
  });
}

/**
 * `POST /v1/licences/:id/download-link`: a new link generation, so every link handed out
 * before stops working (a forwarded or leaked mail), and a link of the new generation.
 */
export async function reissueDownloadLink(
  deps: LicensingDeps,
  ispId: string,
  licenceId: string,
): Promise<{ licenceId: string; downloadUrl: string; downloadExpiresAt: string }> {
  servedIsp(deps, ispId);
  const now = deps.now();
  return deps.db.transaction(async (trx) => {
    const row = await lockedLicence(trx, ispId, licenceId);
    const generation = row.link_generation + 1;
    await trx('licences')
      .where({ id: row.id })
      .update({ link_generation: generation, updated_at: now });
    await appendEvents(
      trx,
      [
        {
          ispId,
          subscriberId: row.subscriber_id,
          licenceId: row.id,
          type: 'link-reissued',
          data: { generation },
          occurredAt: now,
        },
      ],
      now,
    );
    const link = issueDownloadLink(deps, { licenceId: row.id, generation, ispId });
    return {
      licenceId: row.id,
      downloadUrl: link.downloadUrl,
      downloadExpiresAt: link.downloadExpiresAt,
    };
  });
}
