/**
 * Step 2 of processing a feed: merges the feed's items (sorted by customer ref) with the stored
 * state, counting what would happen and sending each subscriber change to a sink (a change-list
 * file, the database, or nowhere for a dry run). Snapshots are merged with one ordered scan of
 * the ISP's subscribers; deltas look up only the refs they touch.
 */
import type { IspConfig } from '../../config/load.js';
import type { MappingReject } from '../../mappings/customer-record.js';
import {
  type DiffContext,
  diffDeltaGroup,
  diffSnapshot,
  type FeedItem,
  type GroupOutcome,
  groupByRef,
  type RefGroup,
} from '../../mappings/feed-diff.js';
import type { ProvisioningCommand } from '../../mappings/provisioning-command.js';
import {
  findSubscribers,
  type StoredSubscriber,
  subscriberBatches,
} from '../../mappings/subscriber-store.js';
import type { Db } from '../../platform/db.js';
import { newId } from '../../platform/ids.js';
import type { DiffCounts, Feed } from '../feed-ledger.js';
import type { ChangeSink } from './change-applier.js';

const LOOKUP_CHUNK = 500;

export interface DiffSummary extends DiffCounts {
  /** Active subscribers before this feed (snapshot mode), the base of the safety valve. */
  activeBefore: number;
  changeCount: number;
  extraRejects: number;
}

export function emptyDiffCounts(): DiffCounts {
  return { subscribes: 0, changes: 0, suspends: 0, resumes: 0, cancels: 0 };
}

function countCommands(counts: DiffCounts, commands: readonly ProvisioningCommand[]): void {
  for (const c of commands) {
    if (c.kind === 'subscribe') counts.subscribes++;
    else if (c.kind === 'change') counts.changes++;
    else if (c.kind === 'suspend') counts.suspends++;
    else if (c.kind === 'resume') counts.resumes++;
    else counts.cancels++;
  }
}

/** Delta mode looks up only the refs it touches, a chunk at a time, in ref order. */
async function* diffDelta(
  db: Db,
  ispId: string,
  groups: AsyncIterable<RefGroup>,
  ctx: DiffContext,
): AsyncGenerator<GroupOutcome> {
  let chunk: RefGroup[] = [];
  const flush = async function* (): AsyncGenerator<GroupOutcome> {
    const stored = new Map<string, StoredSubscriber>();
    for (const s of await findSubscribers(
      db,
      ispId,
      chunk.map((g) => g.customerRef),
    ))
      stored.set(s.customerRef, s);
    for (const group of chunk) yield diffDeltaGroup(group, stored.get(group.customerRef), ctx);
    chunk = [];
  };
  for await (const group of groups) {
    chunk.push(group);
    if (chunk.length >= LOOKUP_CHUNK) yield* flush();
  }
  if (chunk.length > 0) yield* flush();
}

/** Step 2: merges the sorted feed with the stored state, sending each change to `sink`. */
export async function diffFeed(
  db: Db,
  isp: IspConfig,
  feed: Pick<Feed, 'id' | 'receivedAt'>,
  items: AsyncIterable<FeedItem>,
  sink: ChangeSink | undefined,
  onReject: (reject: MappingReject) => Promise<void>,
): Promise<DiffSummary> {
  const counts = emptyDiffCounts();
  const ctx: DiffContext = {
    feedId: feed.id,
    receivedAt: feed.receivedAt,
    newSubscriberId: () => newId('sub'),
  };
  let activeBefore = 0;
  let changeCount = 0;
  let extraRejects = 0;
  const groups = groupByRef(items);
  const outcomes =
    isp.intake.mode === 'snapshot'
      ? diffSnapshot(groups, subscriberBatches(db, isp.id), ctx)
      : diffDelta(db, isp.id, groups, ctx);

  for await (const outcome of outcomes) {
    if ('storedStatus' in outcome && outcome.storedStatus === 'active') activeBefore++;
    for (const reject of outcome.rejects) {
      extraRejects++;
      await onReject(reject);
    }
    if (!outcome.change) continue;
    changeCount++;
    countCommands(counts, outcome.change.commands);
    await sink?.write(outcome.change);
  }
  return { ...counts, activeBefore, changeCount, extraRejects };
}
