/**
 * One poll of an ISP's inbox (local folder or SFTP): pick up the files that are complete,
 * receive each into the ledger, process what is waiting, then settle each source file by its
 * outcome: moved to processed/ (or deleted, or left) when applied, held or a duplicate; moved to
 * failed/ with a `.error.txt` saying why when refused. A poll holds the ISP's poll lock, so
 * several Relais processes polling one ISP never download one file twice; the ledger's content
 * key is the final guard.
 *
 * A file whose feed was not finished when its poll ended (another process held the ISP and
 * processes it, or the poll failed after receiving it) stays in the inbox; a later poll finds it
 * known to the ledger and settles it once its feed is finished.
 */

import { Readable } from 'node:stream';
import type { IspConfig } from '../../config/load.js';
import { isRelaisError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { type BUSY, withNamedLock } from '../../platform/named-lock.js';
import type { Feed, FeedStatus } from '../feed-ledger.js';
import { openPolledTransport } from '../transports/open.js';
import { type SkippedFile, selectReadyFiles, settleFile } from '../transports/pickup.js';
import type { InboxFile, PolledTransport } from '../transports/transport.js';
import { writeHashed } from './feed-files.js';
import type { IntakeDeps, IntakeService } from './intake-service.js';
import { receiveFeed } from './receive.js';

export interface PollOutcome {
  name: string;
  feedId: string;
  status: string;
}

export interface PollResult {
  /** Files received by this poll, in pick-up order, with their feed's status after it. */
  received: PollOutcome[];
  skipped: { name: string; reason: string }[];
  /** Files received by an earlier poll whose feed has finished since, settled by this one. */
  settled: PollOutcome[];
}

interface Picked {
  file: InboxFile;
  feedId: string;
  originalId?: string;
}

/** Whether a feed is past processing, so its source file can be settled. */
function isSettleable(status: FeedStatus): boolean {
  return status !== 'received' && status !== 'parsing';
}

/** Settles one source file by its feed's status; a feed still in progress leaves it in place. */
async function settle(
  transport: PolledTransport,
  isp: IspConfig,
  file: InboxFile,
  feed: Feed,
  log: Logger,
): Promise<string> {
  const { pickup } = isp.intake;
  if (!isSettleable(feed.status)) return feed.status; // another process is on it
  const ok = feed.status !== 'failed';
  const reason = `${feed.errorCode ?? 'FEED_FAILED'}: ${feed.errorMessage ?? 'refused'}`;
  await settleFile(transport, pickup, file, ok ? { ok: true } : { ok: false, reason });
  log.info(
    { name: file.name, feedId: feed.id, status: feed.status },
    ok ? 'source file settled' : 'source file refused',
  );
  return feed.status;
}

/**
 * The feed a file known to the ledger was received as: the newest one not failed with this
 * name, size and mtime, or its original when it was a duplicate.
 */
async function feedOfKnownFile(
  deps: IntakeDeps,
  ispId: string,
  file: InboxFile,
): Promise<Picked | undefined> {
  const row: { id: string; duplicate_of: string | null } | undefined = await deps
    .db('feeds')
    .where({ isp_id: ispId, name: file.name, size_bytes: file.sizeBytes })
    .where({ source_mtime_ms: file.mtimeMs })
    .whereNot({ status: 'failed' })
    .orderBy([
      { column: 'received_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .first('id', 'duplicate_of');
  if (!row) return undefined;
  return { file, feedId: row.id, originalId: row.duplicate_of ?? undefined };
}

export async function pollIsp(
  deps: IntakeDeps,
  intake: IntakeService,
  isp: IspConfig,
): Promise<PollResult | typeof BUSY> {
  const log = deps.log.child({ isp: isp.id });
  const transportOptions = isp.intake.transport;
  if (transportOptions.type === 'http') return { received: [], skipped: [], settled: [] };
  return withNamedLock(deps.db, `poll:${isp.id}`, async () => {
    const transport = await openPolledTransport(transportOptions, log).catch((err: unknown) => {
      if (isRelaisError(err)) deps.metrics?.deliveryRefused(isp.id, err.code);
      throw err;
    });
    try {
      const { ready, skipped } = await selectReadyFiles(transport, isp.intake.pickup, {
        isKnown: (f) => deps.ledger.isKnown(isp.id, f.name, f.sizeBytes, f.mtimeMs),
      });
      const source = transportOptions.type;
      const received = await receiveAll(deps, intake, isp, source, transport, ready, skipped);
      await intake.drain(isp);

      const known = await knownFilesToSettle(deps, isp, skipped);
      const result: PollResult = {
        received: [],
        skipped: skipped
          .filter((s) => s.reason !== 'zero bytes' && !known.some((k) => k.file.name === s.name))
          .map(({ name, reason }) => ({ name, reason })),
        settled: [],
      };
      for (const { file, feedId, originalId } of received) {
        const feed = (await deps.ledger.get(originalId ?? feedId)) as Feed;
        const status = await settle(transport, isp, file, feed, log);
        result.received.push({
          name: file.name,
          feedId,
          status: originalId ? 'duplicate' : status,
        });
      }
      for (const { file, feedId, originalId } of known) {
        const feed = (await deps.ledger.get(originalId ?? feedId)) as Feed;
        const status = await settle(transport, isp, file, feed, log);
        if (isSettleable(feed.status)) {
          result.settled.push({
            name: file.name,
            feedId,
            status: originalId ? 'duplicate' : status,
          });
        } else {
          result.skipped.push({ name: file.name, reason: 'already processed' });
        }
      }
      return result;
    } finally {
      await transport.close();
    }
  });
}

/**
 * Receives the zero-byte files (recorded as failed) and the ready ones, in that order. When a
 * download fails, what was received before it is still processed before the error is rethrown;
 * its source files are settled by the next poll.
 */
async function receiveAll(
  deps: IntakeDeps,
  intake: IntakeService,
  isp: IspConfig,
  source: 'local' | 'sftp',
  transport: PolledTransport,
  ready: InboxFile[],
  skipped: SkippedFile[],
): Promise<Picked[]> {
  const picked: Picked[] = [];
  try {
    for (const file of skipped.filter((s) => s.reason === 'zero bytes')) {
      const received = await receiveFeed(deps, {
        ispId: isp.id,
        source,
        name: file.name,
        sourceMtimeMs: file.mtimeMs,
        fill: (path) => writeHashed(Readable.from([]), path),
      });
      picked.push({ file, feedId: received.feed.id });
    }
    for (const file of ready) {
      const received = await receiveFeed(deps, {
        ispId: isp.id,
        source,
        name: file.name,
        sourceMtimeMs: file.mtimeMs,
        fill: (path) => transport.download(file.name, path),
      });
      deps.metrics?.feedReceived(isp.id, source, received.original !== undefined);
      picked.push({ file, feedId: received.feed.id, originalId: received.original?.id });
    }
  } catch (err) {
    deps.log.warn(
      { err, isp: isp.id, received: picked.length, transport: transport.description },
      'poll stopped: a file could not be received',
    );
    if (isRelaisError(err)) deps.metrics?.deliveryRefused(isp.id, err.code);
    if (picked.length > 0) await intake.drain(isp);
    throw err;
  }
  return picked;
}

/** Files the ledger already knows, to settle now that their feed may have finished. */
async function knownFilesToSettle(
  deps: IntakeDeps,
  isp: IspConfig,
  skipped: SkippedFile[],
): Promise<Picked[]> {
  // Left files stay known for ever; looking them up each poll would change nothing.
  if (isp.intake.pickup.afterSuccess === 'leave') return [];
  const known: Picked[] = [];
  for (const file of skipped.filter((s) => s.reason === 'already processed')) {
    const found = await feedOfKnownFile(deps, isp.id, file);
    if (found) known.push(found);
  }
  return known;
}
