/**
 * A dry run: everything the intake would do with a file, applying nothing. Reads and maps every
 * record, compares with the stored state when the database is reachable, and reports records,
 * rejects, the diff counts and what would be decided (apply, hold, refuse). Writes no ledger
 * entry, no subscriber, no batch; its scratch files are removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { IspConfig } from '../../config/load.js';
import type { MappingReject } from '../../mappings/customer-record.js';
import type { FeedItem } from '../../mappings/feed-diff.js';
import type { Db } from '../../platform/db.js';
import { IspDataError } from '../../platform/errors.js';
import type { DiffCounts } from '../feed-ledger.js';
import { diffFeed } from './diff-feed.js';
import { decide } from './process-feed.js';
import { type ReadProgress, readFeed } from './read-feed.js';

export interface DryRunReport {
  file: string;
  records: number;
  accepted: number;
  rejected: number;
  /** Absent when the database could not be read; `diffError` says why. */
  diff?: DiffCounts & { activeBefore: number };
  diffError?: string;
  decision?: { kind: 'apply' | 'hold' | 'refuse'; message?: string };
  /** Set when the whole file would be refused before any diff (bad trailer, DOCTYPE...). */
  fileError?: { code: string; message: string };
}

export interface DryRunHooks {
  onRecord?: (item: FeedItem) => void;
  onReject?: (reject: MappingReject) => void;
  onProgress?: (progress: ReadProgress) => void;
}

export async function dryRunFeed(
  db: Db | undefined,
  isp: IspConfig,
  path: string,
  hooks: DryRunHooks = {},
): Promise<DryRunReport> {
  const scratchDir = mkdtempSync(join(tmpdir(), 'relais-dry-run-'));
  const file = basename(path);
  try {
    let read: Awaited<ReturnType<typeof readFeed>>;
    try {
      read = await readFeed(path, isp, {
        scratchDir,
        fileName: file,
        onRecord: hooks.onRecord,
        onProgress: hooks.onProgress,
      });
    } catch (err) {
      if (!(err instanceof IspDataError)) throw err;
      return {
        file,
        records: 0,
        accepted: 0,
        rejected: 0,
        fileError: { code: err.code, message: err.message },
      };
    }
    const report: DryRunReport = {
      file,
      records: read.records,
      accepted: read.accepted,
      rejected: read.rejected,
    };
    if (db) {
      try {
        const feed = { id: 'feed_dry_run', receivedAt: new Date() };
        const diff = await diffFeed(db, isp, feed, read.items.sorted(), undefined, (r) =>
          read.rejects.push(r),
        );
        const { subscribes, changes, suspends, resumes, cancels, activeBefore, extraRejects } =
          diff;
        report.diff = { subscribes, changes, suspends, resumes, cancels, activeBefore };
        report.accepted -= extraRejects;
        report.rejected += extraRejects;
        const counts = {
          ...report.diff,
          records: report.records,
          applied: report.accepted,
          rejected: report.rejected,
          batches: 0,
        };
        const decision = decide(isp, counts, diff, {});
        report.decision =
          decision.kind === 'apply'
            ? { kind: 'apply' }
            : { kind: decision.kind, message: decision.message };
      } catch (err) {
        report.diffError = (err as Error).message.split('\n')[0];
      }
    } else {
      report.diffError = 'database not reachable: records and rejects only';
    }
    for await (const reject of read.rejects.sorted()) hooks.onReject?.(reject);
    read.items.dispose();
    read.rejects.dispose();
    return report;
  } finally {
    rmSync(scratchDir, { recursive: true, force: true });
  }
}
