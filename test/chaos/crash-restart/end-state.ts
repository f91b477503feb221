/**
 * What a run of the feed stream leaves in both databases and the outboxes, by customer ref,
 * so a run under SIGKILLs can be compared with a clean one (subscriber, licence and batch ids
 * are random, and batch ids interleave differently between runs).
 *
 * "Equal" means, for every ISP and customer ref:
 * - connector subscriber map: status, modules, offer and version (the count of changes applied);
 * - subscription server: the subscription's status, modules and version, and its licences
 *   (how many, each one's status, period and device limit);
 * - commands: the connector's commands (version, kind, status, modules) as written to the
 *   outbox, and the server's record of each command key (the ledger events it wrote under that
 *   key, or the stored answer of a command that wrote none): one record per key, none missing,
 *   none the connector never sent;
 * - commands refused for good (their codes);
 * - keys handed over: how many keys reached the return files, and whether the licence's live
 *   key is among them;
 * - feed ledger: per file name, each ledger row's outcome and counts (duplicates listed apart).
 * Not compared: instants (received, sent, effective-by-absence), ids, batch boundaries, retry
 * counts and re-issued keys (a key re-issued after a lost answer is the recovery working); those
 * are reported as figures.
 *
 * `integrity` lists what must hold in any run on its own (no duplicate command key, every
 * command answered by the server, every batch sent, every key delivered, one subscription per
 * mapped subscriber); the proof expects it empty in both runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalKey, hashKey } from '../../../licensing/activation-key.js';
import { openKeystore } from '../../../licensing/keystore.js';
import { decodeCommands } from '../../../mappings/provisioning-command.js';
import type { TestContext } from '../../harness/context.js';
import { STREAM_ISPS } from './feed-stream.js';

export interface EndState {
  subscribers: string[];
  subscriptions: string[];
  licences: string[];
  commands: string[];
  serverRecords: string[];
  rejections: string[];
  keys: string[];
  feeds: string[];
}

export interface RunFigures {
  batches: number;
  commands: number;
  batchAttempts: number;
  /** Why batches needed more than one attempt (last error of each). */
  retried: string[];
  reissuedKeys: number;
  duplicateFeeds: number;
  returnFiles: number;
}

export interface RunOutcome {
  state: EndState;
  integrity: string[];
  figures: RunFigures;
}

/** `<subscriberId>:v<version>`, optionally with the suffix of a second event of the command. */
const COMMAND_KEY = /^(sub_[0-9a-z]+):v(\d+)(?::(status|modules))?$/;

interface SubscriberRow {
  isp_id: string;
  customer_ref: string;
  subscriber_id: string;
  status: string;
  modules: string;
  offer: string | null;
  version: number;
}

/** Reads everything a run left behind; `ctx` is the run's test context. */
export async function readOutcome(ctx: TestContext): Promise<RunOutcome> {
  const db = ctx.connectorDb;
  const lic = ctx.licensingDb;
  const integrity: string[] = [];
  const isps = [...STREAM_ISPS];

  const subscribers: SubscriberRow[] = await db('subscribers').whereIn('isp_id', isps);
  const refOf = new Map(subscribers.map((s) => [s.subscriber_id, `${s.isp_id} ${s.customer_ref}`]));
  const named = (subscriberId: string) => refOf.get(subscriberId) ?? `unmapped ${subscriberId}`;

  const subscriptions = await lic('subscriptions').whereIn('isp_id', isps);
  const serverIds = new Set(subscriptions.map((s) => s.subscriber_id as string));
  for (const s of subscribers) {
    if (!serverIds.has(s.subscriber_id))
      integrity.push(`no subscription for ${named(s.subscriber_id)}`);
  }
  for (const s of subscriptions) {
    if (!refOf.has(s.subscriber_id))
      integrity.push(`subscription ${s.subscriber_id} maps to no ref`);
  }

  const licences = await lic('licences').whereIn('isp_id', isps);
  const licencesOf = new Map<string, typeof licences>();
  for (const l of licences) {
    const list = licencesOf.get(l.subscriber_id) ?? [];
    list.push(l);
    licencesOf.set(l.subscriber_id, list);
  }

  const batches = await db('provisioning_batches').whereIn('isp_id', isps).orderBy('id');
  const commands = batches.flatMap((b) =>
    decodeCommands(b.commands).map((c) => ({ ...c, ispId: b.isp_id as string })),
  );
  const sentKeys = new Map<string, number>();
  for (const c of commands) sentKeys.set(c.key, (sentKeys.get(c.key) ?? 0) + 1);
  for (const [key, n] of sentKeys) {
    if (n > 1)
      integrity.push(`command ${key} (${named(key.split(':')[0] as string)}) written ${n} times`);
  }
  for (const b of batches) {
    if (b.state !== 'sent')
      integrity.push(`batch ${b.id} of ${b.isp_id} is ${b.state}: ${b.last_error}`);
  }

  const records = await serverRecords(ctx, isps);
  for (const key of sentKeys.keys()) {
    if (!records.has(key))
      integrity.push(
        `command ${key} (${named(key.split(':')[0] as string)}) never recorded by the server`,
      );
  }
  for (const key of records.keys()) {
    if (!sentKeys.has(key))
      integrity.push(`server recorded ${key}, which the connector never wrote`);
  }

  const pending = await db('deliveries').whereIn('isp_id', isps).whereNot({ state: 'delivered' });
  for (const d of pending) integrity.push(`key of ${named(d.subscriber_id)} is ${d.state}`);

  const delivered = deliveredKeys(ctx);
  const secret = openKeystore(ctx.config.deployment.signing.keysDir).keyHashSecret;
  const keys: string[] = [];
  for (const s of subscribers) {
    const own = licencesOf.get(s.subscriber_id) ?? [];
    const handed = delivered.byRef.get(`${s.isp_id} ${s.customer_ref}`) ?? [];
    const hashes = new Set(
      handed.map((k) => hashKey(secret, canonicalKey(k).canonical).toString('hex')),
    );
    const live = own.filter((l) => hashes.has(Buffer.from(l.key_hash).toString('hex'))).length;
    if (live !== own.length)
      integrity.push(
        `${s.isp_id} ${s.customer_ref}: ${own.length - live} licence keys never handed over`,
      );
    keys.push(`${s.isp_id} ${s.customer_ref} keys ${handed.length} live ${live}/${own.length}`);
  }

  for (const isp of isps) {
    const workDir = ctx.config.isps.get(isp)?.workDir as string;
    for (const path of leftovers(workDir)) integrity.push(`${isp}: temporary file left: ${path}`);
  }

  const rejections = await db('provisioning_rejections').whereIn('isp_id', isps);
  const feeds = await db('feeds').whereIn('isp_id', isps).orderBy('received_at');
  const events = await lic('subscription_events')
    .whereIn('isp_id', isps)
    .where({ type: 'key-reissued' })
    .count({ n: '*' });

  return {
    state: {
      subscribers: subscribers
        .map(
          (s) =>
            `${s.isp_id} ${s.customer_ref} ${s.status} [${s.modules}] ${s.offer} v${s.version}`,
        )
        .sort(),
      subscriptions: subscriptions
        .map((s) => `${named(s.subscriber_id)} ${s.status} [${s.modules}] v${s.version}`)
        .sort(),
      licences: [...licencesOf.entries()]
        .map(([id, list]) => {
          const each = list.map((l) => `${l.status}/${l.period}/${l.device_limit}`).sort();
          return `${named(id)} ${list.length}: ${each.join(' ')}`;
        })
        .sort(),
      commands: commands
        .map((c) => `${named(c.subscriberId)} v${c.version} ${c.kind} ${c.status} [${c.modules}]`)
        .sort(),
      serverRecords: [...records.entries()]
        .map(([key, what]) => {
          const [, id, version] = COMMAND_KEY.exec(key) as RegExpExecArray;
          return `${named(id as string)} v${version} ${what.sort().join('+')}`;
        })
        .sort(),
      rejections: rejections.map((r) => `${named(r.subscriber_id)} ${r.code}`).sort(),
      keys: keys.sort(),
      feeds: feeds
        .filter((f) => f.status !== 'duplicate')
        .map(
          (f) =>
            `${f.isp_id} ${f.name} ${f.status} ${f.records} records: ${f.applied} applied, ${f.rejected} rejected, +${f.subscribes} ~${f.changes} s${f.suspends} r${f.resumes} -${f.cancels}`,
        )
        .sort(),
    },
    integrity,
    figures: {
      batches: batches.length,
      commands: commands.length,
      batchAttempts: batches.reduce((n, b) => n + Number(b.attempts), 0),
      retried: batches
        .filter((b) => Number(b.attempts) > 1)
        .map((b) => `${b.isp_id} ×${b.attempts}: ${b.last_error}`),
      reissuedKeys: Number(events[0]?.n ?? 0),
      duplicateFeeds: feeds.filter((f) => f.status === 'duplicate').length,
      returnFiles: delivered.files,
    },
  };
}

/**
 * The server's record of each command key: the ledger events written under it (a second event
 * of one command carries a `:status` or `:modules` suffix) and the stored answer of a command
 * that wrote no event (`provisioning_requests`).
 */
async function serverRecords(ctx: TestContext, isps: string[]): Promise<Map<string, string[]>> {
  const lic = ctx.licensingDb;
  const records = new Map<string, string[]>();
  const add = (key: string, what: string) => {
    const match = COMMAND_KEY.exec(key);
    if (!match) return;
    const base = `${match[1]}:v${match[2]}`;
    records.set(base, [...(records.get(base) ?? []), what]);
  };
  const events = await lic('subscription_events')
    .whereIn('isp_id', isps)
    .whereNotNull('idempotency_key')
    .select('idempotency_key', 'type');
  for (const e of events) add(e.idempotency_key, e.type);
  const requests = await lic('provisioning_requests').whereIn('isp_id', isps);
  for (const r of requests) add(r.idempotency_key, `answer:${JSON.parse(r.result).outcome}`);
  return records;
}

/**
 * Temporary files (`*.tmp`, `*.part`) anywhere under `dir`: each writer renames its own into
 * place or removes it, so one left behind after the run settled is debris a crash left.
 */
export function leftovers(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(tmp|part)$/.test(entry.name)) found.push(path.slice(dir.length + 1));
    }
  };
  walk(dir);
  return found;
}

/** Keys found in the ISPs' return files (`<workDir>/outbox/keys/keys-*.csv`), by ISP and ref. */
function deliveredKeys(ctx: TestContext): { byRef: Map<string, string[]>; files: number } {
  const byRef = new Map<string, string[]>();
  let files = 0;
  for (const isp of STREAM_ISPS) {
    const dir = join(ctx.config.isps.get(isp)?.workDir as string, 'outbox', 'keys');
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => /^keys-.*\.csv$/.test(n));
    } catch {
      continue;
    }
    for (const name of names) {
      files++;
      const rows = readFileSync(join(dir, name), 'utf8').split('\r\n').slice(1).filter(Boolean);
      for (const row of rows) {
        const [ref, key] = row.split(';');
        const id = `${isp} ${ref}`;
        byRef.set(id, [...(byRef.get(id) ?? []), key as string]);
      }
    }
  }
  return { byRef, files };
}

/** The first `limit` lines of each section that differ, as readable text ('' when equal). */
export function differences(actual: EndState, expected: EndState, limit = 8): string {
  const out: string[] = [];
  for (const section of Object.keys(expected) as (keyof EndState)[]) {
    const have = new Set(actual[section]);
    const want = new Set(expected[section]);
    const missing = expected[section].filter((l) => !have.has(l));
    const extra = actual[section].filter((l) => !want.has(l));
    const counts =
      actual[section].length !== expected[section].length
        ? ` (${actual[section].length} lines, clean ${expected[section].length})`
        : '';
    if (missing.length === 0 && extra.length === 0 && counts === '') continue;
    out.push(`${section}${counts}:`);
    for (const l of missing.slice(0, limit)) out.push(`  - ${l}`);
    for (const l of extra.slice(0, limit)) out.push(`  + ${l}`);
  }
  return out.join('\n');
}
