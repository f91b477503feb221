/**
 * Seeds the month-end benchmark: `count` subscribers of one ISP, each provisioned with one to
 * three modules and activated during the month before the rated period, written straight into
 * both databases with MariaDB's SEQUENCE engine (`seq_1_to_N`), in the shapes provisioning and
 * activation write: a subscription, a licence, a `provisioned` and an `activated` event on the
 * vendor side; a subscriber with its customer ref on the connector side. About 10 s per
 * million on this machine, not part of the timed run.
 */
import type { Db } from '../platform/db.js';

/** Module sets by subscriber number modulo 3: one, two or three modules, two on average. */
const MODULE_SETS = [
  "'antivirus'",
  "'antivirus,firewall'",
  "'antivirus,firewall,parental-control'",
];
const CHUNK = 100_000;

export interface BillingSeed {
  ispId: string;
  count: number;
  /** When the subscribers were provisioned and activated (before the period rated). */
  provisionedAt: string;
  activatedAt: string;
}

const subscriberId = (n: string) => `CONCAT('sub', LPAD(${n}, 12, '0'))`;
const licenceId = (n: string) => `CONCAT('lic', LPAD(${n}, 12, '0'))`;
const modulesOf = (n: string) =>
  `ELT(MOD(${n}, 3) + 1, ${MODULE_SETS[0]}, ${MODULE_SETS[1]}, ${MODULE_SETS[2]})`;

export async function seedBilling(licensing: Db, connector: Db, seed: BillingSeed): Promise<void> {
  const { ispId, provisionedAt, activatedAt } = seed;
  for (let from = 1; from <= seed.count; from += CHUNK) {
    const to = Math.min(seed.count, from + CHUNK - 1);
    const seq = `seq_${from}_to_${to}`;
    await licensing.raw(
      `INSERT INTO subscriptions (subscriber_id, isp_id, status, modules, version, created_at, updated_at)
       SELECT ${subscriberId('seq')}, ?, 'active', ${modulesOf('seq')}, 1, ?, ? FROM ${seq}`,
      [ispId, provisionedAt, provisionedAt],
    );
    await licensing.raw(
      `INSERT INTO licences (id, subscriber_id, isp_id, key_hash, status, valid_until, activated_at,
         period, device_limit, link_generation, created_at, updated_at)
       SELECT ${licenceId('seq')}, ${subscriberId('seq')}, ?, UNHEX(SHA2(CONCAT(?, seq), 256)),
         'valid', DATE_ADD(?, INTERVAL 60 DAY), ?, LEFT(?, 7), 1, 1, ?, ? FROM ${seq}`,
      [ispId, ispId, provisionedAt, activatedAt, provisionedAt, provisionedAt, activatedAt],
    );
    await licensing.raw(
      `INSERT INTO subscription_events (isp_id, subscriber_id, licence_id, type, data,
         idempotency_key, occurred_at, recorded_at)
       SELECT ?, ${subscriberId('s.seq')}, ${licenceId('s.seq')}, e.type,
         IF(e.type = 'provisioned',
            CONCAT('{"modules":["', REPLACE(${modulesOf('s.seq')}, ',', '","'), '"],"version":1}'),
            '{"deviceId":"dev1"}'),
         CONCAT(e.type, ':', ${licenceId('s.seq')}),
         IF(e.type = 'provisioned', ?, ?), IF(e.type = 'provisioned', ?, ?)
       FROM ${seq} s
       JOIN (SELECT 'provisioned' AS type, 1 AS o UNION ALL SELECT 'activated', 2) e
       ORDER BY s.seq, e.o`,
      [ispId, provisionedAt, activatedAt, provisionedAt, activatedAt],
    );
    await connector.raw(
      `INSERT INTO subscribers (isp_id, customer_ref, subscriber_id, status, offer, modules,
         effective_at, version, created_at, updated_at)
       SELECT ?, LPAD(seq, 8, '0'), ${subscriberId('seq')}, 'active', NULL, ${modulesOf('seq')},
         ?, 1, ?, ? FROM ${seq}`,
      [ispId, provisionedAt, provisionedAt, provisionedAt],
    );
  }
}
