/**
 * `relais subscribers erase --isp ID --ref REF`: carries out an ISP's erasure request for one
 * customer, on the subscription server (through its API, as the connector always reaches it)
 * and in the connector database (connectors/erasure.ts). Prints the server's receipt id, which
 * the ISP keeps as proof; running it again prints the same receipt.
 */
import type { Command } from 'commander';
import { type CustomerErasure, eraseCustomer } from '../../connectors/erasure.js';
import { ispTokenOf } from '../../licensing/isp-auth.js';
import { openKeystore } from '../../licensing/keystore.js';
import { ConfigError } from '../../platform/errors.js';
import { pendingMigrations } from '../../platform/migrations.js';
import { createLicensingClient } from '../../queue/licensing-client.js';
import { withConnectorDb } from '../command-context.js';
import { EXIT_USAGE, ExitRequest } from '../exit.js';
import { configOption, out } from '../output.js';

function describe(e: CustomerErasure): string[] {
  const lines: string[] = [];
  if (e.server) {
    const d = e.server.deleted;
    lines.push(
      `${e.repeated ? 'already erased' : 'erased'} subscriber ${e.subscriberId} of ${e.ispId}: receipt ${e.server.receiptId}`,
      `  server: ${e.server.revokedLicences.length} licence(s) revoked, ${d.devices} device(s), ${d.downloads} download(s) and ${d.ledgerEvents} device/download event(s) deleted`,
    );
  } else {
    lines.push(
      `erased subscriber ${e.subscriberId} of ${e.ispId} in the connector only: the subscription server never knew it, so there is no receipt`,
    );
  }
  const c = e.connector;
  lines.push(
    `  connector: ${c.contacts} address(es) deleted, ${c.deliveriesVoided} pending delivery(ies) voided, ${c.secretsErased} sealed key(s) erased${e.repeated ? '' : ', customer ref moved to erased subscribers'}`,
  );
  if (e.wasLive) {
    lines.push(
      '  warning: the customer was still active at the connector; if the ISP still lists this ref, its next snapshot subscribes it again as a new customer',
    );
  }
  return lines;
}

export function registerSubscribersCommand(program: Command): void {
  const subscribers = program
    .command('subscribers')
    .description("act on one ISP's subscribers (erasure requests)");

  configOption(subscribers.command('erase'))
    .description(
      "erase a customer at the ISP's request: server (licence revoked, devices and downloads deleted, signed receipt) and connector (address, keys, ref map)",
    )
    .requiredOption('--isp <id>', 'ISP id')
    .requiredOption('--ref <customerRef>', "the ISP's customer ref")
    .option('--json', 'print the erasure, receipt included, as JSON')
    .action(async (options: { config?: string; isp: string; ref: string; json?: boolean }) => {
      if (options.ref.trim() === '') {
        out('--ref must be a customer ref, got an empty string');
        throw new ExitRequest(EXIT_USAGE);
      }
      await withConnectorDb(options.config, async ({ config, db, log }) => {
        const pending = await pendingMigrations(db, 'connector');
        if (pending.length > 0) {
          throw new ConfigError(
            'DB_MIGRATIONS_PENDING',
            `connector database has ${pending.length} pending migration(s): run relais migrate`,
            { pending },
          );
        }
        const keystore = openKeystore(config.deployment.signing.keysDir);
        const server = createLicensingClient({
          baseUrl: config.deployment.server.url,
          tokenOf: (ispId) => ispTokenOf(config, keystore, ispId),
          timeoutMs: 30_000,
        });
        const erasure = await eraseCustomer({ config, db, server, log }, options.isp, options.ref);
        if (options.json) out(JSON.stringify(erasure));
        else for (const line of describe(erasure)) out(line);
      });
    });
}
