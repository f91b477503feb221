/**
 * Phase one of processing a feed: read the whole file through its format and the ISP's mapping,
 * sorting valid records by customer ref into run files and collecting rejects. Nothing is
 * applied here; a file-level problem (a DOCTYPE, a short trailer) throws before any change
 * exists, which is why a truncated transfer can never be half-applied.
 */
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import type { IspConfig } from '../../config/load.js';
import type { MappingReject } from '../../mappings/customer-record.js';
import { compareFeedItems, type FeedItem } from '../../mappings/feed-diff.js';
import { createRecordMapper } from '../../mappings/record-mapper.js';
import { ExternalSorter } from '../../platform/external-sort.js';
import { formatFor } from '../formats/registry.js';
import { HashingCounter } from './feed-files.js';

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
  onProgress?: (progress: ReadProgress) => void;
  /** Called with each valid record as read (the dry run prints them). */
  onRecord?: (item: FeedItem) => void;
}

const PROGRESS_EVERY = 50_000;

/** Compact one-line form of a feed item for the sort runs (dates as epoch ms). */
function serializeItem(item: FeedItem): string {
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
    r.email,
    r.language,
  ]);
}

function deserializeItem(line: string): FeedItem {
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
      email: a[8],
      language: a[9],
    },
  };
}

export function compareRejects(a: MappingReject, b: MappingReject): number {
  return a.line - b.line;
}

export async function readFeed(
  path: string,
  isp: IspConfig,
  options: ReadOptions,
): Promise<ReadResult> {
  const mapper = createRecordMapper({
    fields: isp.intake.fields,
    offers: isp.offers,
    timeZone: isp.timeZone,
    mode: isp.intake.mode,
  });
  const format = formatFor(isp.intake.format);
  const items = new ExternalSorter<FeedItem>({
    dir: join(options.scratchDir, 'items'),
    compare: compareFeedItems,
    serialize: serializeItem,
    deserialize: deserializeItem,
  });
  const rejects = new ExternalSorter<MappingReject>({
    dir: join(options.scratchDir, 'rejects'),
    compare: compareRejects,
  });
  const counter = new HashingCounter();
  const totalBytes = statSync(path).size;
  const input = createReadStream(path).pipe(counter);
  let records = 0;
  let accepted = 0;

  for await (const item of format.read(input, isp.intake.format, {
    fileName: options.fileName,
    wanted: mapper.wanted,
  })) {
    records++;
    if (records % PROGRESS_EVERY === 0)
      options.onProgress?.({ records, bytesRead: counter.sizeBytes, totalBytes });
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
      accepted++;
      const feedItem: FeedItem = { kind: 'record', record: result.record };
      options.onRecord?.(feedItem);
      await items.push(feedItem);
    } else {
      await rejects.push(result.reject);
      if (result.reject.customerRef !== null) {
        await items.push({
          kind: 'protect',
          customerRef: result.reject.customerRef,
          line: result.reject.line,
        });
      }
    }
  }
  options.onProgress?.({ records, bytesRead: counter.sizeBytes, totalBytes });
  return { items, rejects, records, accepted, rejected: records - accepted };
}
