/**
 * Activation, check-in and device removal: what the desktop software asks of the server.
 *
 * Activation reads the key, finds its licence by keyed hash, checks the subscription and the
 * device seats, binds the device and hands back a signed licence document. The first activation
 * of a licence appends `activated` to the ledger once (that event is what billing counts).
 * Device fingerprints are opaque strings from the software, kept only as a keyed hash.
 *
 * A device already bound takes the fast path (one read, no transaction, no lock): that is
 * what most requests are, as the software re-activates after a reinstall. Binding a new device
 * locks the licence row, so concurrent activations of one licence never exceed its seats.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import { retryLockConflicts } from '../platform/db.js';
import { isRelaisError, isRetryable, RequestError, TransientError } from '../platform/errors.js';
import { newId } from '../platform/ids.js';
import { hashKey, readKey } from './activation-key.js';
import { type LicensingDeps, servedIsp } from './context.js';
import { appendEvents, eventsStatement, type LedgerEvent } from './ledger.js';
import { buildLicenceDocument, type LicenceState, licenceStatus } from './licence-document.js';
import { periodBounds, periodOf } from './periods.js';
import type { SignedDocument } from './signed-document.js';

export const FINGERPRINT_PATTERN = /^[A-Za-z0-9._:+/=-]{16,128}$/;

/** The one answer for an unknown key and a mistyped one, so neither is an oracle. */
export const INVALID_KEY_MESSAGE = 'this activation key is not valid';

/** Keyed hash of a device fingerprint; the `fp:` prefix keeps it apart from key hashes. */
export function fingerprintHash(secret: Buffer, fingerprint: string): Buffer {
  return createHmac('sha256', secret).update(`fp:${fingerprint}`).digest();
}

export type ActivationOutcome =
  /** First activation of the licence: billable from now. */
  | 'activated'
  /** Another device took a free seat. */
  | 'device-added'
  /** The device was already bound: no seat used. */
  | 'reactivated';

export interface Activation {
  outcome: ActivationOutcome;
  /** The ISP of the licence (for metrics; not part of the answer). */
  ispId: string;
  licenceId: string;
  deviceId: string;
  document: SignedDocument;
}

/** Why an activation failed before any licence was found: for metrics, never for the client. */
export class InvalidKeyError extends RequestError {
  constructor(readonly reason: 'mistyped' | 'unknown') {
    super('ACTIVATION_KEY_INVALID', INVALID_KEY_MESSAGE);
  }
}

interface LicenceRow {
  id: string;
  subscriber_id: string;
  isp_id: string;
  key_hash: Buffer;
  status: string;
  valid_until: Date | null;
  activated_at: Date | null;
  period: string | null;
  device_limit: number;
  subscription_status: string;
  modules: string;
  erased_at: Date | null;
}

const LICENCE_SELECT = `SELECT l.id, l.subscriber_id, l.isp_id, l.key_hash, l.status, l.valid_until,
  l.activated_at, l.period, l.device_limit, s.status AS subscription_status, s.modules, s.erased_at
  FROM licences l JOIN subscriptions s ON s.subscriber_id = l.subscriber_id`;

/** The licence and every device row of it, one row per device (device columns NULL if none). */
const LICENCE_WITH_DEVICES_SELECT = `SELECT l.id, l.subscriber_id, l.isp_id, l.key_hash, l.status,
  l.valid_until, l.activated_at, l.period, l.device_limit, s.status AS subscription_status,
  s.modules, s.erased_at, d.id AS device_id, d.state AS device_state, d.fingerprint_hash AS fp
  FROM licences l JOIN subscriptions s ON s.subscriber_id = l.subscriber_id
  LEFT JOIN devices d ON d.licence_id = l.id`;

async function rows<T>(db: Knex | Knex.Transaction, sql: string, values: unknown[]): Promise<T[]> {
  const [found] = (await db.raw(sql, values as Knex.RawBinding[])) as [T[]];
  return found;
}

function stateOf(row: LicenceRow): LicenceState {
  return {
    licenceId: row.id,
    subscriberId: row.subscriber_id,
    ispId: row.isp_id,
    licenceStatus: row.status,
    subscriptionStatus: row.subscription_status,
    erasedAt: row.erased_at,
    validUntil: row.valid_until,
    period: row.period,
    modules: row.modules,
    deviceLimit: row.device_limit,
  };
}

function documentFor(deps: LicensingDeps, row: LicenceRow, deviceId: string, now: Date) {
  return buildLicenceDocument(deps.keystore.signing, {
    state: stateOf(row),
    deviceId,
    now,
    checkInHours: deps.config.deployment.server.checkInHours,
  });
}

/**
 * Refuses a licence whose subscription does not allow binding a device now. The context holds
 * the ISP id for metrics only; the client's answer is code and message.
 */
function assertActivatable(row: LicenceRow, now: Date): void {
  const status = licenceStatus(stateOf(row), now);
  if (status === 'suspended') {
    throw new RequestError(
      'ACTIVATION_SUSPENDED',
      `licence ${row.id} is suspended by the ISP; it can be activated again once resumed`,
      { ispId: row.isp_id },
    );
  }
  // A cancellation runs to the end of its paid period; without an end date there is none.
  const lapsed = status === 'cancelled' && row.valid_until === null;
  if (status === 'revoked' || status === 'expired' || lapsed) {
    throw new RequestError(
      'ACTIVATION_CANCELLED',
      `licence ${row.id} is ${lapsed ? 'cancelled' : status} and unlocks nothing`,
      { ispId: row.isp_id },
    );
  }
}

const SEEN_REFRESH_MS = 3_600_000;

/** Runs `work` in a transaction, again after a deadlock (InnoDB picks a victim; it is us). */
function transaction<T>(db: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return retryLockConflicts(() => db.transaction(work), { attempts: 3 });
}

interface DeviceRow {
  id: string;
  state: string;
}

/** Driver errors that mean the database is down or busy, not that a statement is wrong. */
function isOutage(err: unknown): boolean {
  const e = err as { name?: unknown; fatal?: unknown } | null;
  // A pool that cannot get a connection in time is an outage too, though it has no code.
  return isRetryable(err) || e?.fatal === true || e?.name === 'KnexTimeoutError';
}

/**
 * Runs `work` and turns a database outage into a retryable 503 DB_UNAVAILABLE, so the software
 * tries again later instead of reading a 500 as a verdict. The message keeps the driver's code
 * and first line only (never a statement: it could hold a key hash).
 */
async function withDatabase<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (isRelaisError(err) || !isOutage(err)) throw err;
    const { code, message } = err as { code?: unknown; message?: unknown };
    const line = String(message ?? err).split('\n')[0];
    throw new TransientError(
      'DB_UNAVAILABLE',
      `${what}: the licensing database is unavailable (${String(code ?? line)})`,
      {},
      { cause: { code, message: line } },
    );
  }
}

/** A pooled mysql2 connection, as knex hands it out (callback API). */
interface PooledConnection {
  query(sql: string, values: unknown[], done: (err: Error | null, result: unknown) => void): void;
}

function send(conn: PooledConnection, sql: string, values: unknown[] = []): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    conn.query(sql, values, (err, result) => (err ? reject(err) : resolve(result as unknown[])));
  });
}

/**
 * Runs `work` in a transaction on one connection of the pool, written as few round trips as
 * the statements allow: `work` opens it with START TRANSACTION in its first multi-statement
 * query and closes it with COMMIT in its last. Any failure rolls back (a statement that fails
 * stops the rest of its query, COMMIT included). Taken around knex's transaction helper, which
 * costs a round trip each for BEGIN and COMMIT: a first activation went from 7 to 3.
 */
async function onConnection<T>(db: Knex, work: (conn: PooledConnection) => Promise<T>): Promise<T> {
  const conn = (await db.client.acquireConnection()) as PooledConnection;
  try {
    return await work(conn);
  } catch (err) {
    // A connection that died is dropped by the pool's check on its next acquire.
    await send(conn, 'ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await db.client.releaseConnection(conn);
  }
}

async function bindDevice(
  deps: LicensingDeps,
  found: LicenceRow,
  fpHash: Buffer,
  now: Date,
): Promise<{ outcome: ActivationOutcome; deviceId: string; row: LicenceRow }> {
  const attempt = () => onConnection(deps.db, (conn) => bindOn(conn, found, fpHash, now));
  // InnoDB may pick this transaction as a deadlock victim: run it again from the start.
  return retryLockConflicts(attempt, { attempts: 3 });
}

async function bindOn(
  conn: PooledConnection,
  found: LicenceRow,
  fpHash: Buffer,
  now: Date,
): Promise<{ outcome: ActivationOutcome; deviceId: string; row: LicenceRow }> {
  // The lock serialises every seat change of this licence. It is taken by the write the first
  // activation needs anyway (undone if the activation is refused), then the row and its devices
  // are read in the same round trip: a consistent read made after the lock was granted, so it
  // sees every seat change committed before. No locking read of devices, whose gap locks would
  // stall other licences' inserts.
  const opened = await send(
    conn,
    `START TRANSACTION;
    UPDATE licences SET updated_at = IF(activated_at IS NULL, ?, updated_at), activated_at = COALESCE(activated_at, ?) WHERE id = ?;
    ${LICENCE_WITH_DEVICES_SELECT} WHERE l.id = ?`,
    [now, now, found.id, found.id],
  );
  const joined = opened[2] as (LicenceRow & {
    device_id: string | null;
    device_state: string | null;
    fp: Buffer | null;
  })[];
  const [row] = joined;
  if (!row) throw new InvalidKeyError('unknown');
  // This activation set the date (it was empty under the lock) when it holds our instant.
  const first = found.activated_at === null && row.activated_at?.getTime() === now.getTime();
  assertActivatable(row, now);
  const devices = joined
    .filter((d) => d.device_id !== null)
    .map((d) => ({
      id: d.device_id as string,
      state: d.device_state as string,
      fingerprint_hash: d.fp as Buffer,
    }));
  const mine = devices.find((d) => d.fingerprint_hash.equals(fpHash));
  if (mine?.state === 'active') {
    await send(conn, 'COMMIT');
    return { outcome: 'reactivated' as const, deviceId: mine.id, row };
  }
  const active = devices.filter((d) => d.state === 'active');
  if (active.length >= row.device_limit) {
    throw new RequestError(
      'ACTIVATION_SEAT_LIMIT',
      `every one of the ${row.device_limit} device seats of licence ${row.id} is taken (${active.map((d) => d.id).join(', ')}); free one first`,
      { ispId: row.isp_id },
    );
  }
  const deviceId = mine?.id ?? newId('dev');
  const device = mine
    ? {
        sql: "UPDATE devices SET state = 'active', activated_at = ?, last_seen_at = ?, removed_at = NULL WHERE id = ?",
        values: [now, now, deviceId],
      }
    : {
        sql: "INSERT INTO devices (id, licence_id, fingerprint_hash, state, activated_at, last_seen_at) VALUES (?, ?, ?, 'active', ?, ?)",
        values: [deviceId, row.id, fpHash, now, now],
      };
  const base = { ispId: row.isp_id, subscriberId: row.subscriber_id, licenceId: row.id };
  const events: LedgerEvent[] = [
    { ...base, type: 'device-added', data: { deviceId }, occurredAt: now },
  ];
  if (first) {
    events.unshift({
      ...base,
      type: 'activated',
      data: { deviceId },
      idempotencyKey: `activated:${row.id}`,
      occurredAt: now,
    });
  }
  const ledger = eventsStatement(events, now);
  await send(conn, `${device.sql}; ${ledger.sql}; COMMIT`, [...device.values, ...ledger.values]);
  return { outcome: first ? ('activated' as const) : ('device-added' as const), deviceId, row };
}

/**
 * Activates a key on a device. Throws InvalidKeyError (unknown or mistyped, same answer),
 * ACTIVATION_SUSPENDED, ACTIVATION_CANCELLED or ACTIVATION_SEAT_LIMIT.
 */
export function activate(
  deps: LicensingDeps,
  request: { key: string; fingerprint: string },
): Promise<Activation> {
  return withDatabase('activation', () => activateKey(deps, request));
}

async function activateKey(
  deps: LicensingDeps,
  request: { key: string; fingerprint: string },
): Promise<Activation> {
  const reading = readKey(request.key);
  if (!reading.ok) throw new InvalidKeyError('mistyped');
  const keyHash = hashKey(deps.keystore.keyHashSecret, reading.canonical);
  const fpHash = fingerprintHash(deps.keystore.keyHashSecret, request.fingerprint);
  // One read finds the licence, its subscription and this device if it is already bound.
  const [found] = await rows<LicenceRow & { device_id: string | null; last_seen_at: Date | null }>(
    deps.db,
    `${LICENCE_SELECT.replace(' FROM', ', d.id AS device_id, d.last_seen_at FROM')}
      LEFT JOIN devices d ON d.licence_id = l.id AND d.fingerprint_hash = ? AND d.state = 'active'
      WHERE l.key_hash = ?`,
    [fpHash, keyHash],
  );
  // The index found it by equality already; the constant-time compare keeps the last step of
  // the check free of timing differences whatever the database does.
  if (!found || !timingSafeEqual(found.key_hash, keyHash)) throw new InvalidKeyError('unknown');
  const now = deps.now();
  assertActivatable(found, now);

  if (found.device_id !== null) {
    // Re-activations come in bursts (a reinstall, a retry): last_seen_at is refreshed once an
    // hour at most, so the fast path is one read and no commit.
    if (now.getTime() - (found.last_seen_at?.getTime() ?? 0) > SEEN_REFRESH_MS) {
      await deps.db.raw('UPDATE devices SET last_seen_at = ? WHERE id = ?', [now, found.device_id]);
    }
    return {
      outcome: 'reactivated',
      ispId: found.isp_id,
      licenceId: found.id,
      deviceId: found.device_id,
      document: documentFor(deps, found, found.device_id, now),
    };
  }
  const { outcome, deviceId, row } = await bindDevice(deps, found, fpHash, now);
  return {
    outcome,
    ispId: row.isp_id,
    licenceId: row.id,
    deviceId,
    document: documentFor(deps, row, deviceId, now),
  };
}

/**
 * The one answer for an unknown licence, an unbound device and a failed removal proof. It names
 * no id, so an answer to a malformed id reads the same as one the database looked up.
 */
export function licenceNotFound(): RequestError {
  return new RequestError('LICENCE_NOT_FOUND', 'no such licence with this device bound to it');
}

/**
 * The current document of a licence for one of its active devices: renewed, with changed
 * modules, suspended or expired, the status says which. Unknown licence and unbound device get
 * the same LICENCE_NOT_FOUND.
 */
export function checkIn(
  deps: LicensingDeps,
  licenceId: string,
  fingerprint: string,
): Promise<{ deviceId: string; document: SignedDocument }> {
  return withDatabase('check-in', () => checkInDevice(deps, licenceId, fingerprint));
}

async function checkInDevice(
  deps: LicensingDeps,
  licenceId: string,
  fingerprint: string,
): Promise<{ deviceId: string; document: SignedDocument }> {
  const fpHash = fingerprintHash(deps.keystore.keyHashSecret, fingerprint);
  const [row] = await rows<LicenceRow & { device_id: string }>(
    deps.db,
    `${LICENCE_SELECT.replace(' FROM', ', d.id AS device_id FROM')}
      JOIN devices d ON d.licence_id = l.id AND d.fingerprint_hash = ? AND d.state = 'active'
      WHERE l.id = ?`,
    [fpHash, licenceId],
  );
  if (!row) throw licenceNotFound();
  const now = deps.now();
  await deps.db.raw('UPDATE devices SET last_seen_at = ? WHERE id = ?', [now, row.device_id]);
  return { deviceId: row.device_id, document: documentFor(deps, row, row.device_id, now) };
}

/** Who asks to free a device: one of the licence's active devices, or the key's holder. */
export type RemovalProof = { fingerprint: string } | { key: string };

/**
 * Frees a device seat of a licence, unless the licence already freed its `transfersPerMonth`
 * devices this calendar month in the ISP's time zone. The month's count comes from the
 * ledger's `device-removed` events, so re-binding and freeing the same device again counts
 * twice, and cycling cannot mint seats.
 *
 * The proof is judged before anything about the device: a failed proof answers
 * LICENCE_NOT_FOUND whatever the device id (unknown, removed or not even an id), so only the
 * key's holder learns that a device id is wrong.
 */
export function removeDevice(
  deps: LicensingDeps,
  licenceId: string,
  deviceId: string,
  proof: RemovalProof,
): Promise<void> {
  return withDatabase('device removal', () => freeDevice(deps, licenceId, deviceId, proof));
}

async function freeDevice(
  deps: LicensingDeps,
  licenceId: string,
  deviceId: string,
  proof: RemovalProof,
): Promise<void> {
  const secret = deps.keystore.keyHashSecret;
  await transaction(deps.db, async (trx) => {
    const [row] = await rows<LicenceRow>(trx, `${LICENCE_SELECT} WHERE l.id = ? FOR UPDATE`, [
      licenceId,
    ]);
    if (!row) throw licenceNotFound();
    const devices = await rows<DeviceRow & { fingerprint_hash: Buffer }>(
      trx,
      "SELECT id, state, fingerprint_hash FROM devices WHERE licence_id = ? AND state = 'active'",
      [row.id],
    );
    if ('fingerprint' in proof) {
      const fpHash = fingerprintHash(secret, proof.fingerprint);
      if (!devices.some((d) => timingSafeEqual(d.fingerprint_hash, fpHash)))
        throw licenceNotFound();
    } else {
      const reading = readKey(proof.key);
      const keyHash = reading.ok ? hashKey(secret, reading.canonical) : Buffer.alloc(32);
      if (!timingSafeEqual(keyHash, row.key_hash)) throw licenceNotFound();
    }
    const target = devices.find((d) => d.id === deviceId);
    if (!target) {
      throw new RequestError(
        'DEVICE_NOT_FOUND',
        `no active device with this id on licence ${licenceId}`,
      );
    }
    const isp = servedIsp(deps, row.isp_id);
    const now = deps.now();
    const month = periodBounds(periodOf(now, isp.timeZone), isp.timeZone);
    const [counted] = await rows<{ n: number | string }>(
      trx,
      `SELECT COUNT(*) AS n FROM subscription_events WHERE subscriber_id = ? AND licence_id = ?
        AND type = 'device-removed' AND occurred_at >= ? AND occurred_at < ?`,
      [row.subscriber_id, row.id, month.start, month.end],
    );
    const cap = isp.licensing.transfersPerMonth;
    if (Number(counted?.n ?? 0) >= cap) {
      throw new RequestError(
        'DEVICE_TRANSFER_LIMIT',
        `licence ${licenceId} already freed ${cap} devices this month; the next can be freed from ${month.end.toISOString()}`,
      );
    }
    await trx.raw("UPDATE devices SET state = 'removed', removed_at = ? WHERE id = ?", [
      now,
      deviceId,
    ]);
    await appendEvents(
      trx,
      [
        {
          ispId: row.isp_id,
          subscriberId: row.subscriber_id,
          licenceId: row.id,
          type: 'device-removed',
          data: { deviceId },
          occurredAt: now,
        },
      ],
      now,
    );
  });
}
