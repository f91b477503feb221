/**
 * The fuzz run of issue 7: the CSV, XML and fixed-width readers, each with its shipped ISP's
 * options and mapping, fed broken and hostile feeds (test/generators/hostile-feeds.ts: bigger
 * exports and more mutations than the property tests of `npm test`) for a bounded time each.
 * Every input goes through every oracle (test/harness/hostile-read.ts): no crash, a refusal
 * names the file and a reason, the same result whatever the chunk sizes, and only records that
 * obey the ISP rules are accepted.
 *
 * RELAIS_FUZZ_SECONDS (default 10) sets the time per reader, to fuzz longer locally;
 * RELAIS_CHAOS_SEED=<n> replays a run. The seed, the number of inputs tried and, on failure,
 * the shrunk counterexample and how to replay it are printed.
 */
import { randomInt } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkingArb, FEED_KINDS, hostileFeedArb } from '../generators/hostile-feeds.js';
import { hostileReader } from '../harness/hostile-read.js';
import { loadShippedIsps } from '../harness/shipped-isps.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? randomInt(1, 2 ** 31));
const SECONDS = Number(process.env.RELAIS_FUZZ_SECONDS ?? 10);
const REPLAY = `replay with RELAIS_CHAOS_SEED=${SEED} RELAIS_FUZZ_SECONDS=${SECONDS}`;
const isps = loadShippedIsps();

describe.each(FEED_KINDS)('fuzzing the %s reader and its mapping', (kind) => {
  const reader = hostileReader(kind, isps);

  it(`meets every oracle on each input tried in ${SECONDS} s (seed ${SEED})`, async () => {
    let inputs = 0;
    const property = fc.asyncProperty(
      hostileFeedArb(kind, { maxCount: 40, maxMutations: 8 }),
      chunkingArb,
      async (spec, chunks) => {
        inputs++;
        const violations = await reader.check(spec, chunks);
        if (violations.length > 0) throw new Error(violations.join('\n'));
      },
    );
    const details = await fc.check(property, {
      seed: SEED + FEED_KINDS.indexOf(kind),
      numRuns: Number.MAX_SAFE_INTEGER,
      plugins: [fc.interruptAfterTimeLimit(SECONDS * 1_000)],
    });

    console.log(`fuzz ${kind}: ${inputs} inputs in ${SECONDS} s, seed ${SEED}`);
    if (details.failed) {
      console.error(`fuzz ${kind} failed: ${REPLAY}\n${fc.defaultReportMessage(details)}`);
    }
    expect(details.failed, `${REPLAY}\n${fc.defaultReportMessage(details)}`).toBe(false);
    // A run that tried almost nothing proves nothing (a hang, or a machine far too slow).
    expect(inputs).toBeGreaterThan(SECONDS * 20);
  });
});
