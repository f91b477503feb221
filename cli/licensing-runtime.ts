/**
 * Wires both halves of key handling for a process: the subscription server's dependencies
 * (licensing database, keystore) and the connector's (vault, the client that provisions the
 * server). In one deployment both live in one process; the connector only ever reaches the
 * server through its HTTP API, as it would across hosts.
 */
import type { RelaisConfig } from '../config/load.js';
import { openVault, type Vault } from '../connectors/vault.js';
import type { LicensingDeps } from '../licensing/context.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { type Keystore, openKeystore } from '../licensing/keystore.js';
import { type BillingClient, createBillingClient } from '../queue/billing-client.js';
import { createLicensingClient, type LicensingClient } from '../queue/licensing-client.js';
import type { Services } from './services.js';

export interface LicensingRuntime {
  /** What the server's routes and jobs are handed. */
  server: LicensingDeps;
  keystore: Keystore;
  /** The connector's vault (sealed e-mail addresses, keys awaiting delivery). */
  vault: Vault;
  /** The connector's client of the subscription server. */
  client: LicensingClient;
  /** The connector's reader of closed billing periods at the subscription server. */
  billing: BillingClient;
}

/** `config` with the server reached at `url` (an api started on a port chosen at run time). */
export function withServerUrl(config: RelaisConfig, url: string): RelaisConfig {
  const { deployment } = config;
  return {
    ...config,
    deployment: {
      ...deployment,
      http: { ...deployment.http, publicUrl: url },
      server: { ...deployment.server, url },
    },
  };
}

/** The subscription server's dependencies in this process: its database and the deployment keys. */
export function licensingServerDeps(services: Services, keystore?: Keystore): LicensingDeps {
  const { config } = services;
  return {
    config,
    db: services.licensingDb,
    redis: services.redis,
    keystore: keystore ?? openKeystore(config.deployment.signing.keysDir),
    log: services.log,
    metrics: services.metrics,
    now: () => services.clock.now(),
  };
}

export function openLicensing(services: Services): LicensingRuntime {
  const { config } = services;
  const { keysDir } = config.deployment.signing;
  const keystore = openKeystore(keysDir);
  const server = licensingServerDeps(services, keystore);
  const client = createLicensingClient({
    baseUrl: config.deployment.server.url,
    tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
  });
  const billing = billingClientFor(config, keystore);
  return { server, keystore, vault: openVault(keysDir), client, billing };
}

/** The connector's reader of closed periods, presenting each ISP's token. */
export function billingClientFor(config: RelaisConfig, keystore: Keystore): BillingClient {
  return createBillingClient({
    baseUrl: config.deployment.server.url,
    tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
  });
}
