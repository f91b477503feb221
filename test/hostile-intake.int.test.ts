/**
 * Broken and hostile feeds through the whole intake, into the database (issue 7): whatever a
 * feed holds, it ends applied, held, a duplicate or failed, never stuck and never a crash; a
 * failed, held or duplicate feed changes no subscriber; an applied one writes only subscribers
 * that obey the ISP's field rules; and every refusal and reject the ledger keeps has a reason.
 * The feeds are the property tests' (test/generators/hostile-feeds.ts), for the three shipped
 * ISPs, after a valid export of each has been applied, so that changes have a state to change.
 *
 * Fixed seed and run counts; RELAIS_CHAOS_SEED=<n> picks another seed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBSCRIPTION_STATUSES } from '../config/isp-schema.js';
import { packageRoot } from '../platform/package-root.js';
import {
  buildFeed,
  FEED_ISP,
  FEED_KINDS,
  type FeedKind,
  type FeedSpec,
  hostileFeedArb,
  mutationArb,
  valueMutationArb,
} from './generators/hostile-feeds.js';
import { useTestContext } from './harness/context.js';
import { openTestIntake, type TestIntake } from './harness/intake.js';
import { refViolations } from './harness/mapping-oracle.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? 72_026);
const RUNS = 40;
const BASELINE_CUSTOMERS = 12;

/** The valid export applied first: twelve customers, each subscribing. */
const baselineOf = (kind: FeedKind): Extract<FeedSpec, { from: 'export' }> => ({
  kind,
  from: 'export',
  seed: SEED,
  count: BASELINE_CUSTOMERS,
  ops: ['SUB'],
  mutations: [],
});

/**
 * Half the baseline with a few changes (a snapshot close enough to the stored state to be
 * applied, not held by the safety valve), half anything of the property tests.
 */
function feedArb(kind: FeedKind): fc.Arbitrary<FeedSpec> {
  const mutations = fc.array(fc.oneof(mutationArb(kind), valueMutationArb(kind)), {
    minLength: 1,
    maxLength: 3,
  });
  const nearBaseline = mutations.map((m): FeedSpec => ({ ...baselineOf(kind), mutations: m }));
  return fc.oneof(nearBaseline, hostileFeedArb(kind));
}
const MODULE_CODE = /^[a-z][a-z0-9-]{0,31}$/;

const shipped = (id: string) => readFileSync(join(packageRoot(), `config/isps/${id}.yaml`), 'utf8');
const ctx = useTestContext({
  isps: Object.fromEntries(Object.values(FEED_ISP).map((id) => [id, shipped(id)])),
});

let intake: TestIntake;

beforeAll(async () => {
  intake = await openTestIntake(ctx());
});

afterAll(async () => {
  await intake?.close();
});

interface SubscriberRow {
  customer_ref: string;
  status: string;
  offer: string | null;
  modules: string;
  last_feed_id: string | null;
}

async function subscribersOf(ispId: string): Promise<Map<string, string>> {
  const rows: SubscriberRow[] = await ctx()
    .connectorDb('subscribers')
    .where({ isp_id: ispId })
    .select('customer_ref', 'status', 'offer', 'modules', 'version');
  return new Map(rows.map((row) => [row.customer_ref, JSON.stringify(row)]));
}

/** What is wrong with a subscriber row an applied feed wrote. */
function rowViolations(ispId: string, row: SubscriberRow): string[] {
  const isp = intake.isp(ispId);
  const found = refViolations(row.customer_ref, isp.intake.fields.customerRef);
  if (!(SUBSCRIPTION_STATUSES as readonly string[]).includes(row.status)) {
    found.push(`status ${row.status}`);
  }
  if (row.offer !== null && !Object.hasOwn(isp.offers, row.offer)) found.push(`offer ${row.offer}`);
  const modules = row.modules === '' ? [] : row.modules.split(',');
  if (modules.some((m) => !MODULE_CODE.test(m))) found.push(`modules ${row.modules}`);
  if (modules.length === 0 && row.status !== 'cancelled') found.push('no module');
  return found.map((problem) => `subscriber ${JSON.stringify(row.customer_ref)}: ${problem}`);
}

let feedNumber = 0;

describe.each(FEED_KINDS)('a broken or hostile %s feed through the intake', (kind) => {
  const ispId = FEED_ISP[kind];

  beforeAll(async () => {
    const feedId = await intake.ingest(
      ispId,
      `baseline-${kind}`,
      buildFeed(baselineOf(kind)).bytes,
    );
    const feed = await ctx().connectorDb('feeds').where({ id: feedId }).first();
    expect(feed).toMatchObject({ status: 'applied', rejected: 0 });
    expect((await subscribersOf(ispId)).size).toBeGreaterThan(0);
  });

  it('ends applied, held, duplicate or failed; a refusal changes nothing and says why', async () => {
    const statuses = new Set<string>();
    await fc.assert(
      fc.asyncProperty(feedArb(kind), async (spec) => {
        const before = await subscribersOf(ispId);
        const name = `hostile-${++feedNumber}.${kind === 'fixed-width' ? 'txt' : kind}`;
        const feedId = await intake.ingest(ispId, name, buildFeed(spec).bytes);

        const feed = await ctx().connectorDb('feeds').where({ id: feedId }).first();
        statuses.add(feed.status);
        expect(['applied', 'held', 'duplicate', 'failed']).toContain(feed.status);
        const after = await subscribersOf(ispId);
        if (feed.status === 'failed') {
          expect(feed.error_code).toMatch(/^FEED_[A-Z_]+$/);
          expect(feed.error_message).toMatch(/^\S+.{12,}/);
        }
        if (feed.status !== 'applied') expect([...after]).toEqual([...before]);

        const written: SubscriberRow[] = await ctx()
          .connectorDb('subscribers')
          .where({ isp_id: ispId, last_feed_id: feedId });
        expect(written.flatMap((row) => rowViolations(ispId, row))).toEqual([]);
        const rejects = await ctx().connectorDb('feed_rejects').where({ feed_id: feedId });
        for (const reject of rejects) {
          expect(reject.line).toBeGreaterThanOrEqual(1);
          expect(reject.reason).toMatch(/^\S.{4,}/);
        }
      }),
      { numRuns: RUNS, seed: SEED + FEED_KINDS.indexOf(kind) },
    );
    // The feeds reach both outcomes, or the property proves little.
    expect(statuses).toContain('failed');
    expect(statuses).toContain('applied');
  });
});
