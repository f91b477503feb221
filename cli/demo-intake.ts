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
function deliver(from: string, inbox: string, name: string): void {
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

async function reportPoll(running: RunningRelais, result: PollResult): Promise<void> {
  const { ledger } = running.runtime;
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
    if (feed.rejected > 0) {
      const dir = join(running.services.config.isps.get(feed.ispId)?.workDir ?? '', 'outbox');
      out(`       rejects returned to the ISP in ${join(dir, 'rejects')}`);
      for (const reject of await ledger.rejectsOf(feed.id, 3)) {
        out(`         line ${reject.line} ${reject.field ?? ''}: ${reject.reason}`);
      }
    }
  }
  for (const skipped of result.skipped) out(`     ${skipped.name}: not taken (${skipped.reason})`);
}

/** Plays every ISP's samples, round by round. */
export async function playSampleFeeds(running: RunningRelais, samplesDir: string): Promise<void> {
  const { config, log } = running.services;
  const isps = [...config.isps.values()].filter(
    (isp) => isp.enabled && isp.intake.transport.type === 'local',
  );
  const drops = new Map(isps.map((isp) => [isp.id, sampleDrops(isp, samplesDir)]));
  const rounds = Math.max(0, ...[...drops.values()].map((d) => d.length));
  const connection = await connectRedis(config.deployment.redis, 'worker', log);
  const events = new QueueEvents('feeds', { connection, prefix: config.deployment.redis.prefix });
  try {
    await events.waitUntilReady();
    for (let round = 0; round < rounds; round++) {
      out(`   round ${round + 1}: the ISPs drop their next export`);
      for (const isp of isps) {
        const drop = drops.get(isp.id)?.[round];
        const transport = isp.intake.transport;
        if (!drop || transport.type !== 'local') continue;
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
        if ('busy' in result)
          out('     another process is polling this ISP; it will take the file');
        else await reportPoll(running, result);
      }
    }
  } finally {
    await events.close();
    connection.disconnect();
  }
}
