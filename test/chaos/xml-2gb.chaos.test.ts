/**
 * 2 GB hostile XML bodies end to end (issue 7), through real relais processes:
 * - a sparse 2 GB file in a polled inbox (`relais poll` in a child process): the start of an
 *   alpha-telecom export, then 2 GB of NUL bytes, as a preallocated file never filled leaves;
 * - a 2 GB alpha-telecom export whose first e-mail never ends (test/generators/hostile-xml.ts),
 *   pushed to the api of `relais start --role all` for an ISP whose cap lets it in;
 * - the same push to an ISP with the default 100 MB cap.
 * The pushed body is generated as it is sent and never exists in memory.
 *
 * Bounds: the read refuses the file less than 5 s after it starts (the offending bytes come
 * in its first 200 bytes; copying and hashing the 2 GB into the feed store before the read is
 * transfer, not parsing), the 100 MB cap answers 413 less than 10 s after the first byte, and
 * no relais process peaks above 400 MiB of resident memory (idle, one is about 200 MiB).
 *
 * Takes about 35 s and up to 4 GB of disk for a moment; everything is removed afterwards.
 */

import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { packageRoot } from '../../platform/package-root.js';
import { EXPORT_HEAD, hostileXmlCases, type PullState } from '../generators/hostile-xml.js';
import { collect, spawnCli } from '../harness/cli.js';
import { useTestContext } from '../harness/context.js';
import { freePort } from '../harness/ports.js';
import { watchPeakRss } from '../harness/process-memory.js';

const GB = 1024 ** 3;
const MAX_READ_MS = 5_000;
const MAX_CAP_MS = 10_000;
const MAX_PEAK_RSS_BYTES = 400 * 1024 ** 2;
const SECRET = 'alpha-2gb-push-secret-0123456789abcdef';
const CASE = 'a 2 GB text node';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/alpha-telecom.yaml'), 'utf8'));
const { pickup: _pickup, schedule: _schedule, ...pushIntake } = shipped.intake;

/** Alpha Télécom, polled from its inbox as soon as a file is there (no .done marker). */
const polled = {
  ...shipped,
  intake: {
    ...shipped.intake,
    pickup: { pattern: 'clients-*.xml', completeness: { type: 'stable', minAgeS: 0 } },
  },
};
/** Alpha Télécom pushing over HTTP, with a cap above 2 GB or the default one. */
const pushed = (maxBodyBytes?: number) => ({
  ...shipped,
  intake: {
    ...pushIntake,
    transport: { type: 'http', secret: SECRET, ...(maxBodyBytes ? { maxBodyBytes } : {}) },
  },
});

const ctx = useTestContext({
  isps: {
    'alpha-poll': stringify(polled),
    'alpha-push': stringify(pushed(3 * GB)),
    'alpha-capped': stringify(pushed()),
  },
});

/** A relais.yaml for the child processes, on this test's databases and Redis prefix. */
function writeConfig(extra: Record<string, unknown> = {}): string {
  const { mysql, redis } = ctx().config.deployment;
  const file = join(ctx().dir, 'relais-2gb.yaml');
  writeFileSync(
    file,
    stringify({
      mysql: {
        connectorDatabase: mysql.connectorDatabase,
        licensingDatabase: mysql.licensingDatabase,
      },
      redis: { prefix: redis.prefix },
      paths: { dataDir: 'var' },
      log: { level: 'warn', pretty: false },
      shutdownTimeoutMs: 5_000,
      ...extra,
    }),
  );
  return file;
}

function hostileBody(): { chunks: () => Generator<Buffer>; state: PullState } {
  const state: PullState = { offendingAtMs: undefined, pulledBytes: 0 };
  const hostile = hostileXmlCases('http://unused', state)[CASE];
  if (hostile === undefined) throw new Error(`no case ${CASE}`);
  return { chunks: () => hostile.chunks(), state };
}

async function feedsOf(ispId: string) {
  return ctx().connectorDb('feeds').where({ isp_id: ispId }).orderBy('received_at');
}

async function waitForFailedFeed(ispId: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [feed] = await feedsOf(ispId);
    if (feed?.status === 'failed') return feed;
    if (Date.now() > deadline)
      throw new Error(`feed of ${ispId} not failed: ${JSON.stringify(feed)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Checks the ledger's record of the refusal: code, file named, reason, read time. */
function expectRefused(feed: Record<string, unknown>, code: string, message: RegExp): void {
  expect(feed).toMatchObject({ status: 'failed', error_code: code, applied: 0 });
  expect(Number(feed.size_bytes)).toBe(2 * GB);
  expect(feed.error_message).toMatch(message);
  const readMs = (feed.finished_at as Date).getTime() - (feed.started_at as Date).getTime();
  expect(readMs).toBeLessThan(MAX_READ_MS);
}

describe('a sparse 2 GB XML file in a polled inbox', () => {
  it('is refused by relais poll with the file and the reason, in bounded memory', async () => {
    const config = writeConfig();
    const inbox = ctx().config.isps.get('alpha-poll')?.intake.transport as { inbox: string };
    mkdirSync(inbox.inbox, { recursive: true });
    const path = join(inbox.inbox, 'clients-2gb.xml');
    try {
      writeFileSync(path, `${EXPORT_HEAD}  <at:Client id="10000001"><Contact><Email>`);
      truncateSync(path, 2 * GB);
      expect(statSync(path).size).toBe(2 * GB);

      const child = spawnCli(['poll', '--isp', 'alpha-poll', '--config', config]);
      const memory = watchPeakRss(child.pid as number);
      const result = await collect(child, 120_000);
      const peakBytes = memory.stop();

      expect(result.stdout).toMatch(/alpha-poll: clients-2gb\.xml failed \(feed_\w+\)/);
      const [feed] = await feedsOf('alpha-poll');
      const reason = 'the xml is not well-formed: disallowed character.';
      expectRefused(
        feed,
        'FEED_XML_MALFORMED',
        new RegExp(`^clients-2gb\\.xml:3:\\d+: ${reason}$`),
      );
      expect(peakBytes).toBeLessThan(MAX_PEAK_RSS_BYTES);
      console.log(`polled 2 GB: poll process peak RSS ${Math.round(peakBytes / 1024 ** 2)} MiB`);
    } finally {
      rmSync(path, { force: true });
    }
  });
});

/** An HTTP/1.1 answer with a Content-Length, once it is whole. */
function parseAnswer(bytes: Buffer): { status: number; json: Record<string, unknown> } | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = bytes.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
  const body = bytes.subarray(end + 4);
  if (!Number.isInteger(status) || !Number.isInteger(length) || body.length < length)
    return undefined;
  return { status, json: JSON.parse(body.subarray(0, length).toString('utf8')) };
}

describe('a 2 GB XML body pushed to the api', () => {
  let relais: ChildProcess | undefined;
  let done: ReturnType<typeof collect> | undefined;
  let baseUrl: string;
  let port: number;

  afterAll(async () => {
    relais?.kill('SIGTERM');
    await done?.catch(() => undefined);
  });

  async function startRelais(): Promise<number> {
    port = await freePort();
    relais = spawnCli(['start', '--role', 'all', '--config', writeConfig({ http: { port } })]);
    done = collect(relais, 300_000);
    baseUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await fetch(`${baseUrl}/readyz`).catch(() => undefined);
      if (ready?.status === 200) return relais.pid as number;
      if (Date.now() > deadline) throw new Error('relais did not become ready');
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Streams the hostile body to `isp`, signed, over a plain socket; resolves with the status
   * and JSON answer. A plain socket, because the server may answer and close while the body is
   * still going out: Node's HTTP client then reports the write's EPIPE and drops the answer it
   * had received, where a sender reading its socket (as curl does) still sees the 413.
   */
  function push(isp: string, signature: string, timestamp: number) {
    const body = hostileBody();
    return new Promise<{
      status: number;
      json: Record<string, unknown>;
      state: PullState;
      firstByteMs: number;
    }>((resolve, reject) => {
      const head = [
        `POST /v1/isps/${isp}/feeds HTTP/1.1`,
        `host: 127.0.0.1:${port}`,
        'content-type: application/xml',
        `content-length: ${2 * GB}`,
        `x-relais-timestamp: ${timestamp}`,
        `x-relais-signature: ${signature}`,
        'x-relais-filename: clients-2gb-push.xml',
        'connection: close',
      ].join('\r\n');
      const firstByteMs = performance.now();
      const socket = connect(port, '127.0.0.1');
      const source = Readable.from(body.chunks());
      let received = Buffer.alloc(0);
      let writeError: Error | undefined;
      let settled = false;
      const settle = (answer?: { status: number; json: Record<string, unknown> }) => {
        if (settled) return;
        settled = true;
        source.destroy();
        socket.destroy();
        if (answer) resolve({ ...answer, state: body.state, firstByteMs });
        else {
          const text = received.toString('utf8').slice(0, 300);
          const exit = `relais exit code ${relais?.exitCode}, signal ${relais?.signalCode}`;
          reject(new Error(`no answer (write: ${writeError?.message}; ${exit}); got ${text}`));
        }
      };
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const answer = parseAnswer(received);
        if (answer) settle(answer);
      });
      // The write side failing is expected once the server answered; the read side decides.
      socket.on('error', (err) => {
        writeError = err;
      });
      socket.on('close', () => settle(parseAnswer(received)));
      socket.write(`${head}\r\n\r\n`);
      // Not ended after the body: a half-closed socket makes Node's server drop the request.
      source.pipe(socket, { end: false }).on('error', () => undefined);
    });
  }

  function sign(timestamp: number): string {
    const hmac = createHmac('sha256', SECRET).update(`${timestamp}.`);
    for (const chunk of hostileBody().chunks()) hmac.update(chunk);
    return `sha256=${hmac.digest('hex')}`;
  }

  it('is stored by an ISP whose cap allows it, then refused with the file and the reason', async () => {
    const pid = await startRelais();
    const memory = watchPeakRss(pid);
    const timestamp = Math.floor(Date.now() / 1000);
    const answer = await push('alpha-push', sign(timestamp), timestamp);

    expect(answer.status).toBe(202);
    const feed = await waitForFailedFeed('alpha-push', 60_000);
    expect(feed.id).toBe(answer.json.feedId);
    const reason = 'a text, attribute value, comment or name is longer than 65536 bytes';
    expectRefused(feed, 'FEED_XML_LIMIT', new RegExp(`^clients-2gb-push\\.xml:3:\\d+: ${reason}$`));
    const peakBytes = memory.stop();
    expect(peakBytes).toBeLessThan(MAX_PEAK_RSS_BYTES);
    console.log(`pushed 2 GB: relais peak RSS ${Math.round(peakBytes / 1024 ** 2)} MiB`);
  });

  it('is answered 413 after about 100 MB by an ISP with the default cap', async () => {
    const memory = watchPeakRss(relais?.pid as number);
    const answer = await push(
      'alpha-capped',
      `sha256=${'0'.repeat(64)}`,
      Math.floor(Date.now() / 1000),
    );

    expect(answer).toMatchObject({ status: 413, json: { code: 'FEED_TOO_LARGE' } });
    expect(performance.now() - answer.firstByteMs).toBeLessThan(MAX_CAP_MS);
    expect(answer.state.pulledBytes).toBeLessThan(200 * 1024 ** 2);
    expect(await feedsOf('alpha-capped')).toEqual([]);
    expect(memory.stop()).toBeLessThan(MAX_PEAK_RSS_BYTES);
  });
});
