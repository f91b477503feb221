/**
 * Turns a feed's records into subscriber changes by comparing them with the state last applied.
 *
 * - Snapshot: the feed is the ISP's whole list. Both sides arrive sorted by customer ref and are
 *   merged in one pass: new refs subscribe, status and module differences suspend, resume,
 *   change or cancel, and refs missing from the file cancel. Only differences produce work.
 * - Delta: each record is an operation. A customer's operations are applied in effective-date
 *   order (ties in file order) through a small state machine. An operation dated before the
 *   last one already applied to the customer (it came in an earlier file, late) is rejected:
 *   applying it now would put it out of order, and the ISP must send a correction. An
 *   impossible transition is
 *   rejected with its reason: anything but a subscribe on an unknown or cancelled customer, a
 *   subscribe on a customer already subscribed. A subscribe after a cancel is a re-subscription
 *   under the same subscriber id. An operation that changes nothing on a live subscription
 *   (suspending a suspended customer, a change to the same modules) is a no-op.
 *
 * A ref that appears more than once in a snapshot is rejected, not silently overwritten, and a
 * ref whose row was rejected is left as it is rather than cancelled. A subscriber whose stored
 * `lastFeedId` is this feed was already applied by an interrupted run of the same feed and is
 * skipped: that is what makes a resumed feed end in the state of one clean run.
 *
 * Both inputs must be sorted in JavaScript string order; the merge checks it and throws rather
 * than cancel and re-subscribe (under a new id) a customer it merely met out of order.
 */
import type { DeltaOperation, SubscriptionStatus } from '../config/isp-schema.js';
import { InternalError } from '../platform/errors.js';
import type { CustomerRecord, MappingReject } from './customer-record.js';
import { type CommandKind, commandKey, type ProvisioningCommand } from './provisioning-command.js';
import type { StoredSubscriber, SubscriberChange, SubscriberContact } from './subscriber-store.js';

/** One sorted item of a feed: a valid record, or a rejected row whose ref was readable. */
export type FeedItem =
  | { kind: 'record'; record: CustomerRecord }
  | { kind: 'protect'; customerRef: string; line: number };

export interface RefGroup {
  customerRef: string;
  items: FeedItem[];
}

export interface DiffContext {
  feedId: string;
  /** Effective time of changes the file does not date (missing refs, undated records). */
  receivedAt: Date;
  newSubscriberId: () => string;
}

export interface GroupOutcome {
  change?: SubscriberChange;
  rejects: MappingReject[];
}

export function refOf(item: FeedItem): string {
  return item.kind === 'record' ? item.record.customerRef : item.customerRef;
}

export function lineOf(item: FeedItem): number {
  return item.kind === 'record' ? item.record.line : item.line;
}

/** Sort order of feed items: ref, then effective date (undated first), then line. */
export function compareFeedItems(a: FeedItem, b: FeedItem): number {
  const ra = refOf(a);
  const rb = refOf(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  const ta = a.kind === 'record' ? (a.record.effectiveAt?.getTime() ?? -1) : -1;
  const tb = b.kind === 'record' ? (b.record.effectiveAt?.getTime() ?? -1) : -1;
  return ta - tb || lineOf(a) - lineOf(b);
}

function outOfOrder(what: string): InternalError {
  return new InternalError('INTERNAL', `${what} are not in customer-ref order`);
}

/**
 * Groups consecutive items of one ref, each group's items in {@link compareFeedItems} order;
 * the input must be sorted by ref. Throws on a ref lower than the one before: a second group of
 * one ref would subscribe a known customer again.
 */
export async function* groupByRef(items: AsyncIterable<FeedItem>): AsyncGenerator<RefGroup> {
  let current: RefGroup | undefined;
  const done = (group: RefGroup) => {
    if (group.items.length > 1) group.items.sort(compareFeedItems);
    return group;
  };
  for await (const item of items) {
    const ref = refOf(item);
    if (current && current.customerRef === ref) {
      current.items.push(item);
      continue;
    }
    if (current && ref < current.customerRef) throw outOfOrder('feed items');
    if (current) yield done(current);
    current = { customerRef: ref, items: [item] };
  }
  if (current) yield done(current);
}

function sameModules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

interface State {
  status: SubscriptionStatus;
  modules: string[];
  offer: string | null;
}

/** ISO forms of recent dates: a feed's effective dates repeat (most are midnights). */
const isoForms = new Map<number, string>();

function isoOf(date: Date): string {
  const ms = date.getTime();
  let iso = isoForms.get(ms);
  if (iso === undefined) {
    iso = date.toISOString();
    if (isoForms.size >= 10_000) isoForms.clear();
    isoForms.set(ms, iso);
  }
  return iso;
}

/** Builds the change of one subscriber from its stored state and the commands decided. */
class ChangeBuilder {
  private readonly commands: ProvisioningCommand[] = [];
  private version: number;
  private effectiveAt: Date | null = null;
  private id: string | undefined;
  private contact: SubscriberContact | undefined;

  constructor(
    private readonly customerRef: string,
    private readonly stored: StoredSubscriber | undefined,
    private readonly ctx: DiffContext,
    private state: State | undefined,
  ) {
    this.id = stored?.subscriberId;
    this.version = stored?.version ?? 0;
  }

  /** A new ref gets its random id with its first command, not for a row that changes nothing. */
  get subscriberId(): string {
    this.id ??= this.ctx.newSubscriberId();
    return this.id;
  }

  get current(): State | undefined {
    return this.state;
  }

  /** `record` is the one the command comes from; a subscribe takes its contact fields. */
  add(kind: CommandKind, next: State, effectiveAt: Date, record?: CustomerRecord): void {
    this.version++;
    this.state = next;
    this.effectiveAt = effectiveAt;
    this.commands.push({
      key: commandKey(this.subscriberId, this.version),
      kind,
      subscriberId: this.subscriberId,
      modules: next.modules,
      status: next.status,
      effectiveAt: isoOf(effectiveAt),
      version: this.version,
      offer: next.offer ?? undefined,
    });
    // The last subscribe of the feed wins: its address is the one the new key goes to.
    if (kind === 'subscribe' && record) {
      this.contact = { email: record.email, language: record.language };
    }
  }

  build(): SubscriberChange | undefined {
    if (this.commands.length === 0 || !this.state) return undefined;
    return {
      customerRef: this.customerRef,
      subscriberId: this.subscriberId,
      isNew: this.stored === undefined,
      status: this.state.status,
      offer: this.state.offer,
      modules: this.state.modules,
      effectiveAt: this.effectiveAt,
      version: this.version,
      commands: this.commands,
      contact: this.contact,
    };
  }
}

function storedState(stored: StoredSubscriber | undefined): State | undefined {
  return stored && { status: stored.status, modules: stored.modules, offer: stored.offer };
}

/** What moving from `current` to the record's status and modules takes, if anything. */
function snapshotTransition(
  current: State | undefined,
  record: CustomerRecord,
): CommandKind | undefined {
  if (!current || current.status === 'cancelled') {
    return record.status === 'cancelled' ? undefined : 'subscribe';
  }
  if (record.status === 'cancelled') return 'cancel';
  if (current.status === 'active' && record.status === 'suspended') return 'suspend';
  if (current.status === 'suspended' && record.status === 'active') return 'resume';
  return sameModules(current.modules, record.modules) ? undefined : 'change';
}

function duplicateRejects(group: RefGroup): MappingReject[] {
  const lines = group.items.map(lineOf).sort((a, b) => a - b);
  const reason = `customer ref appears ${lines.length} times in this file (lines ${lines.join(', ')})`;
  return group.items
    .filter((item) => item.kind === 'record')
    .map((item) => ({
      line: lineOf(item),
      field: 'customerRef',
      value: group.customerRef,
      reason,
      customerRef: group.customerRef,
    }));
}

/** One ref of a snapshot against its stored state. */
export function diffSnapshotGroup(
  group: RefGroup,
  stored: StoredSubscriber | undefined,
  ctx: DiffContext,
): GroupOutcome {
  if (group.items.length > 1) return { rejects: duplicateRejects(group) };
  const [item] = group.items;
  if (item?.kind !== 'record') return { rejects: [] };
  if (stored?.lastFeedId === ctx.feedId) return { rejects: [] };

  const record = item.record;
  const builder = new ChangeBuilder(group.customerRef, stored, ctx, storedState(stored));
  const kind = snapshotTransition(builder.current, record);
  if (!kind) return { rejects: [] };
  const modules = kind === 'cancel' ? (stored?.modules ?? []) : record.modules;
  builder.add(
    kind,
    { status: record.status, modules, offer: record.offer },
    record.effectiveAt ?? ctx.receivedAt,
    record,
  );
  return { change: builder.build(), rejects: [] };
}

/** A stored subscriber the snapshot no longer lists: cancelled, unless already so. */
export function cancelMissing(
  stored: StoredSubscriber,
  ctx: DiffContext,
): SubscriberChange | undefined {
  if (stored.status === 'cancelled' || stored.lastFeedId === ctx.feedId) return undefined;
  const builder = new ChangeBuilder(stored.customerRef, stored, ctx, storedState(stored));
  builder.add(
    'cancel',
    { status: 'cancelled', modules: stored.modules, offer: stored.offer },
    ctx.receivedAt,
  );
  return builder.build();
}

export interface SnapshotDiffEvent {
  change?: SubscriberChange;
  rejects: MappingReject[];
  /** Set on stored subscribers as they are passed, to count the active ones. */
  storedStatus?: SubscriptionStatus;
}

/**
 * Merges a sorted snapshot with the sorted stored state of the ISP, read a batch at a time.
 * Throws when a stored ref is not above the one before. The stored side is closed however the
 * merge ends, so an abandoned merge does not keep a database read going.
 */
export async function* diffSnapshot(
  groups: AsyncIterable<RefGroup>,
  storedPages: AsyncIterable<readonly StoredSubscriber[]>,
  ctx: DiffContext,
): AsyncGenerator<SnapshotDiffEvent> {
  const source = storedPages[Symbol.asyncIterator]();
  let page: readonly StoredSubscriber[] = [];
  let at = 0;
  let exhausted = false;
  let previous: string | undefined;
  const head = (): StoredSubscriber | undefined => page[at];
  const fill = async () => {
    while (at >= page.length && !exhausted) {
      const next = await source.next();
      if (next.done) exhausted = true;
      else [page, at] = [next.value, 0];
    }
  };
  const take = (): StoredSubscriber => {
    const subscriber = page[at++] as StoredSubscriber;
    if (previous !== undefined && subscriber.customerRef <= previous) {
      throw outOfOrder('stored subscribers');
    }
    previous = subscriber.customerRef;
    return subscriber;
  };
  const missing = (subscriber: StoredSubscriber): SnapshotDiffEvent => ({
    change: cancelMissing(subscriber, ctx),
    rejects: [],
    storedStatus: subscriber.status,
  });

  try {
    await fill();
    for await (const group of groups) {
      for (let next = head(); next && next.customerRef < group.customerRef; next = head()) {
        yield missing(take());
        if (at >= page.length) await fill();
      }
      const next = head();
      if (next && next.customerRef === group.customerRef) {
        const subscriber = take();
        const event: SnapshotDiffEvent = diffSnapshotGroup(group, subscriber, ctx);
        event.storedStatus = subscriber.status;
        yield event;
        if (at >= page.length) await fill();
      } else {
        yield diffSnapshotGroup(group, undefined, ctx);
      }
    }
    while (head()) {
      yield missing(take());
      if (at >= page.length) await fill();
    }
  } finally {
    await source.return?.(undefined);
  }
}

type DeltaStep = { kind: CommandKind; next: State } | { noop: true } | { reject: string };

function deltaStep(
  current: State | undefined,
  op: DeltaOperation,
  record: CustomerRecord,
): DeltaStep {
  const live = current && current.status !== 'cancelled' ? current : undefined;
  const target: State = { status: 'active', modules: record.modules, offer: record.offer };
  switch (op) {
    case 'subscribe':
      if (!live) return { kind: 'subscribe', next: target };
      return { reject: `cannot subscribe a customer already subscribed (${live.status})` };
    case 'change':
      if (!live)
        return {
          reject: current
            ? 'cannot change a cancelled subscription'
            : 'cannot change an unknown customer',
        };
      return sameModules(live.modules, record.modules)
        ? { noop: true }
        : { kind: 'change', next: { ...target, status: live.status } };
    case 'suspend':
      if (!live)
        return {
          reject: current
            ? 'cannot suspend a cancelled subscription'
            : 'cannot suspend an unknown customer',
        };
      return live.status === 'suspended'
        ? { noop: true }
        : { kind: 'suspend', next: { ...live, status: 'suspended' } };
    case 'resume':
      if (!live)
        return {
          reject: current
            ? 'cannot resume a cancelled subscription'
            : 'cannot resume an unknown customer',
        };
      return live.status === 'active'
        ? { noop: true }
        : { kind: 'resume', next: { ...live, status: 'active' } };
    case 'cancel':
      if (!live)
        return {
          reject: current
            ? 'cannot cancel a subscription already cancelled'
            : 'cannot cancel an unknown customer',
        };
      return { kind: 'cancel', next: { ...live, status: 'cancelled' } };
  }
}

/** One ref's operations of a delta feed, in effective-date order, against its stored state. */
export function diffDeltaGroup(
  group: RefGroup,
  stored: StoredSubscriber | undefined,
  ctx: DiffContext,
): GroupOutcome {
  if (stored?.lastFeedId === ctx.feedId) return { rejects: [] };
  const builder = new ChangeBuilder(group.customerRef, stored, ctx, storedState(stored));
  const rejects: MappingReject[] = [];
  const lastApplied = stored?.effectiveAt ?? null;
  // An undated operation takes effect at receipt, so it sorts there, not first.
  const at = (item: FeedItem) =>
    item.kind === 'record' ? (item.record.effectiveAt ?? ctx.receivedAt).getTime() : -1;
  const items = [...group.items].sort((a, b) => at(a) - at(b) || lineOf(a) - lineOf(b));
  for (const item of items) {
    if (item.kind !== 'record' || !item.record.operation) continue;
    const { record } = item;
    const effectiveAt = record.effectiveAt ?? ctx.receivedAt;
    if (lastApplied !== null && effectiveAt < lastApplied) {
      rejects.push({
        line: record.line,
        field: 'effectiveDate',
        value: effectiveAt.toISOString().slice(0, 10),
        reason: `dated before the last operation applied to this customer (${lastApplied.toISOString().slice(0, 10)}): operations from an earlier file cannot be applied after later ones`,
        customerRef: record.customerRef,
      });
      continue;
    }
    const step = deltaStep(builder.current, item.record.operation, record);
    if ('reject' in step) {
      rejects.push({
        line: record.line,
        field: 'operation',
        value: record.operation,
        reason: step.reject,
        customerRef: record.customerRef,
      });
    } else if ('kind' in step) {
      builder.add(step.kind, step.next, effectiveAt, record);
    }
  }
  return { change: builder.build(), rejects };
}
