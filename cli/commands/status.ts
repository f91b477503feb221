/**
 * `relais status [--json]`: the operations overview (api/admin/overview.ts, the same facts the
 * `/admin` page shows) on one terminal screen. Per ISP a header and a few short lines (feeds
 * and held snapshots, provisioning and keys, month end, reconciliation), then the queue
 * depths. A line that needs a person starts with `!`: a held snapshot or a failed last feed,
 * failed batches or key deliveries, a queue with failed jobs or one that could not be read.
 * The exit code is 0 whatever it shows: the command reports, `relais queue` and `relais feeds`
 * act. Times are UTC, as in `relais feeds list`.
 */
import type { Command } from 'commander';
import {
  COUNT_CAP,
  type IspOverview,
  ispNeedsAttention,
  loadOverview,
  MATCHED_CATEGORY,
  type Overview,
  type QueueDepth,
  queueNeedsAttention,
} from '../../api/admin/overview.js';
import { openQueues } from '../../queue/queues.js';
import { withServices } from '../command-context.js';
import { configOption, out } from '../output.js';

/** Held snapshots listed by id under their ISP; the rest are counted. */
const HELD_LISTED = 3;

const WARN = '! ';
const OK = '  ';

/** `YYYY-MM-DD HH:MM` in UTC, as `relais feeds list` prints times. */
export function minute(date: Date): string {
  return date.toISOString().replace('T', ' ').slice(0, 16);
}

/** A count; one that reached the cap is "at least". */
function count(n: number): string {
  return n >= COUNT_CAP ? `${n}+` : String(n);
}

function marked(attention: boolean, label: string, text: string): string {
  return `${attention ? WARN : OK}  ${label.padEnd(10)} ${text}`;
}

function feedsLine(isp: IspOverview): string {
  const last = isp.lastFeeds[0];
  const held = isp.heldFeeds.length;
  const parts: string[] = [];
  if (last) {
    const counts = `${last.records} read, ${last.applied} applied, ${last.rejected} rejected`;
    const error = last.errorCode ? ` ${last.errorCode}` : '';
    parts.push(`${last.name} ${last.status}${error} ${minute(last.receivedAt)} (${counts})`);
  } else parts.push('no feed yet');
  if (held > 0) parts.push(`${held} held`);
  return marked(held > 0 || last?.status === 'failed', 'feeds', parts.join('; '));
}

function heldLines(isp: IspOverview): string[] {
  const lines = isp.heldFeeds
    .slice(0, HELD_LISTED)
    .map((feed) =>
      marked(
        true,
        'held',
        `${feed.id} ${feed.name} since ${minute(feed.receivedAt)}${feed.reason ? `: ${feed.reason}` : ''}`,
      ),
    );
  const more = isp.heldFeeds.length - HELD_LISTED;
  if (more > 0)
    lines.push(marked(true, 'held', `and ${more} more (relais feeds list --status held)`));
  if (isp.heldFeeds.length > 0) {
    lines.push(
      marked(true, '', 'relais feeds approve <feed> applies one, relais feeds reject drops it'),
    );
  }
  return lines;
}

function provisioningLine(isp: IspOverview): string {
  const p = isp.provisioning;
  const k = isp.keyDeliveries;
  const waiting = p.oldestWaitingAt ? ` (oldest ${minute(p.oldestWaitingAt)})` : '';
  const batches = `batches ${p.pendingBatches} pending, ${p.queuedBatches} queued${waiting}, ${p.failedBatches} failed, ${count(p.rejectedCommands)} refused`;
  const keys = `keys ${count(k.pending)} pending, ${count(k.failed)} failed`;
  return marked(p.failedBatches > 0 || k.failed > 0, 'provision', `${batches}; ${keys}`);
}

/** "7 matched, 2 UNKNOWN_REF": the matched count, then every other category found. */
export function reconciliationHeadline(counts: Record<string, number>): string {
  const others = Object.entries(counts)
    .filter(([category, n]) => category !== MATCHED_CATEGORY && n > 0)
    .map(([category, n]) => `${n} ${category}`);
  return [`${counts[MATCHED_CATEGORY] ?? 0} matched`, ...others].join(', ');
}

function monthEndLine(isp: IspOverview): string {
  const parts: string[] = [];
  const closed = isp.lastClosed;
  if (closed) {
    const licences = isp.billableLicences.at(-1);
    const billed = licences?.period === closed.period ? `, ${licences.licences} licences` : '';
    parts.push(
      `closed ${closed.period} (${closed.lines} lines, ${closed.total} ${closed.currency}${billed})`,
    );
  } else parts.push('no period closed');
  const file = isp.billingDeliveries[0];
  if (file) parts.push(`file ${file.period} ${file.status}`);
  return marked(false, 'month end', parts.join('; '));
}

function reconciliationLine(isp: IspOverview): string | undefined {
  const reconciled = isp.lastReconciliation;
  if (!reconciled) return undefined;
  const headline = reconciliationHeadline(reconciled.counts);
  return marked(
    false,
    'reconciled',
    `${reconciled.period} on ${minute(reconciled.at)}: ${headline}`,
  );
}

/** The current period so far, as `3 activated, 120 subscribed so far`. */
function activityText(isp: IspOverview): string {
  const { activations, provisioned, partial } = isp.currentActivity;
  const floor = partial ? 'at least ' : '';
  return `${floor}${activations} activated, ${floor}${provisioned} subscribed so far`;
}

function ispLines(isp: IspOverview): string[] {
  return [
    `${ispNeedsAttention(isp) ? WARN : OK}${isp.ispId} (${isp.name}), ${isp.enabled ? 'enabled' : 'disabled'}, period ${isp.currentPeriod}: ${activityText(isp)}`,
    feedsLine(isp),
    ...heldLines(isp),
    provisioningLine(isp),
    monthEndLine(isp),
    ...[reconciliationLine(isp)].filter((line) => line !== undefined),
  ];
}

const QUEUE_COLUMNS = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused'] as const;

function queueLines(queues: readonly QueueDepth[]): string[] {
  const width = Math.max(12, ...queues.map((q) => q.name.length));
  const header = `${OK}${'queue'.padEnd(width)} ${QUEUE_COLUMNS.map((c) => c.padStart(9)).join(' ')}`;
  return [
    header,
    ...queues.map((q) => {
      const mark = queueNeedsAttention(q) ? WARN : OK;
      if (q.error !== undefined) return `${mark}${q.name.padEnd(width)} unreadable: ${q.error}`;
      return `${mark}${q.name.padEnd(width)} ${QUEUE_COLUMNS.map((c) => String(q[c]).padStart(9)).join(' ')}`;
    }),
  ];
}

/** The screen, as lines. */
export function renderStatus(overview: Overview): string[] {
  const lines = [`Relais status at ${minute(overview.generatedAt)} UTC`, ''];
  if (overview.isps.length === 0) lines.push('no ISP configured', '');
  for (const isp of overview.isps) lines.push(...ispLines(isp), '');
  lines.push(...queueLines(overview.queues));
  return lines;
}

export function registerStatusCommand(program: Command): void {
  configOption(program.command('status'))
    .description('one screen: each ISP (feeds, backlog, failures, month end), then the queues')
    .option('--json', 'print the overview as one JSON object')
    .action(async (options: { config?: string; json?: boolean }) => {
      await withServices(options.config, async (services) => {
        const queues = openQueues(services.redis, services.config.deployment.redis.prefix);
        try {
          const overview = await loadOverview({
            config: services.config,
            connectorDb: services.connectorDb,
            licensingDb: services.licensingDb,
            queues: [queues.feeds, queues.provisioning, queues.delivery],
          });
          if (options.json) out(JSON.stringify(overview));
          else for (const line of renderStatus(overview)) out(line);
        } finally {
          await queues.close();
        }
      });
    });
}
