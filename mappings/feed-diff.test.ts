import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DeltaOperation, SubscriptionStatus } from '../config/isp-schema.js';
import type { CustomerRecord, MappingReject } from './customer-record.js';
import {
  compareFeedItems,
  type DiffContext,
  diffDeltaGroup,
  diffSnapshot,
  type FeedItem,
  groupByRef,
  type RefGroup,
  type SnapshotDiffEvent,
} from './feed-diff.js';
import type { CommandKind } from './provisioning-command.js';
import type { StoredSubscriber, SubscriberChange } from './subscriber-store.js';

const FEED = 'feed_current';
const RECEIVED_AT = new Date('2026-12-01T06:00:00.000Z');
const day = (d: number) => new Date(Date.UTC(2026, 10, d));

function record(ref: string, over: Partial<CustomerRecord> = {}): CustomerRecord {
  return {
    line: 2,
    customerRef: ref,
    offer: 'BASIC',
    modules: ['antivirus'],
    status: 'active',
    effectiveAt: null,
    operation: null,
    email: null,
    language: null,
    ...over,
  };
}

/** Stored ids are numbered in order of first use, never spelled from the ref. */
const storedIds = new Map<string, string>();
function storedId(ref: string): string {
  if (!storedIds.has(ref)) storedIds.set(ref, `sub_stored${storedIds.size + 1}`);
  return storedIds.get(ref) as string;
}

function stored(ref: string, over: Partial<StoredSubscriber> = {}): StoredSubscriber {
  return {
    customerRef: ref,
    subscriberId: storedId(ref),
    status: 'active',
    offer: 'BASIC',
    modules: ['antivirus'],
    version: 3,
    lastFeedId: 'feed_before',
    effectiveAt: null,
    ...over,
  };
}

const item = (r: CustomerRecord): FeedItem => ({ kind: 'record', record: r });
const protect = (ref: string, line: number): FeedItem => ({
  kind: 'protect',
  customerRef: ref,
  line,
});

/** A context whose new subscriber ids are numbered, so two runs can be compared. */
function context(feedId = FEED): DiffContext & { issued: string[] } {
  const issued: string[] = [];
  return {
    feedId,
    receivedAt: RECEIVED_AT,
    issued,
    newSubscriberId: () => {
      const id = `sub_new${issued.length + 1}`;
      issued.push(id);
      return id;
    },
  };
}

async function* from<T>(values: Iterable<T>): AsyncGenerator<T> {
  for (const v of values) yield v;
}

async function collect<T>(values: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of values) out.push(v);
  return out;
}

/** Sorts, groups and diffs a snapshot, as process-feed does. */
async function snapshot(
  items: FeedItem[],
  state: StoredSubscriber[],
  ctx: DiffContext = context(),
): Promise<SnapshotDiffEvent[]> {
  const sorted = [...items].sort(compareFeedItems);
  const byRef = [...state].sort((a, b) => (a.customerRef < b.customerRef ? -1 : 1));
  return collect(diffSnapshot(groupByRef(from(sorted)), from(pagesOf(byRef)), ctx));
}

/** Stored subscribers in pages of two (and an empty page), as the database reader pages them. */
function pagesOf(state: StoredSubscriber[]): StoredSubscriber[][] {
  const pages: StoredSubscriber[][] = [[]];
  for (let i = 0; i < state.length; i += 2) pages.push(state.slice(i, i + 2));
  return pages;
}

const changesOf = (events: SnapshotDiffEvent[]) =>
  events.flatMap((e) => (e.change ? [e.change] : []));
const rejectsOf = (events: SnapshotDiffEvent[]) => events.flatMap((e) => e.rejects);
const kindsOf = (change: SubscriberChange | undefined) => change?.commands.map((c) => c.kind);

describe('compareFeedItems', () => {
  const at = (ref: string, line: number, effectiveAt: Date | null = null) =>
    item(record(ref, { line, effectiveAt }));

  it.each<[string, FeedItem, FeedItem, '<' | '>' | '=']>([
    ['orders by ref first', at('B', 1, day(1)), at('C', 9, null), '<'],
    ['compares refs by code unit, upper case before lower', at('Z', 1), at('a', 1), '<'],
    ['compares refs by code unit, 10 before 9', at('10', 5), at('9', 1), '<'],
    ['puts undated records of one ref first', at('A', 9, null), at('A', 1, day(1)), '<'],
    ['orders one ref by effective date', at('A', 1, day(5)), at('A', 9, day(3)), '>'],
    ['breaks date ties by line', at('A', 3, day(2)), at('A', 7, day(2)), '<'],
    ['sorts a protected row as undated', protect('A', 4), at('A', 2, day(1)), '<'],
    ['finds an item equal to itself', at('A', 3, day(2)), at('A', 3, day(2)), '='],
  ])('%s', (_name, a, b, expected) => {
    const sign = Math.sign(compareFeedItems(a, b));
    expect(sign).toBe({ '<': -1, '>': 1, '=': 0 }[expected]);
    expect(Math.sign(compareFeedItems(b, a))).toBe(-sign || 0);
  });
});

describe('groupByRef', () => {
  it('groups consecutive items of one ref, each group in effective-date then line order', async () => {
    const items = [
      protect('A', 3),
      item(record('A', { line: 2 })),
      item(record('B', { line: 1 })),
      item(record('C', { line: 4, effectiveAt: day(2) })),
      item(record('C', { line: 5, effectiveAt: day(1) })),
      item(record('C', { line: 6, effectiveAt: day(1) })),
    ];
    const groups = await collect(groupByRef(from(items)));
    expect(groups.map((g) => [g.customerRef, g.items])).toEqual([
      ['A', [items[1], items[0]]],
      ['B', [items[2]]],
      ['C', [items[4], items[5], items[3]]],
    ]);
  });

  it('yields nothing for an empty feed', async () => {
    expect(await collect(groupByRef(from([])))).toEqual([]);
  });

  it('refuses unsorted input rather than yield one ref twice', async () => {
    const items = [item(record('B')), item(record('A')), item(record('B'))];
    await expect(collect(groupByRef(from(items)))).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});

interface SnapshotCase {
  name: string;
  before?: Partial<StoredSubscriber>;
  row?: Partial<CustomerRecord>;
  kinds?: CommandKind[];
  after?: { status: SubscriptionStatus; modules: string[] };
}

describe('diffSnapshot, one customer', () => {
  const AV = ['antivirus'];
  const AV_FW = ['antivirus', 'firewall'];

  it.each<SnapshotCase>([
    { name: 'subscribes a new active customer', row: {}, kinds: ['subscribe'] },
    {
      name: 'subscribes a new customer listed as suspended, with that status',
      row: { status: 'suspended' },
      kinds: ['subscribe'],
      after: { status: 'suspended', modules: AV },
    },
    {
      name: 'ignores a new customer listed as cancelled',
      row: { status: 'cancelled', modules: [] },
    },
    { name: 'does nothing when nothing changed', before: {}, row: {} },
    {
      name: 'does nothing when only the offer name changed',
      before: { offer: 'OLD' },
      row: { offer: 'NEW' },
    },
    {
      name: 'adds a module with a change',
      before: {},
      row: { modules: AV_FW },
      kinds: ['change'],
      after: { status: 'active', modules: AV_FW },
    },
    {
      name: 'removes a module with a change',
      before: { modules: AV_FW },
      row: { modules: AV },
      kinds: ['change'],
      after: { status: 'active', modules: AV },
    },
    {
      name: 'suspends an active customer listed as suspended',
      before: {},
      row: { status: 'suspended' },
      kinds: ['suspend'],
      after: { status: 'suspended', modules: AV },
    },
    {
      name: 'resumes a suspended customer listed as active',
      before: { status: 'suspended' },
      row: {},
      kinds: ['resume'],
      after: { status: 'active', modules: AV },
    },
    {
      name: 'changes the modules of a customer who stays suspended',
      before: { status: 'suspended' },
      row: { status: 'suspended', modules: AV_FW },
      kinds: ['change'],
      after: { status: 'suspended', modules: AV_FW },
    },
    {
      name: 'cancels an active customer listed as cancelled, keeping the modules',
      before: { modules: AV_FW },
      row: { status: 'cancelled', modules: [] },
      kinds: ['cancel'],
      after: { status: 'cancelled', modules: AV_FW },
    },
    {
      name: 'cancels a suspended customer listed as cancelled',
      before: { status: 'suspended' },
      row: { status: 'cancelled', modules: [] },
      kinds: ['cancel'],
      after: { status: 'cancelled', modules: AV },
    },
    {
      name: 're-subscribes a cancelled customer who comes back',
      before: { status: 'cancelled' },
      row: { modules: AV_FW },
      kinds: ['subscribe'],
      after: { status: 'active', modules: AV_FW },
    },
    {
      name: 'leaves a cancelled customer listed as cancelled alone',
      before: { status: 'cancelled' },
      row: { status: 'cancelled', modules: [] },
    },
    {
      name: 'skips a customer already applied by an interrupted run of this feed',
      before: { lastFeedId: FEED },
      row: { status: 'suspended', modules: AV_FW },
    },
    {
      name: 'skips a re-subscription already applied by an interrupted run',
      before: { lastFeedId: FEED, status: 'cancelled' },
      row: {},
    },
    { name: 'cancels a customer missing from the snapshot', before: {}, kinds: ['cancel'] },
    { name: 'leaves a missing cancelled customer alone', before: { status: 'cancelled' } },
    {
      name: 'skips a missing customer already cancelled by an interrupted run',
      before: { lastFeedId: FEED },
    },
  ])('$name', async ({ before, row, kinds, after }) => {
    const state = before ? [stored('C-1', before)] : [];
    const ctx = context();
    const events = await snapshot(row ? [item(record('C-1', row))] : [], state, ctx);
    const [change, ...more] = changesOf(events);

    expect(more).toEqual([]);
    expect(rejectsOf(events)).toEqual([]);
    expect(kindsOf(change)).toEqual(kinds);
    if (!change) return;
    const firstVersion = (before ? 3 : 0) + 1;
    expect(change).toMatchObject({
      customerRef: 'C-1',
      subscriberId: before ? storedId('C-1') : 'sub_new1',
      isNew: !before,
      version: firstVersion + change.commands.length - 1,
      ...after,
    });
    expect(change.commands.map((c) => c.version)).toEqual([firstVersion]);
    for (const command of change.commands) {
      expect(command).toMatchObject({ status: change.status, modules: change.modules });
    }
  });

  it('dates a change with the record when it says, with the receipt otherwise', async () => {
    const events = await snapshot(
      [item(record('A', { effectiveAt: day(7) })), item(record('B'))],
      [stored('C')],
    );
    expect(changesOf(events).map((c) => [c.customerRef, c.commands[0]?.effectiveAt])).toEqual([
      ['A', day(7).toISOString()],
      ['B', RECEIVED_AT.toISOString()],
      ['C', RECEIVED_AT.toISOString()],
    ]);
  });

  it('issues commands that name the subscriber by id only', async () => {
    const events = await snapshot(
      [item(record('REF-SECRET-1', { email: 'someone@example.org', language: 'fr' }))],
      [stored('REF-SECRET-2')],
    );
    const commands = changesOf(events).flatMap((c) => c.commands);
    expect(commands).toHaveLength(2);
    for (const command of commands) {
      expect(Object.keys(command).sort()).toEqual(
        [
          'effectiveAt',
          'key',
          'kind',
          'modules',
          'offer',
          'status',
          'subscriberId',
          'version',
        ].sort(),
      );
      expect(command.key).toBe(`${command.subscriberId}:v${command.version}`);
    }
    expect(JSON.stringify(commands)).not.toMatch(/REF-SECRET|someone|example\.org/);
  });

  it('carries the offer on every command, and none when the subscriber has none', async () => {
    const events = await snapshot(
      [
        item(record('A', { offer: 'FAMILY', modules: ['antivirus', 'firewall'] })),
        item(record('B', { offer: null, modules: ['backup'] })),
        item(record('C', { status: 'suspended' })),
      ],
      [stored('C', { offer: 'BASIC' }), stored('D', { offer: 'OLD_PLAN' })],
    );
    const offers = changesOf(events).map((c) => [c.commands[0]?.kind, c.commands[0]?.offer]);
    expect(offers).toEqual([
      ['subscribe', 'FAMILY'],
      ['subscribe', undefined],
      ['suspend', 'BASIC'],
      ['cancel', 'OLD_PLAN'],
    ]);
  });

  it("keeps a subscribe's e-mail and language with its change, and nothing on other changes", async () => {
    const events = await snapshot(
      [
        item(record('A', { email: 'a@example.org', language: 'nl' })),
        item(record('B', { email: 'b@example.org', language: null })),
        item(record('C', { status: 'suspended', email: 'c@example.org' })),
        item(record('R', { email: 'back@example.org', language: 'fr' })),
      ],
      [stored('C'), stored('R', { status: 'cancelled' })],
    );
    expect(changesOf(events).map((c) => [c.customerRef, c.contact])).toEqual([
      ['A', { email: 'a@example.org', language: 'nl' }],
      ['B', { email: 'b@example.org', language: null }],
      ['C', undefined],
      ['R', { email: 'back@example.org', language: 'fr' }],
    ]);
  });
});

describe('diffSnapshot, protected and duplicate refs', () => {
  it('does not cancel a customer whose row was rejected with a readable ref', async () => {
    const events = await snapshot([protect('C-1', 7)], [stored('C-1')]);
    expect(changesOf(events)).toEqual([]);
    expect(rejectsOf(events)).toEqual([]);
    expect(events).toEqual([{ rejects: [], storedStatus: 'active' }]);
  });

  it.each<[string, StoredSubscriber[]]>([
    ['a known customer', [stored('C-1')]],
    ['a new customer', []],
  ])('rejects every occurrence of a ref listed twice, for %s', async (_name, state) => {
    const ctx = context();
    const events = await snapshot(
      [
        item(record('C-1', { line: 9, modules: ['firewall'] })),
        item(record('C-1', { line: 4, status: 'suspended' })),
      ],
      state,
      ctx,
    );
    expect(changesOf(events)).toEqual([]);
    expect(ctx.issued).toEqual([]);
    const reason = 'customer ref appears 2 times in this file (lines 4, 9)';
    expect(rejectsOf(events)).toEqual<MappingReject[]>([
      { line: 4, field: 'customerRef', value: 'C-1', reason, customerRef: 'C-1' },
      { line: 9, field: 'customerRef', value: 'C-1', reason, customerRef: 'C-1' },
    ]);
  });

  it('rejects a valid row whose ref also sits on a rejected row, and protects it', async () => {
    const events = await snapshot(
      [item(record('C-1', { line: 3, status: 'suspended' })), protect('C-1', 8)],
      [stored('C-1')],
    );
    expect(changesOf(events)).toEqual([]);
    expect(rejectsOf(events)).toMatchObject([
      { line: 3, reason: 'customer ref appears 2 times in this file (lines 3, 8)' },
    ]);
  });
});

describe('diffSnapshot, merge', () => {
  it('walks both sorted sides once and reports each stored status', async () => {
    const events = await snapshot(
      [item(record('B')), item(record('D', { status: 'suspended' })), item(record('F'))],
      [stored('A'), stored('B'), stored('C', { status: 'suspended' }), stored('D'), stored('E')],
    );
    expect(
      events.map((e) => [e.change?.customerRef ?? null, kindsOf(e.change) ?? [], e.storedStatus]),
    ).toEqual([
      ['A', ['cancel'], 'active'],
      [null, [], 'active'],
      ['C', ['cancel'], 'suspended'],
      ['D', ['suspend'], 'active'],
      ['E', ['cancel'], 'active'],
      ['F', ['subscribe'], undefined],
    ]);
  });

  it('refuses stored subscribers out of ref order', async () => {
    for (const pages of [[[stored('B'), stored('A')]], [[stored('B')], [stored('A')]]]) {
      const stream = diffSnapshot(from<RefGroup>([]), from(pages), context());
      await expect(collect(stream)).rejects.toMatchObject({ code: 'INTERNAL' });
    }
  });

  it('closes the stored side when the merge is abandoned midway', async () => {
    let closed = false;
    async function* storedSide() {
      try {
        for (const ref of ['A', 'B', 'C']) yield [stored(ref)];
      } finally {
        closed = true;
      }
    }
    const groups = groupByRef(from([item(record('A')), item(record('B'))]));
    for await (const _event of diffSnapshot(groups, storedSide(), context())) break;

    expect(closed).toBe(true);
  });
});

type Op = [DeltaOperation, number, string[]?];

interface DeltaCase {
  name: string;
  before?: Partial<StoredSubscriber>;
  ops: Op[];
  kinds?: CommandKind[];
  after?: { status: SubscriptionStatus; modules: string[] };
  rejects?: RegExp[];
  /** The field the rejects name (default: operation). */
  rejectField?: string;
}

/** Delta records of one ref, written to the file in the given order, dated by day. */
function deltaGroup(ref: string, ops: Op[]): RefGroup {
  const items = ops.map(([operation, d, modules], i) =>
    item(
      record(ref, {
        line: i + 2,
        operation,
        effectiveAt: day(d),
        ...(modules ? { modules } : {}),
      }),
    ),
  );
  return { customerRef: ref, items: items.sort(compareFeedItems) };
}

describe('diffDeltaGroup', () => {
  const AV = ['antivirus'];
  const AV_BK = ['antivirus', 'backup'];

  it('takes the contact of the last subscribe of a re-subscribed customer', () => {
    const records = [
      record('C-1', { line: 2, operation: 'subscribe', effectiveAt: day(1), email: 'old@x.org' }),
      record('C-1', { line: 3, operation: 'cancel', effectiveAt: day(2), email: 'mid@x.org' }),
      record('C-1', { line: 4, operation: 'subscribe', effectiveAt: day(3), email: 'new@x.org' }),
    ];
    const group = { customerRef: 'C-1', items: records.map(item) };
    const outcome = diffDeltaGroup(group, undefined, context());
    expect(kindsOf(outcome.change)).toEqual(['subscribe', 'cancel', 'subscribe']);
    expect(outcome.change?.contact).toEqual({ email: 'new@x.org', language: null });
    expect(outcome.change?.commands.map((c) => c.offer)).toEqual(['BASIC', 'BASIC', 'BASIC']);
  });

  it('keeps no contact for a change that does not subscribe', () => {
    const outcome = diffDeltaGroup(
      deltaGroup('C-1', [['change', 1, AV_BK]]),
      stored('C-1'),
      context(),
    );
    expect(kindsOf(outcome.change)).toEqual(['change']);
    expect(outcome.change?.contact).toBeUndefined();
  });

  it.each<DeltaCase>([
    { name: 'subscribes an unknown customer', ops: [['subscribe', 1]], kinds: ['subscribe'] },
    {
      name: 'rejects a subscribe of an active customer',
      before: {},
      ops: [['subscribe', 1, AV_BK]],
      rejects: [/cannot subscribe a customer already subscribed \(active\)/],
    },
    {
      name: 'rejects a subscribe of a suspended customer',
      before: { status: 'suspended' },
      ops: [['subscribe', 1]],
      rejects: [/already subscribed \(suspended\)/],
    },
    {
      name: 're-subscribes a cancelled customer under the same id',
      before: { status: 'cancelled' },
      ops: [['subscribe', 1, AV_BK]],
      kinds: ['subscribe'],
      after: { status: 'active', modules: AV_BK },
    },
    ...(['change', 'suspend', 'resume', 'cancel'] as const).flatMap((op): DeltaCase[] => [
      {
        name: `rejects a ${op} of an unknown customer`,
        ops: [[op, 1]],
        rejects: [new RegExp(`cannot ${op} an unknown customer`)],
      },
      {
        name: `rejects a ${op} of a cancelled customer`,
        before: { status: 'cancelled' },
        ops: [[op, 1]],
        rejects: [/cancelled/],
      },
    ]),
    {
      name: 'rejects an operation dated before the last one applied to the customer',
      before: { effectiveAt: day(5) },
      ops: [['suspend', 4]],
      rejects: [/dated before the last operation applied to this customer \(2026-11-05\)/],
      rejectField: 'effectiveDate',
    },
    {
      name: 'applies an operation dated the day of the last one applied, and later ones',
      before: { effectiveAt: day(5) },
      ops: [
        ['suspend', 5],
        ['resume', 6],
      ],
      kinds: ['suspend', 'resume'],
    },
    {
      name: 'changes the modules of an active customer',
      before: {},
      ops: [['change', 1, AV_BK]],
      kinds: ['change'],
      after: { status: 'active', modules: AV_BK },
    },
    {
      name: 'changes the modules of a suspended customer, who stays suspended',
      before: { status: 'suspended' },
      ops: [['change', 1, AV_BK]],
      kinds: ['change'],
      after: { status: 'suspended', modules: AV_BK },
    },
    { name: 'ignores a change to the same modules', before: {}, ops: [['change', 1, AV]] },
    {
      name: 'suspends an active customer, keeping the modules',
      before: { modules: AV_BK },
      ops: [['suspend', 1, []]],
      kinds: ['suspend'],
      after: { status: 'suspended', modules: AV_BK },
    },
    {
      name: 'ignores a suspend of a suspended customer',
      before: { status: 'suspended' },
      ops: [['suspend', 1]],
    },
    {
      name: 'resumes a suspended customer',
      before: { status: 'suspended' },
      ops: [['resume', 1]],
      kinds: ['resume'],
      after: { status: 'active', modules: AV },
    },
    { name: 'ignores a resume of an active customer', before: {}, ops: [['resume', 1]] },
    {
      name: 'cancels an active customer',
      before: {},
      ops: [['cancel', 1, []]],
      kinds: ['cancel'],
      after: { status: 'cancelled', modules: AV },
    },
    {
      name: 'cancels a suspended customer',
      before: { status: 'suspended' },
      ops: [['cancel', 1]],
      kinds: ['cancel'],
    },
    {
      name: 'applies operations in effective-date order, not file order',
      before: {},
      ops: [
        ['resume', 5],
        ['suspend', 3],
      ],
      kinds: ['suspend', 'resume'],
      after: { status: 'active', modules: AV },
    },
    {
      name: 'subscribes, cancels and re-subscribes one new customer under one id',
      ops: [
        ['subscribe', 9, AV_BK],
        ['cancel', 4],
        ['subscribe', 1],
      ],
      kinds: ['subscribe', 'cancel', 'subscribe'],
      after: { status: 'active', modules: AV_BK },
    },
    {
      name: 'rejects an impossible operation and applies the others',
      before: {},
      ops: [
        ['cancel', 2],
        ['suspend', 3],
        ['subscribe', 4, AV_BK],
        ['resume', 5],
      ],
      kinds: ['cancel', 'subscribe'],
      after: { status: 'active', modules: AV_BK },
      rejects: [/cannot suspend a cancelled subscription/],
    },
    {
      name: 'skips a customer already applied by an interrupted run of this feed',
      before: { lastFeedId: FEED, status: 'suspended' },
      ops: [['resume', 1]],
    },
  ])('$name', ({ before, ops, kinds, after, rejects = [], rejectField = 'operation' }) => {
    const ctx = context();
    const outcome = diffDeltaGroup(
      deltaGroup('C-1', ops),
      before ? stored('C-1', before) : undefined,
      ctx,
    );

    expect(outcome.rejects.map((r) => r.reason)).toEqual(rejects.map(() => expect.any(String)));
    outcome.rejects.forEach((r, i) => {
      expect(r.reason).toMatch(rejects[i] as RegExp);
      expect(r).toMatchObject({ field: rejectField, customerRef: 'C-1' });
    });
    expect(kindsOf(outcome.change)).toEqual(kinds);
    if (!outcome.change) {
      expect(ctx.issued).toEqual([]);
      return;
    }
    const base = before ? 3 : 0;
    expect(outcome.change).toMatchObject({
      subscriberId: before ? storedId('C-1') : 'sub_new1',
      isNew: !before,
      version: base + outcome.change.commands.length,
      ...after,
    });
    expect(outcome.change.commands.map((c) => c.version)).toEqual(
      outcome.change.commands.map((_c, i) => base + i + 1),
    );
    expect(new Set(outcome.change.commands.map((c) => c.subscriberId)).size).toBe(1);
  });

  it('names the line of a rejected operation', () => {
    const outcome = diffDeltaGroup(
      deltaGroup('C-1', [
        ['subscribe', 1],
        ['resume', 2],
        ['subscribe', 3],
      ]),
      undefined,
      context(),
    );
    expect(outcome.rejects).toEqual([
      {
        line: 4,
        field: 'operation',
        value: 'subscribe',
        reason: 'cannot subscribe a customer already subscribed (active)',
        customerRef: 'C-1',
      },
    ]);
  });

  it('dates each command with its record, an undated one with the receipt, in that order', () => {
    const group: RefGroup = {
      customerRef: 'C-1',
      items: [
        item(record('C-1', { line: 3, operation: 'suspend' })),
        item(record('C-1', { line: 2, operation: 'resume', effectiveAt: day(8) })),
      ],
    };
    const outcome = diffDeltaGroup(group, stored('C-1', { status: 'suspended' }), context());
    expect(outcome.change?.commands.map((c) => [c.kind, c.effectiveAt])).toEqual([
      ['resume', day(8).toISOString()],
      ['suspend', RECEIVED_AT.toISOString()],
    ]);
    expect(outcome.change?.effectiveAt).toEqual(RECEIVED_AT);
  });

  it('ignores protected rows, which have no operation', () => {
    const group: RefGroup = { customerRef: 'C-1', items: [protect('C-1', 5)] };
    expect(diffDeltaGroup(group, stored('C-1'), context())).toEqual({ rejects: [] });
  });
});

// Property tests: a model of the stored state, and the diff applied to it.

interface ModelRow {
  subscriberId: string;
  status: SubscriptionStatus;
  modules: string[];
  offer: string | null;
  version: number;
}

const MODULES = ['antivirus', 'backup', 'firewall', 'parental-control'];
const refArb = fc.stringMatching(/^[A-Za-z0-9-]{1,4}$/);
const modulesArb = fc.subarray(MODULES, { minLength: 1 });
const statusArb = fc.constantFrom<SubscriptionStatus>('active', 'suspended', 'cancelled');

const storedArb = fc
  .uniqueArray(
    fc.record({ ref: refArb, status: statusArb, modules: modulesArb, version: fc.nat(20) }),
    { selector: (s) => s.ref, maxLength: 25 },
  )
  .map((rows) =>
    rows.map((r) =>
      stored(r.ref, { status: r.status, modules: r.modules, version: r.version + 1 }),
    ),
  );

/** Snapshot rows (unique refs, some shared with the stored state), in a random file order. */
function snapshotArb(state: StoredSubscriber[]) {
  const ref =
    state.length > 0
      ? fc.oneof(refArb, fc.constantFrom(...state.map((s) => s.customerRef)))
      : refArb;
  return fc
    .uniqueArray(
      fc.record({
        ref,
        status: statusArb,
        modules: modulesArb,
        isProtected: fc.boolean(),
      }),
      { selector: (r) => r.ref, maxLength: 25 },
    )
    .chain((rows) => fc.shuffledSubarray(rows, { minLength: rows.length }))
    .map((rows) =>
      rows.map(
        (r, i): FeedItem =>
          r.isProtected
            ? protect(r.ref, i + 2)
            : item(
                record(r.ref, {
                  line: i + 2,
                  status: r.status,
                  modules: r.status === 'cancelled' ? [] : r.modules,
                }),
              ),
      ),
    );
}

function modelOf(state: StoredSubscriber[]): Map<string, ModelRow> {
  return new Map(
    state.map((s) => [
      s.customerRef,
      {
        subscriberId: s.subscriberId,
        status: s.status,
        modules: s.modules,
        offer: s.offer,
        version: s.version,
      },
    ]),
  );
}

function applyToModel(model: Map<string, ModelRow>, changes: SubscriberChange[]): void {
  for (const c of changes) {
    const { subscriberId, status, modules, offer, version } = c;
    model.set(c.customerRef, { subscriberId, status, modules, offer, version });
  }
}

function toStoredList(model: Map<string, ModelRow>, feedId: string): StoredSubscriber[] {
  return [...model]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([customerRef, row]) => ({ customerRef, ...row, lastFeedId: feedId, effectiveAt: null }));
}

describe('diffSnapshot, properties', () => {
  it('leaves exactly the snapshot’s state, whatever the order of the file', async () => {
    await fc.assert(
      fc.asyncProperty(
        storedArb.chain((state) => fc.tuple(fc.constant(state), snapshotArb(state))),
        async ([state, items]) => {
          const model = modelOf(state);
          const events = await snapshot(items, state);
          applyToModel(model, changesOf(events));

          const listed = new Map(
            items.map((i) => [i.kind === 'record' ? i.record.customerRef : i.customerRef, i]),
          );
          for (const before of state) {
            const after = model.get(before.customerRef);
            const listing = listed.get(before.customerRef);
            expect(after?.subscriberId).toBe(before.subscriberId);
            if (listing === undefined) {
              expect(after).toMatchObject({ status: 'cancelled', modules: before.modules });
            } else if (listing.kind === 'protect') {
              expect(after).toEqual(modelOf([before]).get(before.customerRef));
            }
          }
          for (const listing of listed.values()) {
            if (listing.kind !== 'record') continue;
            const { customerRef, status, modules } = listing.record;
            const before = state.find((s) => s.customerRef === customerRef);
            const after = model.get(customerRef);
            if (status !== 'cancelled') {
              expect(after).toMatchObject({ status, modules });
            } else if (before) {
              expect(after).toMatchObject({ status: 'cancelled', modules: before.modules });
            } else {
              expect(after).toBeUndefined();
            }
          }
          for (const change of changesOf(events)) {
            const before = state.find((s) => s.customerRef === change.customerRef);
            expect(change.version).toBe((before?.version ?? 0) + change.commands.length);
          }
        },
      ),
    );
  });

  it('gives the same changes for any order of the same file', async () => {
    await fc.assert(
      fc.asyncProperty(
        storedArb.chain((state) =>
          fc.tuple(
            fc.constant(state),
            snapshotArb(state).chain((items) =>
              fc.tuple(fc.constant(items), fc.shuffledSubarray(items, { minLength: items.length })),
            ),
          ),
        ),
        async ([state, [items, shuffled]]) => {
          expect(await snapshot(shuffled, state)).toEqual(await snapshot(items, state));
        },
      ),
    );
  });

  it('finds nothing left to do when the same list comes again', async () => {
    await fc.assert(
      fc.asyncProperty(
        storedArb.chain((state) => fc.tuple(fc.constant(state), snapshotArb(state))),
        async ([state, items]) => {
          const model = modelOf(state);
          applyToModel(model, changesOf(await snapshot(items, state)));
          const again = await snapshot(items, toStoredList(model, FEED), context('feed_next'));
          expect(changesOf(again)).toEqual([]);
        },
      ),
    );
  });

  it('does nothing on a resumed run once every change carries this feed', async () => {
    await fc.assert(
      fc.asyncProperty(
        storedArb.chain((state) => fc.tuple(fc.constant(state), snapshotArb(state))),
        async ([state, items]) => {
          const model = modelOf(state);
          const first = changesOf(await snapshot(items, state));
          applyToModel(model, first);
          const applied = new Set(first.map((c) => c.customerRef));
          const resumed = toStoredList(model, FEED).map((s) =>
            applied.has(s.customerRef) ? s : { ...s, lastFeedId: 'feed_before' },
          );
          expect(changesOf(await snapshot(items, resumed))).toEqual([]);
        },
      ),
    );
  });
});

describe('diffDeltaGroup, properties', () => {
  const opArb = fc.record({
    operation: fc.constantFrom<DeltaOperation>(
      'subscribe',
      'change',
      'suspend',
      'resume',
      'cancel',
    ),
    modules: modulesArb,
  });

  it('gives the same outcome whatever the file order of dated operations', () => {
    fc.assert(
      fc.property(
        fc.option(statusArb, { nil: undefined }),
        fc.uniqueArray(fc.integer({ min: 1, max: 28 }), { minLength: 1, maxLength: 8 }),
        fc.array(opArb, { minLength: 8, maxLength: 8 }),
        fc.func(fc.integer()),
        (status, days, ops, key) => {
          const dated = days.map((d, i) => ({ ...(ops[i] as (typeof ops)[number]), d }));
          const before = status ? stored('C-1', { status }) : undefined;
          const run = (order: typeof dated) => {
            const items = order.map((o, i) =>
              item(
                record('C-1', {
                  line: i + 2,
                  operation: o.operation,
                  modules: o.modules,
                  effectiveAt: day(o.d),
                }),
              ),
            );
            const outcome = diffDeltaGroup(
              { customerRef: 'C-1', items: items.sort(compareFeedItems) },
              before,
              context(),
            );
            // Lines differ between orders; what must not differ is what happens.
            return {
              change: outcome.change,
              rejects: outcome.rejects.map((r) => [r.value, r.reason]),
            };
          };
          const inDateOrder = [...dated].sort((a, b) => a.d - b.d);
          const shuffled = [...dated].sort((a, b) => key(a.d) - key(b.d) || a.d - b.d);
          expect(run(shuffled)).toEqual(run(inDateOrder));
        },
      ),
    );
  });
});
