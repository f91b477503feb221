/**
 * Steps 1 and 2 of processing a feed: read the file and diff it with the stored state, taking
 * the cheapest way the file allows.
 *
 * - One pass: most exports list customers in customer-number order. The file is then read and
 *   diffed at once, with no sort, into a change list; nothing is applied yet.
 * - Sorted: at the first customer out of order the pass is abandoned (its change list and
 *   rejects thrown away) and the file is read again into an external sort, then diffed. When
 *   no decision but "apply" is possible (see `canOnlyApply`), that diff writes to the database
 *   as it goes, keeping Node and the database busy at once.
 *
 * Either way the whole file is read before anything is applied: a file-level problem found on
 * its last line (a trailer count, a quote that never closes) still leaves nothing applied.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { IspConfig } from '../../config/load.js';
import type { MappingReject } from '../../mappings/customer-record.js';
import { hasLiveSubscribers } from '../../mappings/subscriber-store.js';
import { crashPoint } from '../../platform/crash-points.js';
import type { Db } from '../../platform/db.js';
import type { ExternalSorter } from '../../platform/external-sort.js';
import type { Feed } from '../feed-ledger.js';
import { type ApplyOptions, ChangeApplier, ChangeListWriter } from './change-applier.js';
import { emailSealer, keepsContacts } from './contacts.js';
import { type DiffSummary, diffFeed } from './diff-feed.js';
import type { ProcessDeps, ProcessOptions } from './process-feed.js';
import {
  NotInRefOrderError,
  type ReadCounts,
  readFeed,
  readItems,
  rejectSorter,
} from './read-feed.js';

export const DEFAULT_BATCH_SIZE = 500;
/** Fewer, larger commits: measured 65k rows/s at 2,000 rows a commit, 49k at 500. */
export const DEFAULT_TRANSACTION_SIZE = 2_000;
/** Two transactions in flight: the database needs the machine's second core. */
export const DEFAULT_CONCURRENCY = 2;

export interface ReadAndDiff extends ReadCounts {
  rejected: number;
  /** Every reject of the read and the diff, sorted by line on reading. */
  rejects: ExternalSorter<MappingReject>;
  diff: DiffSummary;
  /** The change list to apply after the decision; absent when it was applied while diffing. */
  changeList?: string;
  way: 'one pass' | 'sorted' | 'sorted, applied while diffing';
  readMs: number;
  diffMs: number;
}

/**
 * Whether the decision can only be "apply", so the diff may write to the database as it goes:
 * no reject threshold could refuse the file, and no stored subscriber could be cancelled by
 * absence (a delta, or a snapshot for an ISP with nobody live yet, or an approved snapshot).
 */
async function canOnlyApply(db: Db, isp: IspConfig, options: ProcessOptions): Promise<boolean> {
  if (isp.intake.rejects.refuseFileAbove !== undefined) return false;
  if (isp.intake.mode !== 'snapshot' || options.approved) return true;
  return !(await hasLiveSubscribers(db, isp.id));
}

export function applyOptions(deps: ProcessDeps, isp: IspConfig): ApplyOptions {
  return {
    batchSize: deps.batchSize ?? DEFAULT_BATCH_SIZE,
    transactionSize: deps.transactionSize ?? DEFAULT_TRANSACTION_SIZE,
    concurrency: deps.applyConcurrency ?? DEFAULT_CONCURRENCY,
    sealEmail: emailSealer(deps.vault, isp),
  };
}

/** Reads and diffs in one pass; undefined when the file is not in customer-ref order. */
async function onePass(
  deps: ProcessDeps,
  isp: IspConfig,
  feed: Feed,
  scratchDir: string,
  options: ProcessOptions,
): Promise<ReadAndDiff | undefined> {
  const started = Date.now();
  mkdirSync(join(scratchDir, 'one-pass'), { recursive: true });
  const rejects = rejectSorter(join(scratchDir, 'one-pass'));
  const counts: ReadCounts = { records: 0, accepted: 0 };
  const changeList = join(scratchDir, 'one-pass', 'changes.ndjson');
  const writer = new ChangeListWriter(changeList, isp.id, feed.id, applyOptions(deps, isp));
  const items = readItems(
    deps.files.pathOf(isp.id, feed.sha256),
    isp,
    {
      scratchDir,
      fileName: feed.name,
      requireRefOrder: true,
      onProgress: (p) => options.onProgress?.({ ...p, phase: 'read' }),
    },
    rejects,
    counts,
  );
  let diff: DiffSummary;
  try {
    diff = await diffFeed(deps.db, isp, feed, items, writer, (r) => rejects.push(r));
  } catch (err) {
    await writer.abandon();
    rejects.dispose();
    rmSync(join(scratchDir, 'one-pass'), { recursive: true, force: true });
    if (err instanceof NotInRefOrderError) {
      deps.log.debug({ feedId: feed.id, line: err.line }, 'feed not in ref order, sorting it');
      return undefined;
    }
    throw err;
  }
  try {
    await writer.close();
  } catch (err) {
    rejects.dispose();
    throw err;
  }
  crashPoint('feed-read');
  const readMs = Date.now() - started;
  const rejected = counts.records - counts.accepted;
  return { ...counts, rejected, rejects, diff, changeList, way: 'one pass', readMs, diffMs: 0 };
}

/** Reads the file into an external sort, then diffs it (applying as it goes when it may). */
async function sorted(
  deps: ProcessDeps,
  isp: IspConfig,
  feed: Feed,
  scratchDir: string,
  options: ProcessOptions,
): Promise<ReadAndDiff> {
  const started = Date.now();
  const read = await readFeed(deps.files.pathOf(isp.id, feed.sha256), isp, {
    scratchDir,
    fileName: feed.name,
    onProgress: (p) => options.onProgress?.({ ...p, phase: 'read' }),
    keepEmails: keepsContacts(isp),
  });
  crashPoint('feed-read');
  const readMs = Date.now() - started;
  const onReject = (r: MappingReject) => read.rejects.push(r);
  const { records, accepted, rejected, rejects } = read;
  const items = read.items.sorted();
  try {
    let diff: DiffSummary;
    let changeList: string | undefined;
    if (await canOnlyApply(deps.db, isp, options)) {
      options.onProgress?.({ phase: 'apply', records: accepted, bytesRead: 0, totalBytes: 0 });
      const applier = new ChangeApplier(deps.db, isp.id, feed.id, applyOptions(deps, isp));
      try {
        diff = await diffFeed(deps.db, isp, feed, items, applier, onReject);
      } catch (err) {
        await applier.abort();
        throw err;
      }
      await applier.close();
    } else {
      changeList = join(scratchDir, 'changes.ndjson');
      const writer = new ChangeListWriter(changeList, isp.id, feed.id, applyOptions(deps, isp));
      try {
        diff = await diffFeed(deps.db, isp, feed, items, writer, onReject);
      } catch (err) {
        await writer.abandon();
        throw err;
      }
      await writer.close();
    }
    const diffMs = Date.now() - started - readMs;
    const way = changeList ? 'sorted' : 'sorted, applied while diffing';
    return { records, accepted, rejected, rejects, diff, changeList, way, readMs, diffMs };
  } catch (err) {
    rejects.dispose();
    throw err;
  } finally {
    read.items.dispose();
  }
}

/** Steps 1 and 2; a file-level problem of the ISP's data is thrown as an IspDataError. */
export async function readAndDiff(
  deps: ProcessDeps,
  isp: IspConfig,
  feed: Feed,
  scratchDir: string,
  options: ProcessOptions,
): Promise<ReadAndDiff> {
  return (
    (await onePass(deps, isp, feed, scratchDir, options)) ??
    (await sorted(deps, isp, feed, scratchDir, options))
  );
}
