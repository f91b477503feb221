/**
 * One poll of an ISP's inbox (local folder or SFTP): pick up the files that are complete,
 * receive each into the ledger, process what is waiting, then settle each source file by its
 * outcome: moved to processed/ (or deleted, or left) when applied, held or a duplicate; moved to
 * failed/ with a `.error.txt` saying why when refused. A poll holds the ISP's poll lock, so
 * several Relais processes polling one ISP never download one file twice; the ledger's content
 * key is the final guard.
 */

import { Readable } from 'node:stream';
import type { IspConfig } from '../../config/load.js';
import type { Logger } from '../../platform/logger.js';
import { type BUSY, withNamedLock } from '../../platform/named-lock.js';
import type { Feed } from '../feed-ledger.js';
import { openPolledTransport } from '../transports/open.js';
import { selectReadyFiles, settleFile } from '../transports/pickup.js';
import type { InboxFile, PolledTransport } from '../transports/transport.js';
import { writeHashed } from './feed-files.js';
import type { IntakeDeps, IntakeService } from './intake-service.js';
import { receiveFeed } from './receive.js';

export interface PollResult {
  received: { name: string; feedId: string; status: string }[];
  skipped: { name: string; reason: string }[];
}

async function settle(
  transport: PolledTransport,
  isp: IspConfig,
  file: InboxFile,
  feed: Feed,
  log: Logger,
): Promise<string> {
  const { pickup } = isp.intake;
  if (feed.status === 'received' || feed.status === 'parsing') return feed.status; // another process is on it
  const ok = feed.status !== 'failed';
  const reason = `${feed.errorCode ?? 'FEED_FAILED'}: ${feed.errorMessage ?? 'refused'}`;
  await settleFile(transport, pickup, file, ok ? { ok: true } : { ok: false, reason });
  log.info(
    { name: file.name, feedId: feed.id, status: feed.status },
    ok ? 'source file settled' : 'source file refused',
  );
  return feed.status;
}

export async function pollIsp(
  deps: IntakeDeps,
  intake: IntakeService,
  isp: IspConfig,
): Promise<PollResult | typeof BUSY> {
  const log = deps.log.child({ isp: isp.id });
  const transportOptions = isp.intake.transport;
  if (transportOptions.type === 'http') return { received: [], skipped: [] };
  return withNamedLock(deps.db, `poll:${isp.id}`, async () => {
    const transport = await openPolledTransport(transportOptions, log);
    try {
      const { ready, skipped } = await selectReadyFiles(transport, isp.intake.pickup, {
        isKnown: (f) => deps.ledger.isKnown(isp.id, f.name, f.sizeBytes, f.mtimeMs),
      });
      const picked: { file: InboxFile; feedId: string; originalId?: string }[] = [];
      for (const skip of skipped.filter((s) => s.reason === 'zero bytes')) {
        const file = {
          name: skip.name,
          sizeBytes: 0,
          mtimeMs: (await transport.stat(skip.name))?.mtimeMs ?? Date.now(),
        };
        const received = await receiveFeed(deps, {
          ispId: isp.id,
          source: transportOptions.type,
          name: file.name,
          sourceMtimeMs: file.mtimeMs,
          fill: (path) => writeHashed(Readable.from([]), path),
        });
        picked.push({ file, feedId: received.feed.id });
      }
      for (const file of ready) {
        const received = await receiveFeed(deps, {
          ispId: isp.id,
          source: transportOptions.type,
          name: file.name,
          sourceMtimeMs: file.mtimeMs,
          fill: (path) => transport.download(file.name, path),
        });
        deps.metrics?.feedReceived(isp.id, transportOptions.type, received.original !== undefined);
        picked.push({ file, feedId: received.feed.id, originalId: received.original?.id });
      }
      await intake.drain(isp);

      const result: PollResult = {
        received: [],
        skipped: skipped.filter((s) => s.reason !== 'zero bytes'),
      };
      for (const { file, feedId, originalId } of picked) {
        const feed = (await deps.ledger.get(originalId ?? feedId)) as Feed;
        const status = await settle(transport, isp, file, feed, log);
        result.received.push({
          name: file.name,
          feedId,
          status: originalId ? 'duplicate' : status,
        });
      }
      return result;
    } finally {
      await transport.close();
    }
  });
}
