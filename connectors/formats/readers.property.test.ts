/**
 * Property tests of the three readers on broken and hostile input (issue 7), each read through
 * the registry with the shipped ISP's options and then through that ISP's mapping, as the intake
 * reads a feed. Inputs are valid generated exports mutated byte by byte, line by line and value
 * by value (test/generators/hostile-feeds.ts), or random bytes and token soups; the oracles are
 * test/harness/reader-oracle.ts and mapping-oracle.ts.
 *
 * Fixed seed and run counts, so that `npm test` stays quick and repeatable; RELAIS_CHAOS_SEED=<n>
 * picks another seed. The time-bounded fuzz run of the same oracles is
 * test/chaos/fuzz.chaos.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildFeed,
  chunkingArb,
  FEED_KINDS,
  hostileFeedArb,
} from '../../test/generators/hostile-feeds.js';
import { hostileReader } from '../../test/harness/hostile-read.js';
import { outcomeDifferences, readViolations } from '../../test/harness/reader-oracle.js';
import { loadShippedIsps } from '../../test/harness/shipped-isps.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? 72_026);
const RUNS = 150;
const isps = loadShippedIsps();

describe.each(FEED_KINDS)('the %s reader and mapping, on broken and hostile input', (kind) => {
  const reader = hostileReader(kind, isps);

  it('never crashes: a read ends in records and rejects, or in a refusal with file and reason', async () => {
    await fc.assert(
      fc.asyncProperty(hostileFeedArb(kind), chunkingArb, async (spec, chunks) => {
        const { bytes, personal } = buildFeed(spec);
        const subject = reader.subjectOf(bytes, personal);
        expect(readViolations(await reader.read(subject, chunks), subject)).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('reads the same records, rejects and refusal whatever the chunk sizes', async () => {
    await fc.assert(
      fc.asyncProperty(hostileFeedArb(kind), chunkingArb, async (spec, chunks) => {
        const subject = reader.subjectOf(buildFeed(spec).bytes, []);
        const whole = await reader.read(subject, [Math.max(1, subject.bytes.length)]);
        const chunked = await reader.read(subject, chunks);
        expect(outcomeDifferences(whole, chunked)).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED + 1 },
    );
  });

  it('accepts only records that obey the ISP rules; every other gets line, field and reason', async () => {
    const counts = { accepted: 0, rejected: 0 };
    await fc.assert(
      fc.asyncProperty(hostileFeedArb(kind), async (spec) => {
        const { bytes, personal } = buildFeed(spec);
        const outcome = await reader.read(reader.subjectOf(bytes, personal), [65_536]);
        expect(reader.mappingViolations(outcome, counts)).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED + 2 },
    );
    // The inputs reach both sides of the mapping, or the property proves little.
    expect(counts.accepted).toBeGreaterThan(50);
    expect(counts.rejected).toBeGreaterThan(10);
  });
});
