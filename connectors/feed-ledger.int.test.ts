import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from '../test/harness/context.js';
import { type Feed, type FeedCounts, FeedLedger, type ReceivedFile } from './feed-ledger.js';
import { syncIsps } from './isp-registry.js';

const DEMO = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');
const ISPS = ['dup-a', 'dup-b', 'known', 'order', 'marks', 'held', 'super', 'super-x', 'rej'];

const ctx = useTestContext({ isps: Object.fromEntries(ISPS.map((id) => [id, DEMO])) });

let ledger: FeedLedger;
beforeAll(async () => {
  await syncIsps(ctx().connectorDb, ctx().config.isps, silentLogger());
  ledger = new FeedLedger(ctx().connectorDb);
});

const sha = (content: string) => createHash('sha256').update(content).digest('hex');
const at = (minute: number) => new Date(Date.UTC(2026, 11, 1, 6, minute));

function file(ispId: string, name: string, content: string, extra: Partial<ReceivedFile> = {}) {
  return {
    ispId,
    source: 'local',
    name,
    sizeBytes: content.length,
    sha256: sha(content),
    ...extra,
  } satisfies ReceivedFile;
}

async function recorded(
  ispId: string,
  name: string,
  content: string,
  now: Date,
  extra: Partial<ReceivedFile> = {},
): Promise<Feed> {
  return (await ledger.record(file(ispId, name, content, extra), now)).feed;
}

const counts = (over: Partial<FeedCounts> = {}): FeedCounts => ({
  records: 10,
  applied: 8,
  rejected: 2,
  subscribes: 3,
  changes: 2,
  suspends: 1,
  resumes: 1,
  cancels: 1,
  batches: 1,
  ...over,
});

describe('FeedLedger.record', () => {
  it('records a new file as received, with what the transport knew of it', async () => {
    const { feed, original } = await ledger.record(
      file('dup-a', 'abonnes_1.csv', 'day one', { sourceMtimeMs: 1_764_000_000_123 }),
      at(0),
    );
    expect(original).toBeUndefined();
    expect(feed).toMatchObject({
      ispId: 'dup-a',
      source: 'local',
      name: 'abonnes_1.csv',
      sizeBytes: 7,
      sourceMtimeMs: 1_764_000_000_123,
      sha256: sha('day one'),
      status: 'received',
      duplicateOf: null,
      receivedAt: at(0),
      finishedAt: null,
      records: 0,
      cancels: 0,
    });
    expect(feed.id).toMatch(/^feed_[0-9a-z]{26}$/);
    expect(await ledger.get(feed.id)).toEqual(feed);
  });

  it('records the same content under another name and transport as a duplicate', async () => {
    const first = await recorded('dup-a', 'abonnes_2.csv', 'day two', at(1));
    const { feed, original } = await ledger.record(
      file('dup-a', 'copy.csv', 'day two', { source: 'http' }),
      at(2),
    );
    expect(original?.id).toBe(first.id);
    expect(feed).toMatchObject({
      name: 'copy.csv',
      source: 'http',
      status: 'duplicate',
      duplicateOf: first.id,
      finishedAt: at(2),
    });
    expect(feed.id).not.toBe(first.id);

    const third = await ledger.record(file('dup-a', 'again.csv', 'day two'), at(3));
    expect(third.feed.duplicateOf).toBe(first.id);
    expect(third.original?.id).toBe(first.id);
    expect((await ledger.get(first.id))?.status).toBe('received');
  });

  it('keeps the duplicate link to an original however far it went', async () => {
    const first = await recorded('dup-a', 'abonnes_3.csv', 'day three', at(4));
    await ledger.markApplied(first.id, counts(), at(5));
    const { feed } = await ledger.record(file('dup-a', 'abonnes_3.csv', 'day three'), at(6));
    expect(feed).toMatchObject({ status: 'duplicate', duplicateOf: first.id });
  });

  it('does not take the same content of another ISP for a duplicate', async () => {
    const mine = await recorded('dup-a', 'shared.csv', 'same bytes', at(7));
    const { feed, original } = await ledger.record(file('dup-b', 'shared.csv', 'same bytes'));
    expect(original).toBeUndefined();
    expect(feed).toMatchObject({ ispId: 'dup-b', status: 'received' });
    expect(feed.id).not.toBe(mine.id);
  });

  it('accepts the same content again once the original failed', async () => {
    const first = await recorded('dup-b', 'broken.csv', 'broken', at(8));
    await ledger.markFailed(first.id, { code: 'FEED_EMPTY', message: 'no record' }, at(9));
    const { feed, original } = await ledger.record(file('dup-b', 'broken.csv', 'broken'), at(10));
    expect(original).toBeUndefined();
    expect(feed.status).toBe('received');
    const again = await ledger.record(file('dup-b', 'broken-2.csv', 'broken'), at(11));
    expect(again.feed.duplicateOf).toBe(feed.id);
  });

  it('lets only one of two simultaneous copies own the content', async () => {
    const results = await Promise.all(
      ['x.csv', 'y.csv', 'z.csv'].map((name) => ledger.record(file('dup-b', name, 'racing'))),
    );
    const owners = results.filter((r) => r.feed.status === 'received');
    expect(owners).toHaveLength(1);
    for (const r of results) {
      if (r.feed.status === 'duplicate') expect(r.feed.duplicateOf).toBe(owners[0]?.feed.id);
    }
  });
});

describe('FeedLedger.isKnown', () => {
  it.each<[string, { name?: string; size?: number; mtime?: number; isp?: string }, boolean]>([
    ['the same name, size and mtime', {}, true],
    ['another name', { name: 'other.csv' }, false],
    ['another size', { size: 99 }, false],
    ['another mtime', { mtime: 2_000 }, false],
    ['another ISP', { isp: 'dup-a' }, false],
  ])('answers for %s', async (_name, probe, expected) => {
    const name = `known-${_name.replace(/\W+/g, '-')}.csv`;
    await recorded('known', name, `content of ${name}`, at(0), { sourceMtimeMs: 1_000 });
    const size = `content of ${name}`.length;
    expect(
      await ledger.isKnown(
        probe.isp ?? 'known',
        probe.name ?? name,
        probe.size ?? size,
        probe.mtime ?? 1_000,
      ),
    ).toBe(expected);
  });

  it('forgets a file whose feed failed, so it can be picked up again', async () => {
    const feed = await recorded('known', 'failed.csv', 'failing', at(1), { sourceMtimeMs: 5 });
    expect(await ledger.isKnown('known', 'failed.csv', 7, 5)).toBe(true);
    await ledger.markFailed(feed.id, { code: 'FEED_EMPTY', message: 'no record' });
    expect(await ledger.isKnown('known', 'failed.csv', 7, 5)).toBe(false);
  });
});

describe('FeedLedger.nextToProcess', () => {
  it('gives the oldest unfinished feed of the ISP, resumed ones included', async () => {
    expect(await ledger.nextToProcess('order')).toBeUndefined();
    const third = await recorded('order', 'c.csv', 'c', at(30));
    const first = await recorded('order', 'a.csv', 'a', at(10));
    const second = await recorded('order', 'b.csv', 'b', at(20));
    await recorded('order', 'dup.csv', 'a', at(5)); // a duplicate is never processed

    expect((await ledger.nextToProcess('order'))?.id).toBe(first.id);
    await ledger.markParsing(first.id);
    expect((await ledger.nextToProcess('order'))?.id).toBe(first.id);
    await ledger.markApplied(first.id, counts());
    expect((await ledger.nextToProcess('order'))?.id).toBe(second.id);
    await ledger.markHeld(second.id, counts(), 'would cancel too many');
    expect((await ledger.nextToProcess('order'))?.id).toBe(third.id);
    await ledger.markFailed(third.id, { code: 'FEED_EMPTY', message: 'no record' });
    expect(await ledger.nextToProcess('order')).toBeUndefined();

    await ledger.approve(second.id);
    expect((await ledger.nextToProcess('order'))?.id).toBe(second.id);
  });
});

describe('FeedLedger marks', () => {
  it('stamps parsing and clears an old error', async () => {
    const feed = await recorded('marks', 'p.csv', 'p', at(0));
    await ledger.markParsing(feed.id, at(1));
    expect(await ledger.get(feed.id)).toMatchObject({
      status: 'parsing',
      startedAt: at(1),
      errorCode: null,
      errorMessage: null,
    });
  });

  it('stores the counts of an applied feed', async () => {
    const feed = await recorded('marks', 'a.csv', 'a', at(1));
    await ledger.markApplied(feed.id, counts({ records: 123_456, batches: 247 }), at(2));
    expect(await ledger.get(feed.id)).toMatchObject({
      ...counts({ records: 123_456, batches: 247 }),
      status: 'applied',
      finishedAt: at(2),
    });
  });

  it('stores the counts and the reason of a held feed', async () => {
    const feed = await recorded('marks', 'h.csv', 'h', at(2));
    await ledger.markHeld(feed.id, counts({ cancels: 40 }), 'would cancel 40 of 100', at(3));
    expect(await ledger.get(feed.id)).toMatchObject({
      ...counts({ cancels: 40 }),
      status: 'held',
      errorCode: null,
      errorMessage: 'would cancel 40 of 100',
      finishedAt: at(3),
    });
  });

  it('stores the code, the message and the counts known of a failed feed', async () => {
    const feed = await recorded('marks', 'f.csv', 'f', at(3));
    await ledger.markFailed(
      feed.id,
      { code: 'FEED_TOO_MANY_REJECTS', message: 'x'.repeat(5_000), counts: { rejected: 9 } },
      at(4),
    );
    const failed = await ledger.get(feed.id);
    expect(failed).toMatchObject({
      status: 'failed',
      errorCode: 'FEED_TOO_MANY_REJECTS',
      rejected: 9,
      records: 0,
      finishedAt: at(4),
    });
    expect(failed?.errorMessage).toHaveLength(2_000);
  });

  it('lists the feeds of an ISP, newest first, by status', async () => {
    const all = await ledger.list({ ispId: 'marks' });
    expect(all.map((f) => f.name)).toEqual(['f.csv', 'h.csv', 'a.csv', 'p.csv']);
    expect((await ledger.list({ ispId: 'marks', status: 'held' })).map((f) => f.name)).toEqual([
      'h.csv',
    ]);
    expect(await ledger.list({ ispId: 'marks', limit: 2 })).toHaveLength(2);
  });
});

describe('FeedLedger approve and drop', () => {
  it('approves a held snapshot back to received, stamped', async () => {
    const feed = await recorded('held', 'a.csv', 'a', at(0));
    await ledger.markHeld(feed.id, counts(), 'too many cancels', at(1));
    expect(await ledger.countHeld('held')).toBe(1);
    expect(await ledger.approve(feed.id, at(2))).toBe(true);
    expect(await ledger.get(feed.id)).toMatchObject({
      status: 'received',
      approvedAt: at(2),
      errorMessage: null,
      finishedAt: null,
    });
    expect(await ledger.countHeld('held')).toBe(0);
    expect(await ledger.approve(feed.id)).toBe(false);
    expect(await ledger.drop(feed.id)).toBe(false);
  });

  it('drops a held snapshot as failed and releases its content', async () => {
    const feed = await recorded('held', 'd.csv', 'd', at(0));
    await ledger.markHeld(feed.id, counts(), 'too many cancels');
    expect(await ledger.drop(feed.id, at(3))).toBe(true);
    expect(await ledger.get(feed.id)).toMatchObject({
      status: 'failed',
      errorCode: 'FEED_HELD_DROPPED',
      finishedAt: at(3),
    });
    expect(await ledger.approve(feed.id)).toBe(false);
    expect((await ledger.record(file('held', 'd-again.csv', 'd'))).feed.status).toBe('received');
  });

  it.each(['received', 'parsing', 'applied', 'failed', 'duplicate'] as const)(
    'neither approves nor drops a %s feed',
    async (status) => {
      const feed = await recorded('held', `${status}.csv`, `status ${status}`, at(0));
      await ctx().connectorDb('feeds').where({ id: feed.id }).update({ status });
      expect(await ledger.approve(feed.id)).toBe(false);
      expect(await ledger.drop(feed.id)).toBe(false);
      expect((await ledger.get(feed.id))?.status).toBe(status);
    },
  );

  it('answers false for a feed that does not exist', async () => {
    expect(await ledger.approve('feed_00000000000000000000000000')).toBe(false);
    expect(await ledger.drop('feed_00000000000000000000000000')).toBe(false);
  });
});

describe('FeedLedger.supersedeHeld', () => {
  it('supersedes the held snapshots older than the one applied, and only those', async () => {
    const older = await recorded('super', 'old.csv', 'old', at(0));
    const olderStill = await recorded('super', 'older.csv', 'older', at(1));
    const applied = await recorded('super', 'now.csv', 'now', at(10));
    const newer = await recorded('super', 'new.csv', 'new', at(20));
    const elsewhere = await recorded('super-x', 'old.csv', 'old', at(0));
    for (const f of [older, olderStill, newer, elsewhere]) {
      await ledger.markHeld(f.id, counts(), 'too many cancels');
    }
    const received = await recorded('super', 'waiting.csv', 'waiting', at(5));

    expect(await ledger.supersedeHeld('super', applied, at(11))).toBe(2);
    for (const f of [older, olderStill]) {
      const superseded = await ledger.get(f.id);
      expect(superseded).toMatchObject({
        status: 'failed',
        errorCode: 'FEED_SUPERSEDED',
        finishedAt: at(11),
      });
      expect(superseded?.errorMessage).toContain(applied.id);
    }
    expect((await ledger.get(newer.id))?.status).toBe('held');
    expect((await ledger.get(elsewhere.id))?.status).toBe('held');
    expect((await ledger.get(received.id))?.status).toBe('received');
    expect(await ledger.approve(older.id)).toBe(false);
    expect(await ledger.supersedeHeld('super', applied)).toBe(0);
  });
});

describe('FeedLedger rejects', () => {
  const reject = (line: number, reason = `reason ${line}`) => ({
    line,
    field: 'email',
    value: 'someone@example.org',
    reason,
    customerRef: 'C-1',
  });

  it('stores line, field and reason in line order, never the value', async () => {
    const feed = await recorded('rej', 'r.csv', 'r', at(0));
    await ledger.recordRejects(feed.id, [reject(9), reject(3), reject(5)]);
    expect(await ledger.rejectsOf(feed.id)).toEqual([
      { line: 3, field: 'email', reason: 'reason 3' },
      { line: 5, field: 'email', reason: 'reason 5' },
      { line: 9, field: 'email', reason: 'reason 9' },
    ]);
    expect(await ledger.rejectsOf(feed.id, 2)).toHaveLength(2);
    const rows = await ctx().connectorDb('feed_rejects').where({ feed_id: feed.id });
    expect(JSON.stringify(rows)).not.toMatch(/someone|example\.org|C-1/);
  });

  it('replaces the rejects of a feed written again by a resumed run', async () => {
    const feed = await recorded('rej', 's.csv', 's', at(0));
    await ledger.recordRejects(feed.id, [reject(1), reject(2)]);
    await ledger.recordRejects(feed.id, [reject(2)]);
    expect(await ledger.rejectsOf(feed.id)).toEqual([
      { line: 2, field: 'email', reason: 'reason 2' },
    ]);
    await ledger.recordRejects(feed.id, []);
    expect(await ledger.rejectsOf(feed.id)).toEqual([]);
  });

  it('cuts a long field or reason to its column, and stores more than one insert holds', async () => {
    const feed = await recorded('rej', 't.csv', 't', at(0));
    const many = Array.from({ length: 1_201 }, (_, i) => ({
      line: i + 1,
      field: i === 0 ? `Contract/${'Nested/'.repeat(20)}Offer` : null,
      reason: i === 0 ? 'r'.repeat(400) : 'bad row',
    }));
    await ledger.recordRejects(feed.id, many);
    const rows = await ledger.rejectsOf(feed.id, 5_000);
    expect(rows).toHaveLength(1_201);
    expect(rows[0]?.field).toHaveLength(64);
    expect(rows[0]?.reason).toHaveLength(255);
    expect(rows[1]).toEqual({ line: 2, field: null, reason: 'bad row' });
  });
});
