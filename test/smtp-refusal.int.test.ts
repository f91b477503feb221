/**
 * The ISP's SMTP relay refusing, under a running Relais (`startRelais`, role all, schedules
 * off): a real relay (test/harness/smtp.ts) that answers some recipients 451 (try later) and
 * others 550 (no such mailbox), quoting the address in its reply as Postfix does. A feed brings
 * the customers in and the whole chain runs: intake, provisioning, key delivery by e-mail.
 *
 * The deferred keys are retried by the delivery queue on its own once the relay takes them
 * again, and each customer gets exactly one mail; the refused ones are recorded as failed with
 * the SMTP code only. Then every place Relais writes is searched for the addresses, in every
 * form (test/harness/privacy-scan.ts): every log line, every cell of both databases (the
 * connector's `contacts` held them sealed meanwhile, and forgets them once used), every Redis
 * key of the prefix (job payloads, failed reasons and stack traces of the retried jobs) and
 * every file of the data folder but the ISP's own export and its verbatim copy in the feed
 * store. None may appear, neither while the keys wait nor after.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RunningRelais } from '../cli/commands/start.js';
import type { Lifecycle } from '../platform/lifecycle.js';
import { packageRoot } from '../platform/package-root.js';
import { queueList } from '../queue/queue-metrics.js';
import { JOB_NAMES } from '../queue/queues.js';
import { encode, generateCustomers, renderCsv } from './generators/isp-exports.js';
import { useTestContext } from './harness/context.js';
import { dropInInbox, startLoggedRelais } from './harness/logged-relais.js';
import { waitSettled } from './harness/pipeline-state.js';
import { freePort } from './harness/ports.js';
import { databaseCells, dumpRedis, firstFindings, PersonalValues } from './harness/privacy-scan.js';
import { createTestRelay, type TestRelay } from './harness/smtp.js';
import { waitFor } from './harness/wait.js';

const ISP = 'mail-fai';
const CUSTOMERS = 24;
const relayPort = await freePort();
const addressOf = (n: number) => `Probe.Smtp${String(n).padStart(3, '0')}@relay-probe.example`;
/** Answered 451 until the relay is told to take them. */
const DEFERRED = [3, 10, 17, 22].map(addressOf);
/** Answered 550 for good. */
const REFUSED = [5, 14, 20].map(addressOf);

const customers = [...generateCustomers(CUSTOMERS, 71)].map((c, i) => ({
  ...c,
  status: 'active' as const,
  email: addressOf(i + 1),
}));

function mailFai(): Record<string, unknown> {
  const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
  return {
    ...shipped,
    intake: { ...shipped.intake, schedule: { cron: '0 0 1 1 *' } },
    delivery: {
      mode: 'email',
      email: {
        from: 'Demo FAI <securite@demo-fai.example>',
        smtp: { host: '127.0.0.1', port: relayPort, timeoutMs: 2_000 },
      },
    },
  };
}

const ctx = useTestContext({
  isps: { [ISP]: mailFai() },
  deployment: { shutdownTimeoutMs: 10_000 },
});
const probes = new PersonalValues(customers.map((c) => ({ kind: 'e-mail', value: c.email })));
let logLines: string[] = [];
let relay: TestRelay;
let lifecycle: Lifecycle;
let running: RunningRelais;
/** What the places held while the deferred keys waited, searched once the run is over. */
let whileWaiting: [string, string][] = [];

beforeAll(async () => {
  relay = await createTestRelay({ port: relayPort, quoteRecipient: true });
  for (const address of DEFERRED) relay.deferred.add(address);
  for (const address of REFUSED) relay.refused.add(address);
  ({ running, lifecycle, logLines } = await startLoggedRelais(ctx().config, {
    level: 'debug',
    schedules: false,
  }));

  const inbox = join(ctx().config.isps.get(ISP)?.workDir as string, 'inbox');
  dropInInbox(inbox, 'abonnes_20261201.csv', encode(renderCsv(customers), 'windows-1252'));
  await running.runtime.queues.feeds.add(JOB_NAMES.pollIsp, { ispId: ISP });

  // The relay deferred the first of them: the keys now wait, their addresses sealed.
  await waitFor('a deferred delivery', async () => {
    const row = await ctx()
      .connectorDb('deliveries')
      .where({ state: 'pending' })
      .where('attempts', '>', 0)
      .first();
    return row ? true : undefined;
  });
  whileWaiting = await placesRelaisWrites();
  relay.deferred.clear();
  await waitSettled(ctx(), queueList(running.runtime.queues), 60_000);
}, 90_000);

afterAll(async () => {
  await lifecycle?.shutdown('smtp refusal test done');
  await relay?.stop();
});

/** Every file under `dir`, as [path relative to it, content]. */
function filesUnder(dir: string, root = dir): [string, string][] {
  const files: [string, string][] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...filesUnder(path, root));
    else if (statSync(path).isFile())
      files.push([relative(root, path), readFileSync(path, 'latin1')]);
  }
  return files;
}

/** The ISP's own export: in its inbox (then processed/) and verbatim in the feed store. */
const isTheIspsExport = (path: string) =>
  /(^|\/)inbox\//.test(path) || /(^|\/)feeds\/[0-9a-f]{64}\.feed$/.test(path);

/** Every place Relais writes to, as haystacks named by where they are. */
async function placesRelaisWrites(): Promise<[string, string][]> {
  const c = ctx();
  const { mysql } = c.config.deployment;
  const redis = await dumpRedis(c.redis, c.prefix);
  return [
    ...logLines
      .join('')
      .split('\n')
      .map((line, i): [string, string] => [`log line ${i + 1}`, line]),
    ...(await databaseCells(c.connectorDb, mysql.connectorDatabase)),
    ...(await databaseCells(c.licensingDb, mysql.licensingDatabase)),
    ...[...redis].map(([key, text]): [string, string] => [`redis ${key}`, text]),
    ...filesUnder(c.dir)
      .filter(([path]) => !isTheIspsExport(path))
      .map(([path, text]): [string, string] => [`file ${path}`, text]),
  ];
}

const mailsTo = (address: string) =>
  relay.received.filter((m) => m.to.some((to) => to.toLowerCase() === address.toLowerCase()));

describe('key delivery through a refusing relay', () => {
  it('retried the deferred keys on its own and mailed every accepted customer exactly once', async () => {
    for (const c of customers) {
      const expected = REFUSED.includes(c.email) ? 0 : 1;
      expect(mailsTo(c.email), c.email).toHaveLength(expected);
    }
    const rows = await ctx()
      .connectorDb('deliveries')
      .where({ isp_id: ISP })
      .select('state', 'attempts');
    expect(rows.filter((r) => r.state === 'delivered')).toHaveLength(CUSTOMERS - REFUSED.length);
    // At least the first deferred key was tried twice: refused for now, then taken.
    expect(rows.some((r) => r.state === 'delivered' && Number(r.attempts) >= 2)).toBe(true);
  });

  it('records the refused ones as failed with the SMTP code only, and forgets every address', async () => {
    const failed = await ctx().connectorDb('deliveries').where({ isp_id: ISP, state: 'failed' });
    expect(failed.map((r) => r.last_error)).toEqual(
      REFUSED.map(() => 'relay refused the recipient (550 5.1.1)'),
    );
    expect(await ctx().connectorDb('contacts')).toEqual([]);
  });

  it('wrote no address anywhere while the keys waited: logs, databases, Redis, files', () => {
    const sealed = whileWaiting.filter(([where]) => where.startsWith('contacts.email'));
    expect(sealed.length, 'addresses held (sealed) while the keys waited').toBeGreaterThan(0);
    expect(firstFindings(probes.scan(whileWaiting))).toEqual([]);
  });

  it('wrote no address anywhere once the run was over', async () => {
    const places = await placesRelaisWrites();
    // The log holds the refusal path, so its silence about addresses means something.
    const messages = new Set(logLines.map((line) => (JSON.parse(line) as { msg: string }).msg));
    for (const msg of ['smtp relay did not take the keys, retrying', 'keys delivered']) {
      expect(messages, msg).toContain(msg);
    }
    expect(places.some(([where]) => where.includes(':delivery:'))).toBe(true);
    expect(firstFindings(probes.scan(places))).toEqual([]);
  });

  it('finds the addresses where they belong: the export the ISP dropped (the scan works)', () => {
    const exports = filesUnder(ctx().dir).filter(([path]) => isTheIspsExport(path));
    expect(exports.length).toBeGreaterThan(0);
    const found = probes.scan(exports).flatMap((f) => f.found);
    for (const c of customers) expect(found).toContain(`e-mail ${c.email}`);
  });
});
