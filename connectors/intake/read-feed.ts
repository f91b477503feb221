/**
 * Phase one of processing a feed: read the whole file through its format and the ISP's mapping,
 * sorting valid records by customer ref into run files and collecting rejects. Nothing is
 * applied here; a file-level problem (a DOCTYPE, a short trailer) throws before any change
 * exists, which is why a truncated transfer can never be half-applied.
 */
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import type { IspConfig } from '../../config/load.js';
import type { MappingReject } from '../../mappings/customer-record.js';
import { compareFeedItems, type FeedItem } from '../../mappings/feed-diff.js';
import { createRecordMapper } from '../../mappings/record-mapper.js';
import { ExternalSorter } from '../../platform/external-sort.js';
import { formatFor } from '../formats/registry.js';
import { HashingCounter } from './feed-files.js';
import { createScratchSeal, type ScratchSeal } from './scratch-seal.js';

export interface ReadProgress {
  records: number;
  bytesRead: number;
  totalBytes: number;
}

export interface ReadResult {
  items: ExternalSorter<FeedItem>;
  rejects: ExternalSorter<MappingReject>;
  records: number;
  accepted: number;
  rejected: number;
}

export interface ReadOptions {
  scratchDir: string;
  fileName: string;
  /** Throw {@link NotInRefOrderError} at the first item whose ref sorts before the one before. */
  requireRefOrder?: boolean;
  onProgress?: (progress: ReadProgress) => void;
  /** Called with each valid record as read (the dry run prints them). */
  onRecord?: (item: FeedItem) => void;
  /** Keep each record's e-mail through the sort (sealed); otherwise it is dropped there. */
  keepEmails?: boolean;
  /** Records sorted in memory before a run file is written (the sorter's default otherwise). */
  sortChunkSize?: number;
}

const PROGRESS_EVERY = 50_000;

/**
 * Compact one-line form of a feed item for the sort runs (dates as epoch ms). The e-mail is
 * personal: it is left out unless the ISP's addresses are kept, and then written sealed with a
 * key of this process only (scratch-seal.ts), so it never reaches the disk in clear.
 */
function itemCodec(seal: ScratchSeal | undefined): {
  serialize: (item: FeedItem) => string;
  deserialize: (line: string) => FeedItem;
} {
  return {
    serialize(item) {
      if (item.kind === 'protect') return JSON.stringify([0, item.customerRef, item.line]);
      const r = item.record;
      return JSON.stringify([
        1,
        r.customerRef,
        r.line,
        r.offer,
        r.modules,
        r.status,
        r.effectiveAt?.getTime() ?? null,
        r.operation,
        r.language,
        seal && r.email !== null ? seal.hide(r.email) : null,
      ]);
    },
    deserialize(line) {
      const a = JSON.parse(line);
      if (a[0] === 0) return { kind: 'protect', customerRef: a[1], line: a[2] };
      return {
        kind: 'record',
        record: {
          customerRef: a[1],
          line: a[2],
          offer: a[3],
          modules: a[4],
          status: a[5],
          effectiveAt: a[6] === null ? null : new Date(a[6]),
          operation: a[7],
          email: seal && typeof a[9] === 'string' ? seal.reveal(a[9]) : null,
          language: a[8],
        },
      };
    },
  };
}

export function compareRejects(a: MappingReject, b: MappingReject): number {
  return a.line - b.line;
}

export interface ReadCounts {
  /** Records read, valid or not. */
  records: number;
  /** Records that passed the mapping. */
  accepted: number;
}

/**
 * Reads the file in file order: yields each valid record (and a `protect` item for a rejected
 * row whose ref was readable), pushes every reject into `rejects`, and counts into `counts`.
 * A file-level problem is thrown, possibly after some items were yielded.
 */
export async function* readItems(
  path: string,
  isp: IspConfig,
  options: ReadOptions,
  rejects: ExternalSorter<MappingReject>,
  counts: ReadCounts,
): AsyncGenerator<FeedItem> {
  const mapper = createRecordMapper({
    fields: isp.intake.fields,
    offers: isp.offers,
    timeZone: isp.timeZone,
    mode: isp.intake.mode,
  });
  const format = formatFor(isp.intake.format);
  const counter = new HashingCounter();
  const totalBytes = statSync(path).size;
  // pipeline, not pipe: a read error reaches the reader, and stopping early closes the file.
  const source = createReadStream(path);
  const input = pipeline(source, counter, () => {});
  let previousRef: string | undefined;
  const inOrder = (ref: string, line: number) => {
    if (previousRef !== undefined && ref < previousRef) throw new NotInRefOrderError(line);
    previousRef = ref;
  };

  const items = format.read(input, isp.intake.format, {
    fileName: options.fileName,
    wanted: mapper.wanted,
  });
  try {
    for await (const item of items) {
      counts.records++;
      if (counts.records % PROGRESS_EVERY === 0)
        options.onProgress?.({ records: counts.records, bytesRead: counter.sizeBytes, totalBytes });
      if (item.kind === 'reject') {
        await rejects.push({
          line: item.line,
          field: item.field ?? null,
          value: null,
          reason: item.reason,
          customerRef: null,
        });
        continue;
      }
      const result = mapper.map(item);
      if (result.ok) {
        counts.accepted++;
        if (options.requireRefOrder) inOrder(result.record.customerRef, result.record.line);
        const feedItem: FeedItem = { kind: 'record', record: result.record };
        options.onRecord?.(feedItem);
        yield feedItem;
      } else {
        await rejects.push(result.reject);
        const { customerRef, line } = result.reject;
        if (customerRef !== null) {
          if (options.requireRefOrder) inOrder(customerRef, line);
          yield { kind: 'protect', customerRef, line };
        }
      }
    }
  } finally {
    source.destroy();
  }
  options.onProgress?.({ records: counts.records, bytesRead: counter.sizeBytes, totalBytes });
}

export function rejectSorter(scratchDir: string): ExternalSorter<MappingReject> {
  return new ExternalSorter<MappingReject>({
    dir: join(scratchDir, 'rejects'),
    compare: compareRejects,
  });
}

/** Reads the whole file, sorting its items by customer ref into run files on disk. */
export async function readFeed(
  path: string,
  isp: IspConfig,
  options: ReadOptions,
): Promise<ReadResult> {
  const codec = itemCodec(options.keepEmails ? createScratchSeal() : undefined);
  const items = new ExternalSorter<FeedItem>({
    dir: join(options.scratchDir, 'items'),
    compare: compareFeedItems,
    chunkSize: options.sortChunkSize,
    ...codec,
  });
  const rejects = rejectSorter(options.scratchDir);
  const counts: ReadCounts = { records: 0, accepted: 0 };
  for await (const item of readItems(path, isp, options, rejects, counts)) await items.push(item);
  const { records, accepted } = counts;
  return { items, rejects, records, accepted, rejected: records - accepted };
}

/**
 * Thrown by {@link readItems} under `requireRefOrder` at the first item whose ref sorts before
 * the one before it. Most exports list customers in customer-number order, which lets the
 * intake read and diff in one pass, without sorting; this is how it learns that it cannot.
 */
export class NotInRefOrderError extends Error {
  constructor(readonly line: number) {
    super(`feed items are not in customer-ref order (line ${line})`);
  }
}
