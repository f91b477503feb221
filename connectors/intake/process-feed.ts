/**
 * Processing one received feed, start to finish:
 *
 * 1. read: the whole file through its format and mapping (read-feed.ts);
 * 2. diff: merge with the stored state, counting what would happen (diff-feed.ts); steps 1
 *    and 2 run in one pass when the file is in customer-ref order (read-and-diff.ts);
 * 3. decide: refuse the file (too many rejects), hold it (a snapshot cancelling too many), or
 * 4. apply: write changes in transactions of whole provisioning batches, each with its
 *    provisioning-outbox rows, two in parallel (they touch disjoint subscribers).
 *
 * Interrupted anywhere, the same call on the same feed finishes the job: steps 1-3 write
 * nothing, and step 4 skips subscribers already stamped with this feed, so the rerun applies
 * exactly what is left. Totals are summed from the committed batches, which makes them exact
 * across interruptions too.
 */
import { rmSync } from 'node:fs';
import type { IspConfig } from '../../config/load.js';
import { offersNotSent } from '../../mappings/provisioning-command.js';
import { commandTotals } from '../../mappings/subscriber-store.js';
import { crashPoint } from '../../platform/crash-points.js';
import type { Db } from '../../platform/db.js';
import { InternalError, IspDataError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { DiffCounts, Feed, FeedCounts, FeedLedger } from '../feed-ledger.js';
import type { Vault } from '../vault.js';
import { applyChangeList } from './change-applier.js';
import { type DiffSummary, emptyDiffCounts } from './diff-feed.js';
import type { FeedFiles } from './feed-files.js';
import type { IntakeMetrics } from './intake-metrics.js';
import { applyOptions, type ReadAndDiff, readAndDiff } from './read-and-diff.js';
import type { ReadProgress } from './read-feed.js';
import { writeRejectsFile } from './rejects-file.js';

export interface ProcessDeps {
  db: Db;
  log: Logger;
  ledger: FeedLedger;
  files: FeedFiles;
  metrics?: IntakeMetrics;
  /** Changes per provisioning batch (one outbox row, one job); default 500. */
  batchSize?: number;
  /** Changes per apply transaction, rounded down to whole batches; default 2,000. */
  transactionSize?: number;
  /** Apply transactions in flight at once; default 2. */
  applyConcurrency?: number;
  /** Seals the addresses of ISPs that deliver keys by e-mail (required for those). */
  vault?: Vault;
}

export interface ProcessOptions {
  /** An operator approved this held snapshot: skip the safety valve. */
  approved?: boolean;
  onProgress?: (progress: ReadProgress & { phase: 'read' | 'diff' | 'apply' }) => void;
}

export interface ProcessOutcome {
  status: 'applied' | 'held' | 'failed';
  counts: FeedCounts;
  errorCode?: string;
  message?: string;
  rejectsFile?: string;
}

function refusal(code: string, message: string): { code: string; message: string } {
  return { code, message };
}

/**
 * Runs steps 1-4 for one feed and records the outcome in the ledger. File-level ISP data
 * problems end as a failed feed (returned, not thrown); anything else (a database going away)
 * is thrown with the feed left in `parsing`, to be resumed by the next run.
 */
export async function processFeed(
  deps: ProcessDeps,
  isp: IspConfig,
  feed: Feed,
  options: ProcessOptions = {},
): Promise<ProcessOutcome> {
  const log = deps.log.child({ isp: isp.id, feedId: feed.id });
  const scratchDir = deps.files.scratchDir(isp.id, feed.id);
  rmSync(scratchDir, { recursive: true, force: true });
  await deps.ledger.markParsing(feed.id);
  const started = Date.now();
  log.info(
    { name: feed.name, sizeBytes: feed.sizeBytes, mode: isp.intake.mode },
    'feed processing started',
  );
  const unsent = offersNotSent(Object.keys(isp.offers));
  if (unsent.length > 0) {
    log.warn(
      { offers: unsent },
      'offer codes outside the provisioning protocol: their commands go without an offer',
    );
  }

  let read: ReadAndDiff | undefined;
  try {
    read = await readAndDiff(deps, isp, feed, scratchDir, options);
    const { diff } = read;
    const rejected = read.rejected + diff.extraRejects;
    const counts: FeedCounts = {
      ...emptyDiffCounts(),
      records: read.records,
      applied: read.accepted - diff.extraRejects,
      rejected,
      batches: 0,
    };
    const rejectsFile =
      rejected > 0 ? await writeRejectsFile(deps, isp.id, feed, read.rejects) : undefined;
    const decision = decide(isp, counts, diff, options);
    if (read.changeList === undefined && decision.kind !== 'apply') {
      // The diff applied as it went because only "apply" looked possible: a contradiction here
      // is a bug, and the feed must not be marked refused or held with its changes committed.
      throw new InternalError(
        'INTERNAL',
        `feed ${feed.id} was applied while diffing but decided ${decision.kind}`,
      );
    }
    if (decision.kind === 'refuse') {
      decision.message = `${feed.name}: ${decision.message}`;
      await deps.ledger.markFailed(feed.id, { ...decision, counts });
      log.warn({ code: decision.code, rejected, records: read.records }, 'feed refused');
      deps.metrics?.feedFinished(isp.id, 'failed', decision.code);
      return {
        status: 'failed',
        counts,
        errorCode: decision.code,
        message: decision.message,
        rejectsFile,
      };
    }
    if (decision.kind === 'hold') {
      const held = { ...counts, ...pickDiff(diff) };
      await deps.ledger.markHeld(feed.id, held, decision.message);
      log.error(
        { cancels: diff.cancels, activeBefore: diff.activeBefore },
        'snapshot held for approval',
      );
      deps.metrics?.feedFinished(isp.id, 'held');
      return { status: 'held', counts: held, message: decision.message, rejectsFile };
    }

    if (read.changeList) {
      options.onProgress?.({
        phase: 'apply',
        records: diff.changeCount,
        bytesRead: 0,
        totalBytes: 0,
      });
      await applyChangeList(deps.db, read.changeList, applyOptions(deps, isp).concurrency);
    }
    const totals = await commandTotals(deps.db, feed.id);
    const applied = { ...counts, ...totals };
    if (isp.intake.mode === 'snapshot') await deps.ledger.supersedeHeld(isp.id, feed);
    await deps.ledger.markApplied(feed.id, applied);
    crashPoint('feed-applied');
    deps.metrics?.feedApplied(isp.id, applied);
    const durationMs = Date.now() - started;
    const phasesMs = {
      read: read.readMs,
      diff: read.diffMs,
      apply: durationMs - read.readMs - read.diffMs,
    };
    log.info({ ...applied, durationMs, phasesMs, way: read.way }, 'feed applied');
    return { status: 'applied', counts: applied, rejectsFile };
  } catch (err) {
    if (!(err instanceof IspDataError)) throw err;
    await deps.ledger.markFailed(feed.id, refusal(err.code, err.message));
    log.warn({ code: err.code, context: err.context }, 'feed refused');
    deps.metrics?.feedFinished(isp.id, 'failed', err.code);
    return { status: 'failed', counts: zeroCounts(), errorCode: err.code, message: err.message };
  } finally {
    read?.rejects.dispose();
    rmSync(scratchDir, { recursive: true, force: true });
  }
}

function pickDiff(diff: DiffSummary): DiffCounts {
  const { subscribes, changes, suspends, resumes, cancels } = diff;
  return { subscribes, changes, suspends, resumes, cancels };
}

function zeroCounts(): FeedCounts {
  return { ...emptyDiffCounts(), records: 0, applied: 0, rejected: 0, batches: 0 };
}

type Decision =
  | { kind: 'apply' }
  | { kind: 'refuse'; code: string; message: string }
  | { kind: 'hold'; message: string };

/** Step 3: whether the diff may be applied. */
export function decide(
  isp: IspConfig,
  counts: FeedCounts,
  diff: DiffSummary,
  options: ProcessOptions,
): Decision {
  const limit = isp.intake.rejects.refuseFileAbove;
  if (limit !== undefined && counts.records > 0 && counts.rejected / counts.records > limit) {
    const share = ((counts.rejected / counts.records) * 100).toFixed(1);
    return {
      kind: 'refuse',
      code: 'FEED_TOO_MANY_REJECTS',
      message: `${counts.rejected} of ${counts.records} records rejected (${share} %), above the ${limit * 100} % this ISP allows`,
    };
  }
  if (isp.intake.mode !== 'snapshot' || options.approved) return { kind: 'apply' };
  const { maxCancelShare } = isp.intake.safety;
  if (diff.cancels > 0 && diff.cancels > maxCancelShare * diff.activeBefore) {
    const share =
      diff.activeBefore > 0 ? ((diff.cancels / diff.activeBefore) * 100).toFixed(1) : '100';
    return {
      kind: 'hold',
      message: `would cancel ${diff.cancels} of ${diff.activeBefore} active subscribers (${share} %), above the ${maxCancelShare * 100} % safety limit: approve or reject it`,
    };
  }
  return { kind: 'apply' };
}
