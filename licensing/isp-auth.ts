/**
 * Which ISP is calling. Each ISP's connector presents `Authorization: Bearer <token>`: the token
 * of `licensing.apiToken` in its config, or one derived from the deployment keys when the config
 * names none. Tokens are compared as SHA-256 digests in constant time, so the comparison leaks
 * neither a token nor which ISP came close. An ISP's token only ever reaches its own subscribers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RelaisConfig } from '../config/load.js';
import { RequestError } from '../platform/errors.js';
import type { Keystore } from './keystore.js';

export interface IspAuthenticator {
  /** The ISP id the header's token belongs to; throws PROVISIONING_UNAUTHORIZED. */
  authenticate(authorization: string | undefined): string;
  /** The token an ISP's connector sends (for the connector's own client). */
  tokenOf(ispId: string): string;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function ispTokenOf(config: RelaisConfig, keystore: Keystore, ispId: string): string {
  const isp = config.isps.get(ispId);
  return isp?.licensing.apiToken ?? keystore.derivedIspToken(ispId);
}

export function createIspAuthenticator(config: RelaisConfig, keystore: Keystore): IspAuthenticator {
  const digests = [...config.isps.values()]
    .filter((isp) => isp.enabled)
    .map((isp) => ({ ispId: isp.id, digest: digest(ispTokenOf(config, keystore, isp.id)) }));
  return {
    authenticate(authorization) {
      const match = /^Bearer ([\x21-\x7e]{16,512})$/.exec(authorization ?? '');
      if (!match) {
        throw new RequestError('PROVISIONING_UNAUTHORIZED', 'missing or malformed bearer token');
      }
      const given = digest(match[1] as string);
      let found: string | undefined;
      // Every candidate is compared, so the time taken does not depend on which one matched.
      for (const candidate of digests) {
        if (timingSafeEqual(candidate.digest, given)) found = candidate.ispId;
      }
      if (found === undefined) {
        throw new RequestError('PROVISIONING_UNAUTHORIZED', 'unknown bearer token');
      }
      return found;
    },
    tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
  };
}
