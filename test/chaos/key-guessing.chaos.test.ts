/**
 * Activation key guessing against a real api (issue 7, "Privacy and tenant isolation"): the
 * api runs in its own process (`relais start --role api`, behind a reverse proxy as in
 * production: `http.trustProxy`, the client address from X-Forwarded-For), on this file's own
 * databases and Redis prefix, with the default guessing limits (licensing/guard.ts,
 * docs/activation-api.md). A few customers hold real keys. Then:
 *
 * - one client address sends 10,000 random well-formed keys (each with a valid check character,
 *   so each one reaches the server's lookup, not just the client's typo check);
 * - 1,000 simulated client addresses send 10,000 more, ten each;
 * - 100 addresses try 100 keys sharing one first group, as with a key leaked in part.
 *
 * Every guess is refused: a key that reaches the lookup gets the one ACTIVATION_KEY_INVALID
 * (the same for every wrong key), the rest 429 with Retry-After (ACTIVATION_LOCKED once an
 * address has failed `lockoutAfterFailures` times, RATE_LIMITED past the prefix limit). The
 * api's metrics count every one of them, and afterwards each real key still activates for its
 * owner from the owner's own address, while the guessing address stays locked even with a real
 * key.
 *
 * Randomness is seeded: RELAIS_CHAOS_SEED=<n> replays the same keys; the seed is in every
 * assertion message. The time each phase takes is printed.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCharacter, formatKey, KEY_ALPHABET } from '../../licensing/activation-key.js';
import { openKeystore } from '../../licensing/keystore.js';
import { packageRoot } from '../../platform/package-root.js';
import { seededRandom } from '../generators/isp-exports.js';
import { collect, spawnCli } from '../harness/cli.js';
import { useTestContext } from '../harness/context.js';
import { freePort } from '../harness/ports.js';
import { readPrometheusText, sampleValue } from '../harness/prometheus-text.js';
import { type SeededLicence, seedLicences } from '../harness/seed-licences.js';
import { waitFor } from '../harness/wait.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? randomInt(1, 2 ** 31));
const REPLAY = `seed ${SEED}: replay with RELAIS_CHAOS_SEED=${SEED}`;
const GUESSES = 10_000;
const ADDRESSES = 1_000;
const PREFIX_GUESSES = 100;
/** Requests in flight at once, like a guesser with a few connections. */
const CONCURRENCY = 8;
/** The defaults of `server.activation` (config/licensing-schema.ts), which this file keeps. */
const LOCKOUT_AFTER = 5;
const PER_PREFIX = 30;

const port = await freePort();
const ctx = useTestContext({
  isps: { 'demo-fai': readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8') },
  deployment: { http: { port, trustProxy: true }, shutdownTimeoutMs: 5_000 },
});
const api = `http://127.0.0.1:${port}`;
const random = seededRandom(SEED);

/** A random key that passes every check but the lookup: 24 random characters, a valid check. */
function randomKey(prefix?: string): string {
  let body = prefix ?? '';
  while (body.length < 24) body += KEY_ALPHABET[Math.floor(random() * 32)];
  return formatKey(body + checkCharacter(body));
}

interface Answer {
  status: number;
  code: string;
  message: string;
  retryAfter: string | null;
}

/** Keep-alive connections, as a guesser would hold them: node:http costs less than fetch. */
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function post(path: string, body: string, headers: Record<string, string>) {
  return new Promise<{ status: number; text: string; retryAfter: string | null }>(
    (resolve, reject) => {
      const req = request(
        `${api}${path}`,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            ...headers,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
          });
          res.on('end', () => {
            const retryAfter = res.headers['retry-after'];
            resolve({
              status: res.statusCode ?? 0,
              text,
              retryAfter: typeof retryAfter === 'string' ? retryAfter : null,
            });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    },
  );
}

let fingerprints = 0;
async function activate(key: string, address?: string): Promise<Answer> {
  fingerprints += 1;
  const body = JSON.stringify({ key, fingerprint: `guesser-device-${fingerprints}-0123456789` });
  const answer = await post('/v1/activations', body, address ? { 'x-forwarded-for': address } : {});
  const parsed = JSON.parse(answer.text) as { code?: string; outcome?: string; message?: string };
  return {
    status: answer.status,
    code: parsed.code ?? parsed.outcome ?? '',
    message: parsed.message ?? '',
    retryAfter: answer.retryAfter,
  };
}

/** Sends every guess, `CONCURRENCY` at a time, in order; returns the answers and the time. */
async function guess(
  guesses: { key: string; address?: string }[],
): Promise<{ answers: Answer[]; ms: number }> {
  const answers = new Array<Answer>(guesses.length);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < guesses.length) {
        const i = next++;
        const g = guesses[i] as { key: string; address?: string };
        answers[i] = await activate(g.key, g.address);
      }
    }),
  );
  return { answers, ms: performance.now() - started };
}

function tally(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers)
    counts[`${a.status} ${a.code}`] = (counts[`${a.status} ${a.code}`] ?? 0) + 1;
  return counts;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000))}/s`;

let child: ReturnType<typeof spawnCli> | undefined;
let stopped: ReturnType<typeof collect> | undefined;
let owners: SeededLicence[];
const totals = { invalid: 0, locked: 0, rateLimited: 0, lockouts: 0 };

beforeAll(async () => {
  const { config, licensingDb } = ctx();
  const keystore = openKeystore(config.deployment.signing.keysDir);
  owners = await seedLicences(licensingDb, keystore.keyHashSecret, 3, { ispId: 'demo-fai' });
  child = spawnCli(['start', '--role', 'api', '--config', join(ctx().dir, 'relais.yaml')]);
  stopped = collect(child, 600_000);
  await waitFor('the api answering /readyz', async () => {
    const ready = await fetch(`${api}/readyz`).catch(() => undefined);
    return ready?.status === 200 ? true : undefined;
  });
  console.info(`key guessing: ${REPLAY}`);
}, 60_000);

afterAll(async () => {
  agent.destroy();
  if (child && child.exitCode === null) child.kill('SIGTERM');
  await stopped;
});

describe('activation key guessing', () => {
  it('refuses 10,000 random keys from one address: a handful reach the lookup, then it is locked out', async () => {
    const guesses = Array.from({ length: GUESSES }, () => ({ key: randomKey() }));
    const { answers, ms } = await guess(guesses);
    const counts = tally(answers);
    console.info(
      `one address: ${GUESSES} guesses in ${seconds(ms)} (${rate(GUESSES, ms)})`,
      counts,
    );

    const invalid = counts['404 ACTIVATION_KEY_INVALID'] ?? 0;
    const locked = counts['429 ACTIVATION_LOCKED'] ?? 0;
    expect(invalid + locked, `${REPLAY}: ${JSON.stringify(counts)}`).toBe(GUESSES);
    // The lockout starts at the 5th failure; guesses already admitted in parallel still fail,
    // and one more gets through each time a lockout (30 s, doubling) runs out.
    expect(invalid, REPLAY).toBeGreaterThanOrEqual(LOCKOUT_AFTER);
    expect(invalid, REPLAY).toBeLessThanOrEqual(
      LOCKOUT_AFTER + CONCURRENCY * (1 + Math.ceil(ms / 30_000)),
    );
    expect(answers.filter((a) => a.status === 429).every((a) => Number(a.retryAfter) >= 1)).toBe(
      true,
    );
    // The lockout is the address's: even a real key from it is refused now.
    const realKey = await activate(owners[0]?.key as string);
    expect(realKey, REPLAY).toMatchObject({ status: 429, code: 'ACTIVATION_LOCKED' });
    totals.invalid += invalid;
    totals.locked += locked + 1;
    // Every failure from the 5th on (re)starts a lockout.
    totals.lockouts += invalid - (LOCKOUT_AFTER - 1);
  });

  it('refuses 10,000 random keys from 1,000 addresses: five tries each, then each is locked out', async () => {
    // Address i % 1000: each address's guesses are a thousand requests apart, never in flight
    // together, so each gets exactly its five failures before the lockout.
    const guesses = Array.from({ length: GUESSES }, (_, i) => ({
      key: randomKey(),
      address: `10.${Math.floor((i % ADDRESSES) / 250)}.${(i % ADDRESSES) % 250}.7`,
    }));
    const { answers, ms } = await guess(guesses);
    const counts = tally(answers);
    console.info(
      `${ADDRESSES} addresses: ${GUESSES} guesses in ${seconds(ms)} (${rate(GUESSES, ms)})`,
      counts,
    );

    expect(counts, REPLAY).toEqual({
      '404 ACTIVATION_KEY_INVALID': ADDRESSES * LOCKOUT_AFTER,
      '429 ACTIVATION_LOCKED': GUESSES - ADDRESSES * LOCKOUT_AFTER,
    });
    expect(answers.filter((a) => a.status === 429).every((a) => Number(a.retryAfter) >= 1)).toBe(
      true,
    );
    // One answer for every wrong key: nothing tells a guesser how near it came.
    const wrong = answers.filter((a) => a.status === 404);
    expect(new Set(wrong.map((a) => a.message)).size).toBe(1);
    totals.invalid += ADDRESSES * LOCKOUT_AFTER;
    totals.locked += GUESSES - ADDRESSES * LOCKOUT_AFTER;
    totals.lockouts += ADDRESSES;
  });

  it('caps guesses on one first group from many addresses at 30 a minute (a key leaked in part)', async () => {
    let prefix = randomKey().slice(0, 5);
    while (owners.some((o) => o.key.startsWith(prefix))) prefix = randomKey().slice(0, 5);
    const guesses = Array.from({ length: PREFIX_GUESSES }, (_, i) => ({
      key: randomKey(prefix),
      address: `172.16.${Math.floor(i / 250)}.${i % 250}`,
    }));
    const { answers } = await guess(guesses);
    expect(tally(answers), REPLAY).toEqual({
      '404 ACTIVATION_KEY_INVALID': PER_PREFIX,
      '429 RATE_LIMITED': PREFIX_GUESSES - PER_PREFIX,
    });
    totals.invalid += PER_PREFIX;
    totals.rateLimited += PREFIX_GUESSES - PER_PREFIX;
  });

  it('counts every refusal in the metrics, and every lockout', async () => {
    const page = readPrometheusText(await (await fetch(`${api}/metrics`)).text());
    expect(page.problems).toEqual([]);
    const attempts = (result: string) =>
      sampleValue(page, 'relais_activation_attempts_total', { result }) ?? 0;
    const failures = (code: string) =>
      sampleValue(page, 'relais_activation_failures_total', { isp: '', code }) ?? 0;
    expect(
      {
        unknown: attempts('unknown'),
        locked: attempts('locked'),
        rateLimited: attempts('rate-limited'),
        lockouts: sampleValue(page, 'relais_activation_lockouts_total') ?? 0,
      },
      REPLAY,
    ).toEqual({
      unknown: totals.invalid,
      locked: totals.locked,
      rateLimited: totals.rateLimited,
      lockouts: totals.lockouts,
    });
    expect({
      invalid: failures('ACTIVATION_KEY_INVALID'),
      locked: failures('ACTIVATION_LOCKED'),
      rateLimited: failures('RATE_LIMITED'),
    }).toEqual({ invalid: totals.invalid, locked: totals.locked, rateLimited: totals.rateLimited });
  });

  it('leaves the real keys working for their owners, from their own addresses', async () => {
    for (const [i, owner] of owners.entries()) {
      const answer = await activate(owner.key, `192.0.2.${i + 1}`);
      expect(answer, REPLAY).toMatchObject({ status: 200, code: 'activated' });
    }
    const activated = await ctx().licensingDb('licences').whereNotNull('activated_at');
    expect(activated.map((l) => l.id).sort()).toEqual(owners.map((o) => o.licenceId).sort());
  });
});
