/**
 * Receiving a feed, whatever the transport: bytes are staged and hashed, kept under their
 * content address, then recorded in the ledger. Only then may anything parse them. A zero-byte
 * file is recorded too, as failed, so the ISP's mistake is visible rather than silently skipped.
 */
import { rmSync } from 'node:fs';
import { crashPoint } from '../../platform/crash-points.js';
import type { Logger } from '../../platform/logger.js';
import type { Feed, FeedLedger, FeedSource } from '../feed-ledger.js';
import type { FeedFiles, HashedFile } from './feed-files.js';
import type { IntakeMetrics } from './intake-metrics.js';

export interface ReceiveRequest {
  ispId: string;
  source: FeedSource;
  name: string;
  sourceMtimeMs?: number;
  /** Writes the bytes to the staging path given, returning their size and hash. */
  fill(stagingPath: string): Promise<HashedFile>;
}

export interface Received {
  feed: Feed;
  /** Set when the content was already received: the new feed is a duplicate of this one. */
  original?: Feed;
}

export async function receiveFeed(
  deps: { ledger: FeedLedger; files: FeedFiles; log: Logger; metrics?: IntakeMetrics },
  request: ReceiveRequest,
): Promise<Received> {
  const staging = deps.files.stagingPath(request.ispId);
  let hashed: HashedFile;
  try {
    hashed = await request.fill(staging);
  } catch (err) {
    rmSync(staging, { force: true });
    throw err;
  }
  deps.files.keep(request.ispId, staging, hashed.sha256);
  const received = await deps.ledger.record({
    ispId: request.ispId,
    source: request.source,
    name: request.name,
    sizeBytes: hashed.sizeBytes,
    sha256: hashed.sha256,
    sourceMtimeMs: request.sourceMtimeMs,
  });
  crashPoint('feed-received');
  const log = deps.log.child({ isp: request.ispId, feedId: received.feed.id });
  if (received.original) {
    log.info(
      { duplicateOf: received.original.id, source: request.source },
      'feed received again: duplicate',
    );
    return received;
  }
  log.info({ source: request.source, sizeBytes: hashed.sizeBytes }, 'feed received');
  if (hashed.sizeBytes === 0) {
    const message = `${request.name} is empty (0 bytes)`;
    await deps.ledger.markFailed(received.feed.id, { code: 'FEED_ZERO_BYTES', message });
    log.warn({ code: 'FEED_ZERO_BYTES' }, 'feed refused');
    deps.metrics?.feedFinished(request.ispId, 'failed', 'FEED_ZERO_BYTES');
    return {
      feed: {
        ...received.feed,
        status: 'failed',
        errorCode: 'FEED_ZERO_BYTES',
        errorMessage: message,
      },
    };
  }
  return received;
}
