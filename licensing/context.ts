/**
 * What every licensing service is handed by the composition root. Licensing never opens a
 * connection or reads a config file itself, and never sees the connector database.
 */
import type { Redis } from 'ioredis';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import type { Db } from '../platform/db.js';
import { RequestError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { Keystore } from './keystore.js';

export interface LicensingDeps {
  config: RelaisConfig;
  /** The licensing database (`relais_licensing`), never the connector one. */
  db: Db;
  redis: Redis;
  keystore: Keystore;
  log: Logger;
  metrics: Metrics;
  now: () => Date;
}

/**
 * The config of an ISP of this deployment; an unknown one is ISP_UNKNOWN. A disabled ISP is
 * still served: it "keeps its data but is not polled", so its customers' licences still
 * activate and download, and `relais period renew` closes its periods. What stops is what its
 * schedule drives: its provisioning token (`isp-auth.ts` leaves disabled ISPs out) and the
 * scheduled close (`queue/renewal.scheduler.ts` skips it).
 */
export function servedIsp(deps: Pick<LicensingDeps, 'config'>, ispId: string): IspConfig {
  const isp = deps.config.isps.get(ispId);
  if (!isp) throw new RequestError('ISP_UNKNOWN', `no ISP ${ispId} in this deployment`);
  return isp;
}
