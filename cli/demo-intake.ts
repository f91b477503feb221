/**
 * The intake part of `relais demo`: plays the shipped sample exports (`config/samples/<isp>/`)
 * through the running Relais the way the ISPs would deliver them. Each round drops the next file
 * of every ISP into its inbox (data first, its done marker after), then asks the feeds worker
 * for a poll through the queue, exactly as a scheduled tick does, and reports the ledger entry.
 *
 * @remarks Safe to run again: a file already applied by an earlier demo comes back as a
 * duplicate of its first feed, which is what the ledger promises. Nothing is deleted.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import picomatch from 'picomatch';
import type { IspConfig } from '../config/load.js';
import type { Feed } from '../connectors/feed-ledger.js';
import type { PollResult } from '../connectors/intake/poll.js';
import { newId } from '../platform/ids.js';
import { connectRedis } from '../platform/redis.js';
import { JOB_NAMES } from '../queue/queues.js';
import { diffSummary } from './commands/feeds.js';
import type { RunningRelais } from './commands/start.js';
import { out } from './output.js';

/** How long one poll may take before the demo gives up on it. */
const POLL_TIMEOUT_MS = 60_000;

interface SampleDrop {
  /** The data file, then what must follow it (a done marker). */
  files: string[];
}

/** The ISP's sample exports in delivery order: name order, each with its companions. */
export function sampleDrops(isp: IspConfig, samplesDir: string): SampleDrop[] {
  const dir = join(samplesDir, isp.id);
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).sort();
  const isData = picomatch(isp.intake.pickup.pattern);
  return names
    .filter((name) => isData(name))
    .map((name) => ({
      files: [name, ...names.filter((other) => other !== name && other.startsWith(`${name}.`))],
    }));
}

/** Copies a file into an inbox under a temporary name, then renames it, as an ISP should. */
export function deliver(from: string, inbox: string, name: string): void {
  mkdirSync(inbox, { recursive: true });
  const temp = join(inbox, `.${name}.part`);
  copyFileSync(from, temp);
  renameSync(temp, join(inbox, name));
}

function feedLine(feed: Feed): string {
  const base = `${feed.records} records, ${feed.applied} applied, ${feed.rejected} rejected`;
  const detail = `${base}; changes ${diffSummary(feed)}, ${feed.batches} provisioning batch(es)`;
  switch (feed.status) {
    case 'applied':
      return `applied: ${detail}`;
    case 'held':
      return `HELD for approval (${feed.errorMessage}); relais feeds approve ${feed.id}`;
    case 'failed':
      return `FAILED: ${feed.errorCode}: ${feed.errorMessage}`;
    default:
      return `${feed.status}: ${detail}`;
  }
}

/** Prints what each received file became; returns the feeds held for approval. */
async function reportPoll(running: RunningRelais, result: PollResult): Promise<Feed[]> {
  const { ledger } = running.runtime;
  const held: Feed[] = [];
  for (const received of [...result.received, ...result.settled]) {
    const feed = (await ledger.get(received.feedId)) as Feed;
    if (feed.status === 'duplicate') {
      const original = (await ledger.get(feed.duplicateOf as string)) as Feed;
      out(`     ${received.name}: duplicate of ${original.id}, received by an earlier run`);
      out(`       (the first copy is ${original.status}; this one changes nothing)`);
      continue;
    }
    out(`     ${received.name} -> ${feed.id}`);
    out(`       ${feedLine(feed)}`);
    if (feed.status === 'held') held.push(feed);
    if (feed.rejected > 0) {
      const dir = join(running.services.config.isps.get(feed.ispId)?.workDir ?? '', 'outbox');
      out(`       rejects returned to the ISP in ${join(dir, 'rejects')}`);
      for (const reject of await ledger.rejectsOf(feed.id, 3)) {
        out(`         line ${reject.line} ${reject.field ?? ''}: ${reject.reason}`);
      }
    }
  }
  for (const skipped of result.skipped) out(`     ${skipped.name}: not taken (${skipped.reason})`);
  return held;
}

/** One ISP's export of one day. */
export interface DayDrop {
  isp: IspConfig;
  drop: SampleDrop;
}

/** The day a sample export is dated with: the first YYYYMMDD in its name. */
export function dayOf(name: string): string | undefined {
  const match = /(20\d{2})(\d{2})(\d{2})/.exec(name);
  return match ? `${match[1]}-${match[2]}-${match[3]}` : undefined;
}

/**
 * Every ISP's sample exports grouped by the day their names carry, days in order; within a day
 * the ISPs come in id order. Exports without a date in their name are not played.
 */
export function sampleDays(isps: readonly IspConfig[], samplesDir: string): Map<string, DayDrop[]> {
  const days = new Map<string, DayDrop[]>();
  for (const isp of [...isps].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!isp.enabled || isp.intake.transport.type !== 'local') continue;
    for (const drop of sampleDrops(isp, samplesDir)) {
      const day = dayOf(drop.files[0] as string);
      if (day) days.set(day, [...(days.get(day) ?? []), { isp, drop }]);
    }
  }
  return new Map([...days].sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * Drops each export of one day into its ISP's inbox and has the feeds worker poll it; returns
 * the feeds held for approval.
 */
export async function playDay(
  running: RunningRelais,
  drops: readonly DayDrop[],
  samplesDir: string,
): Promise<Feed[]> {
  const { config, log } = running.services;
  const held: Feed[] = [];
  const connection = await connectRedis(config.deployment.redis, 'worker', log);
  const events = new QueueEvents('feeds', { connection, prefix: config.deployment.redis.prefix });
  try {
    await events.waitUntilReady();
    for (const { isp, drop } of drops) {
      const transport = isp.intake.transport;
      if (transport.type !== 'local') continue;
      const inbox = transport.inbox ?? join(isp.workDir, 'inbox'); // resolved by the loader
      for (const name of drop.files) deliver(join(samplesDir, isp.id, name), inbox, name);
      out(`   - ${isp.id}: ${drop.files.join(' + ')} into its inbox; poll`);
      const job = await running.runtime.queues.feeds.add(
        JOB_NAMES.pollIsp,
        { ispId: isp.id },
        { jobId: `demo-poll-${isp.id}-${newId('run')}`, attempts: 1 },
      );
      const result = (await job.waitUntilFinished(events, POLL_TIMEOUT_MS)) as
        | PollResult
        | { busy: true };
      if ('busy' in result) out('     another process is polling this ISP; it will take the file');
      else held.push(...(await reportPoll(running, result)));
    }
  } finally {
    await events.close();
    connection.disconnect();
  }
  return held;
}

/** An operator's look at a held snapshot, then `relais feeds approve`. */
export async function approveHeld(running: RunningRelais, feed: Feed): Promise<void> {
  out(`   ${feed.ispId} ${feed.name}: held, ${feed.errorMessage}`);
  out('   the ISP confirms these customers left; the operator runs relais feeds approve:');
  const { feed: applied } = await running.runtime.intake.approve(feed.id);
  out(`     ${applied.id} ${feedLine(applied)}`);
}
