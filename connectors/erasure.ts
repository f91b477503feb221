/**
 * The connector's half of an ISP's erasure request. The ISP names its customer by ref, which
 * only the connector knows; the server knows the subscriber id only. So the connector finds the
 * id, asks the server to erase it (`DELETE /v1/subscribers/:id`, a signed receipt back), then
 * erases what it holds itself: the sealed address, the sealed keys and links of deliveries
 * (pending ones fail with `erased`), and the subscriber's row in the map, which moves to
 * `erased_subscribers` (see that migration for why the ref-to-id pair is kept).
 *
 * The server goes first: if the connector's commit is lost (a crash), running the erasure again
 * finds the row still in the map, gets the server's stored receipt and finishes. The whole
 * erasure holds the ISP's intake lock, so no feed applies a change to the subscriber while it
 * is half erased.
 */
import type { RelaisConfig } from '../config/load.js';
import { findSubscribers, lastErasedIdOf, moveToErased } from '../mappings/subscriber-store.js';
import type { Db } from '../platform/db.js';
import { ConfigError, isRelaisError, RequestError, TransientError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import { BUSY, withNamedLock } from '../platform/named-lock.js';

/** What the server's receipt claims (licensing/erasure.ts `ErasureClaims`), as far as used here. */
export interface ServerErasureClaims {
  receiptId: string;
  erasedAt: string;
  revokedLicences: string[];
  deleted: { devices: number; downloads: number; ledgerEvents: number };
}

/** The server's erasure endpoint; `queue/licensing-client.ts` is the real one. */
export interface ErasureServer {
  eraseSubscriber(
    ispId: string,
    subscriberId: string,
  ): Promise<{ receipt: unknown; erasure: ServerErasureClaims; repeated: boolean }>;
}

export interface CustomerErasureDeps {
  config: RelaisConfig;
  /** The connector database. */
  db: Db;
  server: ErasureServer;
  log: Logger;
  now?: () => Date;
  /** Seconds to wait for a feed being applied to finish. Default 30. */
  lockWaitS?: number;
}

export interface CustomerErasure {
  ispId: string;
  subscriberId: string;
  /** The server's signed receipt; null when the server never knew the subscriber. */
  receipt: unknown;
  server: ServerErasureClaims | null;
  /** The customer was erased before this call; its receipt is the one stored then. */
  repeated: boolean;
  /**
   * The connector still had the customer active or suspended: unless the ISP drops the ref
   * from its feeds, its next snapshot subscribes the ref again, as a new customer.
   */
  wasLive: boolean;
  connector: {
    contacts: number;
    /** Pending deliveries turned `failed` (`last_error` 'erased'). */
    deliveriesVoided: number;
    /** Sealed keys and links deleted, pending or kept after a failure. */
    secretsErased: number;
  };
}

/** Whether a command of the subscriber waits in the outbox, unsent. */
async function hasUnsentCommands(db: Db, ispId: string, subscriberId: string): Promise<boolean> {
  // Ids are stored as JSON strings in the encoded batch (mappings/provisioning-command.ts).
  const row = await db('provisioning_batches')
    .select('id')
    .where({ isp_id: ispId })
    .whereIn('state', ['pending', 'queued'])
    .whereRaw('INSTR(commands, ?) > 0', [JSON.stringify(subscriberId)])
    .first();
  return row !== undefined;
}

function deferred(message: string, ispId: string): TransientError {
  return new TransientError('ERASURE_DEFERRED', message, { ispId });
}

/**
 * Erases the customer `customerRef` of `ispId` on both sides. Running it again is safe and
 * returns the same receipt.
 *
 * @throws RequestError SUBSCRIBER_NOT_FOUND when the ISP never had a customer with this ref.
 * @throws TransientError ERASURE_DEFERRED when a feed is being applied, or the subscriber's
 *   first commands have not reached the server yet (nothing was erased).
 */
export async function eraseCustomer(
  deps: CustomerErasureDeps,
  ispId: string,
  customerRef: string,
): Promise<CustomerErasure> {
  if (!deps.config.isps.has(ispId)) {
    throw new ConfigError('ISP_UNKNOWN', `no ISP ${ispId} in this deployment`);
  }
  const result = await withNamedLock(
    deps.db,
    `isp:${ispId}`,
    () => eraseLocked(deps, ispId, customerRef),
    deps.lockWaitS ?? 30,
  );
  if (result === BUSY) {
    throw deferred(`the intake of ISP ${ispId} is applying a feed; erase again later`, ispId);
  }
  return result;
}

async function eraseLocked(
  deps: CustomerErasureDeps,
  ispId: string,
  customerRef: string,
): Promise<CustomerErasure> {
  const { db } = deps;
  const [stored] = await findSubscribers(db, ispId, [customerRef]);
  // The message never repeats the ref: it is the ISP's identifier of a person.
  const subscriberId = stored?.subscriberId ?? (await lastErasedIdOf(db, ispId, customerRef));
  if (subscriberId === undefined) {
    throw new RequestError('SUBSCRIBER_NOT_FOUND', `ISP ${ispId} has no customer with this ref`);
  }

  let answer: Awaited<ReturnType<ErasureServer['eraseSubscriber']>> | null;
  try {
    answer = await deps.server.eraseSubscriber(ispId, subscriberId);
  } catch (err) {
    if (!isRelaisError(err) || err.code !== 'SUBSCRIBER_NOT_FOUND') throw err;
    // The server never applied a subscribe of this id. If one waits in the outbox it would
    // create the subscription after the erasure: better to erase once it is there.
    if (await hasUnsentCommands(db, ispId, subscriberId)) {
      throw deferred(
        `subscriber ${subscriberId} has commands waiting for the subscription server; erase again once they are sent`,
        ispId,
      );
    }
    answer = null;
  }

  const erasedAt = deps.now?.() ?? new Date();
  const connector = await db.transaction(async (trx) => {
    const contacts = await trx('contacts').where({ subscriber_id: subscriberId }).delete();
    const deliveriesVoided = await trx('deliveries')
      .where({ subscriber_id: subscriberId, state: 'pending' })
      .update({ state: 'failed', last_error: 'erased', secret: null });
    const secretsErased =
      deliveriesVoided +
      (await trx('deliveries')
        .where({ subscriber_id: subscriberId })
        .whereNotNull('secret')
        .update({ secret: null }));
    if (stored) {
      await moveToErased(trx, {
        ispId,
        customerRef,
        subscriberId,
        receiptId: answer?.erasure.receiptId ?? null,
        erasedAt,
      });
    }
    return { contacts, deliveriesVoided, secretsErased };
  });

  const erasure: CustomerErasure = {
    ispId,
    subscriberId,
    receipt: answer?.receipt ?? null,
    server: answer?.erasure ?? null,
    repeated: stored === undefined,
    wasLive: stored !== undefined && stored.status !== 'cancelled',
    connector,
  };
  deps.log.info(
    {
      isp: ispId,
      subscriberId,
      receiptId: erasure.server?.receiptId ?? null,
      repeated: erasure.repeated,
      ...connector,
    },
    'customer erased',
  );
  return erasure;
}
