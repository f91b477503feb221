/**
 * The privacy boundary, end to end (DESIGN.md, "The two sides and the privacy boundary"): a
 * whole Relais (`startRelais`, role all, both sides in this process) takes three snapshots from
 * two ISPs, one delivering keys by e-mail through a real SMTP relay and one by return file, so
 * every command kind reaches the server; then a key is activated, checked in, its download link
 * used, and two subscribers are erased. Afterwards every request sent to the server (and its
 * answer), every row of the licensing database, every log line and every Redis key of the run
 * is searched for each personal value of the feeds, plain, upper and lower case, hex and base64.
 * None may appear.
 *
 * The search itself (every form a value could take) is `test/harness/privacy-scan.ts`; the
 * demo month gets the same search in `test/chaos/privacy-month.chaos.test.ts`.
 *
 * The personal values are strings that cannot occur by chance (`PRIV-REF-A001`,
 * `Probe.A001@Privacy-Probe.example`, ...), so a hit is a leak. The positive controls (the
 * connector's own tables hold the refs and the scanner finds them there, the relay received the
 * mails) prove the values were really used and that the scan finds what is there.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type RunningRelais, startRelais } from '../cli/commands/start.js';
import type { PollResult } from '../connectors/intake/poll.js';
import { ispTokenOf } from '../licensing/isp-auth.js';
import { newId } from '../platform/ids.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { createLogger, REDACT_CENSOR } from '../platform/logger.js';
import { JOB_NAMES, QUEUE_NAMES } from '../queue/queues.js';
import { useTestContext } from './harness/context.js';
import { freePort } from './harness/ports.js';
import {
  dumpDatabase,
  dumpRedis,
  type PersonalValue,
  PersonalValues,
} from './harness/privacy-scan.js';
import { createTestRelay, type TestRelay } from './harness/smtp.js';
import { waitFor } from './harness/wait.js';

// ---------------------------------------------------------------------------------------------
// The feeds: customers whose every personal value is a probe

type Letter = 'A' | 'B';
const MAIL_ISP = 'probe-mail';
const FILES_ISP = 'probe-files';
const LETTER_OF: Record<string, Letter> = { [MAIL_ISP]: 'A', [FILES_ISP]: 'B' };
const WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

interface Probe {
  ref: string;
  email: string;
  name: string;
  address: string;
  phone: string;
}

/** Customer `n` of an ISP; `n` 98 and 99 are the rows the intake must reject. */
function probe(letter: Letter, n: number): Probe {
  const id = `${letter}${String(n).padStart(3, '0')}`;
  const word = WORDS[n % 10] as string;
  return {
    ref: n === 99 ? `PRIV-REF-${letter}99X` : `PRIV-REF-${id}`,
    email: n === 98 ? `Probe.${id}@@Privacy-Probe.example` : `Probe.${id}@Privacy-Probe.example`,
    name: `Probe Name${word}-${letter}${n}`,
    address: `${n} Impasse Privacyprobe-${id}, 99999 Probeville`,
    phone: `+33 6 99 ${letter === 'A' ? '01' : '02'} ${String(n).padStart(2, '0')} 77`,
  };
}

interface Row {
  n: number;
  offer: string;
  options?: string;
  status: 'Actif' | 'Suspendu' | 'Resilie';
}

const FIRST: Row[] = [
  { n: 1, offer: 'SECU_ESSENTIEL', status: 'Actif' },
  { n: 2, offer: 'SECU_FAMILLE', status: 'Actif' },
  { n: 3, offer: 'SECU_INTEGRAL', status: 'Actif' },
  { n: 4, offer: 'SECU_ESSENTIEL', options: 'PARE', status: 'Actif' },
  { n: 5, offer: 'SECU_FAMILLE', status: 'Actif' },
  { n: 6, offer: 'SECU_ESSENTIEL', options: 'SAUV+CTRL', status: 'Actif' },
  { n: 98, offer: 'SECU_ESSENTIEL', status: 'Actif' }, // rejected: not an e-mail address
  { n: 99, offer: 'SECU_ESSENTIEL', status: 'Actif' }, // rejected: ref does not match
];
/** An offer change (1), a suspension (2), a cancel by absence (3) and by status (4), a new one. */
const SECOND: Row[] = [
  { n: 1, offer: 'SECU_FAMILLE', status: 'Actif' },
  { n: 2, offer: 'SECU_FAMILLE', status: 'Suspendu' },
  { n: 4, offer: 'SECU_ESSENTIEL', options: 'PARE', status: 'Resilie' },
  { n: 5, offer: 'SECU_FAMILLE', status: 'Actif' },
  { n: 6, offer: 'SECU_ESSENTIEL', options: 'SAUV+CTRL', status: 'Actif' },
  { n: 7, offer: 'SECU_INTEGRAL', status: 'Actif' },
];
/** The suspended one resumes. */
const THIRD: Row[] = SECOND.map((r) => (r.n === 2 ? { ...r, status: 'Actif' } : r));
const SNAPSHOTS = [FIRST, SECOND, THIRD];
const ACCEPTED = [1, 2, 3, 4, 5, 6, 7];
const EVERY_N = [...ACCEPTED, 98, 99];

function renderCsv(letter: Letter, rows: Row[]): string {
  const header = 'Ref;Nom;Courriel;Adresse;Telephone;Offre;Options;Statut;Date effet';
  const lines = rows.map((r) => {
    const p = probe(letter, r.n);
    return [p.ref, p.name, p.email, p.address, p.phone, r.offer, r.options ?? '', r.status, ''];
  });
  return `${[header, ...lines.map((l) => l.join(';'))].join('\r\n')}\r\n`;
}

// ---------------------------------------------------------------------------------------------
// The needles: every personal value, searched in every form it could leak in (harness)

const PROBES = (() => {
  const all: PersonalValue[] = [
    { kind: 'e-mail domain', value: 'Privacy-Probe.example' },
    { kind: 'city', value: 'Probeville' },
  ];
  for (const letter of ['A', 'B'] as const) {
    for (const n of EVERY_N) {
      const p = probe(letter, n);
      all.push(
        { kind: 'customer ref', value: p.ref },
        { kind: 'e-mail', value: p.email },
        { kind: 'e-mail local part', value: p.email.split('@')[0] as string },
        { kind: 'name', value: p.name },
        { kind: 'surname', value: p.name.split(' ')[1] as string },
        { kind: 'address', value: p.address },
        { kind: 'street', value: p.address.split(', ')[0] as string },
        { kind: 'phone', value: p.phone },
        { kind: 'phone digits', value: p.phone.replace(/\D/g, '') },
      );
    }
  }
  return new PersonalValues(all);
})();

const personalValuesIn = (text: string) => PROBES.in(text);
const scan = (haystacks: Iterable<[string, string]>) => PROBES.scan(haystacks);

// ---------------------------------------------------------------------------------------------
// What crosses the boundary: every fetch of this process, recorded on its way through

interface Captured {
  method: string;
  url: string;
  headers: string;
  body: string;
  response: Promise<string>;
}

function bodyText(body: unknown): string {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return Buffer.from(body).toString('utf8');
  if (ArrayBuffer.isView(body)) {
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  }
  // A stream or form could not be read without consuming it: fail loudly instead of missing it.
  throw new Error(`privacy test cannot read a fetch body of type ${typeof body}`);
}

/** Wraps `globalThis.fetch` to record each request; returns the function that restores it. */
function captureFetch(into: Captured[]): () => void {
  const real = globalThis.fetch;
  const wrapped: typeof fetch = async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const entry: Omit<Captured, 'response'> = {
      method: init?.method ?? request?.method ?? 'GET',
      url: request ? request.url : String(input),
      headers: JSON.stringify([...new Headers(init?.headers ?? request?.headers).entries()]),
      body: request ? await request.clone().text() : bodyText(init?.body),
    };
    const response = await real(input, init);
    const answer = response
      .clone()
      .arrayBuffer()
      .then((b) => Buffer.from(b).toString('utf8'))
      .catch(() => '');
    into.push({ ...entry, response: answer });
    return response;
  };
  globalThis.fetch = wrapped;
  return () => {
    globalThis.fetch = real;
  };
}

// ---------------------------------------------------------------------------------------------
// The run

const relayPort = await freePort();

function probeIsp(delivery: Record<string, unknown>): string {
  return stringify({
    name: 'Relais Test ISP',
    timeZone: 'Europe/Paris',
    language: 'fr',
    intake: {
      mode: 'snapshot',
      transport: { type: 'local' },
      pickup: { pattern: 'probe_*.csv', completeness: { type: 'stable', minAgeS: 0 } },
      // Polls are asked by the test; the schedule must not take a file on its own meanwhile.
      schedule: { cron: '0 0 1 1 *' },
      format: { type: 'csv', delimiter: ';', encoding: 'utf-8' },
      fields: {
        customerRef: { from: 'Ref', pattern: '^PRIV-REF-[AB][0-9]{3}$' },
        offer: { from: 'Offre' },
        options: {
          from: 'Options',
          split: '+',
          map: { SAUV: 'backup', CTRL: 'parental-control', PARE: 'firewall' },
        },
        status: {
          from: 'Statut',
          case: 'upper',
          map: { ACTIF: 'active', SUSPENDU: 'suspended', RESILIE: 'cancelled' },
        },
        effectiveDate: { from: 'Date effet', date: 'dd/MM/yyyy' },
        email: { from: 'Courriel' },
      },
      safety: { maxCancelShare: 0.5 },
    },
    offers: {
      SECU_ESSENTIEL: ['antivirus'],
      SECU_FAMILLE: ['antivirus', 'firewall', 'parental-control'],
      SECU_INTEGRAL: ['antivirus', 'firewall', 'parental-control', 'backup'],
    },
    delivery,
  });
}

const ctx = useTestContext({
  isps: {
    [MAIL_ISP]: probeIsp({
      mode: 'email',
      email: {
        from: 'Relais Test ISP <cles@fai-test.example>',
        smtp: { host: '127.0.0.1', port: relayPort, timeoutMs: 2000 },
      },
    }),
    [FILES_ISP]: probeIsp({ mode: 'return-file' }),
  },
  deployment: { server: { installersDir: 'installers' }, shutdownTimeoutMs: 10_000 },
});

const INSTALLER = Buffer.from('antivirus installer bytes of the privacy test');
const FINGERPRINT = 'desk-0123456789abcdef';
const logChunks: string[] = [];
const captured: Captured[] = [];
let restoreFetch: (() => void) | undefined;
let relay: TestRelay;
let lifecycle: Lifecycle;
let running: RunningRelais;
let eventsConnection: Redis;
let events: QueueEvents;

/** Drops one export into the ISP's inbox the way an ISP should, and polls it through the queue. */
async function dropAndPoll(ispId: string, name: string, content: string): Promise<PollResult> {
  const isp = running.services.config.isps.get(ispId);
  if (isp?.intake.transport.type !== 'local') throw new Error(`no local inbox: ${ispId}`);
  const inbox = isp.intake.transport.inbox ?? join(isp.workDir, 'inbox');
  mkdirSync(inbox, { recursive: true });
  writeFileSync(join(inbox, `.${name}.part`), content);
  renameSync(join(inbox, `.${name}.part`), join(inbox, name));
  const job = await running.runtime.queues.feeds.add(
    JOB_NAMES.pollIsp,
    { ispId },
    { jobId: `privacy-poll-${ispId}-${newId('run')}`, attempts: 1 },
  );
  return (await job.waitUntilFinished(events, 20_000)) as PollResult;
}

/** Every provisioning batch sent and every key handed over (e-mail or return file). */
async function settled(): Promise<void> {
  const db = ctx().connectorDb;
  await waitFor('every batch sent and every key handed over', async () => {
    const batches = (await db('provisioning_batches').select('id', 'state', 'last_error')) as {
      id: number;
      state: string;
      last_error: string | null;
    }[];
    const failed = batches.find((b) => b.state === 'failed');
    if (failed) throw new Error(`batch ${failed.id} failed: ${failed.last_error}`);
    const pending = await db('deliveries').where({ state: 'pending' }).first();
    const done = batches.length > 0 && batches.every((b) => b.state === 'sent') && !pending;
    return done ? true : undefined;
  });
}

async function subscriberIdOf(ispId: string, n: number): Promise<string> {
  const row = await ctx()
    .connectorDb('subscribers')
    .where({ isp_id: ispId, customer_ref: probe(LETTER_OF[ispId] as Letter, n).ref })
    .first();
  return row.subscriber_id as string;
}

interface DesktopRun {
  licenceId: string;
  downloaded: Buffer;
  erased: { status: number; body: unknown }[];
}
let desktop: DesktopRun;

/** The desktop software and the ISP's back office, over the api as they would from outside. */
async function useKeysAndErase(): Promise<DesktopRun> {
  const api = running.apiUrl as string;
  const address = probe('A', 1).email.toLowerCase();
  const mail = relay.received.find((m) => m.to.some((to) => to.toLowerCase() === address));
  const text = mail?.parsed.text ?? '';
  const key = /[0-9A-Z]{5}(?:-[0-9A-Z]{5}){4}/.exec(text)?.[0];
  const link = /https?:\/\/\S+\/v1\/downloads\/\S+/.exec(text)?.[0];
  if (!key || !link) throw new Error('no key and link in the mail of customer A001');
  const json = { 'content-type': 'application/json', accept: 'application/json' };

  const activation = await fetch(`${api}/v1/activations`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ key, fingerprint: FINGERPRINT }),
  });
  expect(activation.status).toBe(200);
  const { licenceId, outcome } = (await activation.json()) as {
    licenceId: string;
    outcome: string;
  };
  expect(outcome).toBe('activated');

  const checkIn = await fetch(`${api}/v1/licences/${licenceId}/check-in`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ fingerprint: FINGERPRINT }),
  });
  expect(checkIn.status).toBe(200);

  const listing = await fetch(link, { headers: { accept: 'application/json' } });
  expect(listing.status).toBe(200);
  const { modules } = (await listing.json()) as { modules: { module: string; url: string }[] };
  const antivirus = modules.find((m) => m.module === 'antivirus');
  if (!antivirus) throw new Error('the download link lists no antivirus');
  const download = await fetch(antivirus.url);
  expect(download.status).toBe(200);
  const downloaded = Buffer.from(await download.arrayBuffer());

  // The activated, checked-in, downloaded subscriber, and one never activated at the other ISP.
  const erased = [];
  for (const [ispId, n] of [
    [MAIL_ISP, 1],
    [FILES_ISP, 6],
  ] as const) {
    const token = ispTokenOf(running.services.config, running.licensing.keystore, ispId);
    const res = await fetch(`${api}/v1/subscribers/${await subscriberIdOf(ispId, n)}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    erased.push({ status: res.status, body: await res.json() });
  }
  return { licenceId, downloaded, erased };
}

beforeAll(async () => {
  const c = ctx();
  mkdirSync(join(c.dir, 'installers'), { recursive: true });
  for (const module of ['firewall', 'parental-control', 'backup']) {
    writeFileSync(join(c.dir, 'installers', `${module}.bin`), `${module} installer`);
  }
  writeFileSync(join(c.dir, 'installers', 'antivirus.bin'), INSTALLER);
  relay = await createTestRelay({ port: relayPort });
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logChunks.push(String(chunk));
        done();
      },
    }),
  });
  restoreFetch = captureFetch(captured);
  lifecycle = new Lifecycle(log, 10_000);
  running = await startRelais(c.config, 'all', log, lifecycle, { port: 0 });
  eventsConnection = new Redis(c.config.deployment.redis.url, { maxRetriesPerRequest: null });
  events = new QueueEvents(QUEUE_NAMES.feeds, { connection: eventsConnection, prefix: c.prefix });
  await events.waitUntilReady();

  for (const [round, rows] of SNAPSHOTS.entries()) {
    for (const ispId of [MAIL_ISP, FILES_ISP]) {
      const name = `probe_2026120${round + 1}.csv`;
      const result = await dropAndPoll(ispId, name, renderCsv(LETTER_OF[ispId] as Letter, rows));
      expect(result.received.map((r) => `${r.name} ${r.status}`)).toEqual([`${name} applied`]);
    }
    // Each round provisioned before the next, as nightly snapshots would be.
    await settled();
  }
  desktop = await useKeysAndErase();
}, 60_000);

afterAll(async () => {
  restoreFetch?.();
  await events?.close();
  eventsConnection?.disconnect();
  await lifecycle?.shutdown('privacy test done');
  await relay?.stop();
});

const logText = () => logChunks.join('');
const logLines = () =>
  logText()
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

// ---------------------------------------------------------------------------------------------

describe('the privacy boundary', () => {
  it('ran the whole flow: every command kind, the desktop paths and the erasures', async () => {
    const feeds = await ctx().connectorDb('feeds').select('isp_id', 'status', 'rejected');
    expect(feeds).toHaveLength(6);
    expect(feeds.every((f) => f.status === 'applied')).toBe(true);
    // The two bad rows of the first snapshot of each ISP.
    expect(feeds.reduce((n, f) => n + Number(f.rejected), 0)).toBe(4);
    expect(desktop.downloaded.equals(INSTALLER)).toBe(true);
    expect(desktop.erased.map((e) => e.status)).toEqual([200, 200]);
    const devices = await ctx().licensingDb('devices').where({ licence_id: desktop.licenceId });
    expect(devices).toHaveLength(0); // erased with its subscriber
  });

  it('sends the server nothing personal: every request and answer of the run is clean', async () => {
    const batches = captured.filter((c) => c.url.endsWith('/v1/provisioning/batches'));
    const reports = captured.filter((c) => c.url.endsWith('/v1/provisioning/deliveries'));
    // The capture is not empty: it holds every batch and every delivery report of the run.
    const rows = await ctx().connectorDb('provisioning_batches').count({ n: '*' });
    expect(batches.length).toBeGreaterThanOrEqual(Number(rows[0]?.n));
    const commands = batches.flatMap(
      (b) => (JSON.parse(b.body) as { commands: { key: string; kind: string }[] }).commands,
    );
    expect(new Set(commands.map((c) => c.kind))).toEqual(
      new Set(['subscribe', 'change', 'suspend', 'resume', 'cancel']),
    );
    const subscribes = new Set(commands.filter((c) => c.kind === 'subscribe').map((c) => c.key));
    expect(subscribes.size).toBe(ACCEPTED.length * 2);
    const reported = reports.flatMap(
      (r) => (JSON.parse(r.body) as { deliveries: { licenceId: string }[] }).deliveries,
    );
    expect(new Set(reported.map((d) => d.licenceId)).size).toBe(ACCEPTED.length * 2);
    expect(captured.some((c) => c.url.includes('/v1/activations'))).toBe(true);
    expect(captured.some((c) => c.method === 'DELETE')).toBe(true);

    const haystacks: [string, string][] = [];
    for (const [i, c] of captured.entries()) {
      const where = `request ${i} ${c.method} ${c.url}`;
      haystacks.push([`${where} (url, headers, body)`, `${c.url}\n${c.headers}\n${c.body}`]);
      haystacks.push([`${where} (answer)`, await c.response]);
    }
    expect(scan(haystacks)).toEqual([]);
  });

  it('stores nothing personal in any table of the licensing database', async () => {
    const { licensingDb, config } = ctx();
    const dump = await dumpDatabase(licensingDb, config.deployment.mysql.licensingDatabase);
    for (const table of ['subscriptions', 'licences', 'subscription_events', 'erasure_receipts']) {
      expect(dump.get(table), table).toBeTruthy();
    }
    expect(scan(dump)).toEqual([]);
  });

  it('logs nothing personal, on either side', () => {
    const lines = logLines();
    const messages = new Set(lines.map((l) => l.msg));
    // Lines of the licensing routes are there, so their silence about customers means something.
    for (const msg of ['provisioning batch applied', 'subscriber erased']) {
      expect(messages, msg).toContain(msg);
    }
    // And the connector's, which see the refs and addresses.
    for (const msg of ['feed applied', 'provisioning batch sent', 'keys delivered']) {
      expect(messages, msg).toContain(msg);
    }
    const lineTexts = logText().split('\n');
    expect(scan(lineTexts.map((line, i) => [`log line ${i + 1}: ${line}`, line]))).toEqual([]);
    // The redaction is a safety net (platform/logger.ts): no code should have needed it.
    expect(lineTexts.filter((line) => line.includes(REDACT_CENSOR))).toEqual([]);
  });

  it('queues nothing personal: no BullMQ key under the prefix holds a personal value', async () => {
    const dump = await dumpRedis(ctx().redis, ctx().prefix);
    const queues = new Set([...dump.keys()].map((k) => k.split(':')[1]));
    for (const queue of Object.values(QUEUE_NAMES)) expect(queues.has(queue), queue).toBe(true);
    expect(scan(dump)).toEqual([]);
  });

  describe('positive controls', () => {
    it('finds the customer refs where they belong: the connector subscribers table', async () => {
      const { connectorDb, config } = ctx();
      const dump = await dumpDatabase(connectorDb, config.deployment.mysql.connectorDatabase);
      const found = personalValuesIn(dump.get('subscribers') ?? '');
      for (const letter of ['A', 'B'] as const) {
        for (const n of ACCEPTED) expect(found).toContain(`customer ref ${probe(letter, n).ref}`);
      }
    });

    it('mailed every key of the e-mail ISP to its probe address, then forgot the address', async () => {
      const recipients = new Set(relay.received.flatMap((m) => m.to.map((t) => t.toLowerCase())));
      for (const n of ACCEPTED) expect(recipients).toContain(probe('A', n).email.toLowerCase());
      const db = ctx().connectorDb;
      const delivered = (await db('deliveries')
        .where({ isp_id: MAIL_ISP, state: 'delivered' })
        .pluck('subscriber_id')) as string[];
      expect(delivered).toHaveLength(ACCEPTED.length);
      expect(await db('contacts').whereIn('subscriber_id', delivered)).toEqual([]);
    });
  });
});
