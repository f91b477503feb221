/**
 * Where the CLI gets the vendor's rated lines of a closed period, mapped back to customer
 * refs: streamed from the subscription server's API (which must be running, as for any
 * connector call) and mapped in the connector database.
 */

import type { IspInvoiceLine } from '../billing/invoice-line.js';
import { mapToCustomerRefs } from '../billing/map-back.js';
import type { IspConfig } from '../config/load.js';
import { openKeystore } from '../licensing/keystore.js';
import { billingClientFor } from './licensing-runtime.js';
import type { Services } from './services.js';

export async function* vendorLinesFor(
  services: Services,
  isp: IspConfig,
  period: string,
): AsyncGenerator<IspInvoiceLine> {
  const { config } = services;
  const client = billingClientFor(config, openKeystore(config.deployment.signing.keysDir));
  const summary = await client.summary(isp.id, period);
  yield* mapToCustomerRefs(
    services.connectorDb,
    isp.id,
    client.lines(isp.id, period, summary.lineCount),
  );
}
