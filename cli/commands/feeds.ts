/**
 * `relais feeds list|show|approve|reject`: the feed ledger for people. Approving a held
 * snapshot applies it at once; rejecting drops it. Both print the resulting ledger entry.
 */
import type { Command } from 'commander';
import {
  FEED_STATUSES,
  type Feed,
  FeedLedger,
  type FeedStatus,
} from '../../connectors/feed-ledger.js';
import { RequestError } from '../../platform/errors.js';
import { BUSY } from '../../platform/named-lock.js';
import { withConnectorDb, withServices } from '../command-context.js';
import { EXIT_USAGE, ExitRequest } from '../exit.js';
import { openIntake } from '../intake-runtime.js';
import { configOption, out } from '../output.js';

function when(date: Date | null): string {
  return date ? date.toISOString().replace('T', ' ').slice(0, 19) : '-';
}

export function diffSummary(
  feed: Pick<Feed, 'subscribes' | 'changes' | 'suspends' | 'resumes' | 'cancels'>,
): string {
  return `+${feed.subscribes} ~${feed.changes} susp ${feed.suspends} res ${feed.resumes} -${feed.cancels}`;
}

function printFeedLine(feed: Feed): void {
  out(
    [
      feed.id.padEnd(31),
      feed.ispId.padEnd(14),
      feed.status.padEnd(9),
      when(feed.receivedAt),
      String(feed.records).padStart(8),
      String(feed.rejected).padStart(6),
      diffSummary(feed).padEnd(28),
      feed.name,
    ].join('  '),
  );
}

export function printFeed(feed: Feed): void {
  out(`feed      ${feed.id}`);
  out(`isp       ${feed.ispId}`);
  out(`status    ${feed.status}${feed.duplicateOf ? ` (duplicate of ${feed.duplicateOf})` : ''}`);
  out(`file      ${feed.name} (${feed.sizeBytes} bytes, ${feed.source})`);
  out(`sha256    ${feed.sha256}`);
  out(
    `received  ${when(feed.receivedAt)}   started ${when(feed.startedAt)}   finished ${when(feed.finishedAt)}`,
  );
  out(`records   ${feed.records} read, ${feed.applied} applied, ${feed.rejected} rejected`);
  out(
    `changes   ${feed.subscribes} subscribe, ${feed.changes} change, ${feed.suspends} suspend, ${feed.resumes} resume, ${feed.cancels} cancel (${feed.batches} provisioning batches)`,
  );
  if (feed.errorCode || feed.errorMessage)
    out(
      `${feed.status === 'held' ? 'held' : 'error'}     ${[feed.errorCode, feed.errorMessage].filter(Boolean).join(': ')}`,
    );
  if (feed.approvedAt) out(`approved  ${when(feed.approvedAt)}`);
}

function parseStatus(value: string | undefined): FeedStatus | undefined {
  if (value === undefined) return undefined;
  if ((FEED_STATUSES as readonly string[]).includes(value)) return value as FeedStatus;
  out(`unknown status ${value}; one of ${FEED_STATUSES.join(', ')}`);
  throw new ExitRequest(EXIT_USAGE);
}

export function registerFeedsCommands(program: Command): void {
  const feeds = program
    .command('feeds')
    .description('look at the feed ledger; approve or reject held snapshots');

  configOption(feeds.command('list'))
    .description('list the latest feeds, newest first')
    .option('--isp <id>', 'only this ISP')
    .option('--status <status>', `only this status (${FEED_STATUSES.join(', ')})`)
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'one JSON object per line')
    .action(
      async (options: {
        config?: string;
        isp?: string;
        status?: string;
        limit: string;
        json?: boolean;
      }) => {
        const status = parseStatus(options.status);
        await withConnectorDb(options.config, async ({ db }) => {
          const list = await new FeedLedger(db).list({
            ispId: options.isp,
            status,
            limit: Number(options.limit),
          });
          if (options.json) {
            for (const feed of list) out(JSON.stringify(feed));
            return;
          }
          if (list.length === 0) {
            out('no feed');
            return;
          }
          out(
            [
              'feed'.padEnd(31),
              'isp'.padEnd(14),
              'status'.padEnd(9),
              'received (UTC)'.padEnd(19),
              'records'.padStart(8),
              'reject'.padStart(6),
              'changes'.padEnd(28),
              'file',
            ].join('  '),
          );
          for (const feed of list) printFeedLine(feed);
        });
      },
    );

  configOption(feeds.command('show'))
    .argument('<id>', 'feed id')
    .description('show one feed with its counts, error and first rejects')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { config?: string; json?: boolean }) => {
      await withConnectorDb(options.config, async ({ db }) => {
        const ledger = new FeedLedger(db);
        const feed = await ledger.get(id);
        // As for approve and reject: the command ran and found nothing (exit 1), not a misuse.
        if (!feed) throw new RequestError('FEED_NOT_FOUND', `no feed ${id}`);
        const rejects = await ledger.rejectsOf(id, 50);
        if (options.json) {
          out(JSON.stringify({ ...feed, rejects }));
          return;
        }
        printFeed(feed);
        if (rejects.length > 0) {
          out(
            `rejects   (first ${rejects.length}; the full list is the rejects file in the ISP outbox)`,
          );
          for (const r of rejects)
            out(`  line ${r.line}${r.field ? ` ${r.field}` : ''}: ${r.reason}`);
        }
      });
    });

  for (const [verb, description] of [
    ['approve', 'apply a held snapshot now, without the safety valve'],
    ['reject', 'drop a held snapshot: nothing of it is applied'],
  ] as const) {
    configOption(feeds.command(verb))
      .argument('<id>', 'feed id of a held snapshot')
      .description(description)
      .action(async (id: string, options: { config?: string }) => {
        await withServices(options.config, async (services) => {
          const { intake } = await openIntake(services);
          if (verb === 'reject') {
            printFeed(await intake.reject(id));
            return;
          }
          const { feed, drained } = await intake.approve(id);
          if (drained === BUSY)
            out('another process is processing this ISP; it will apply the approved snapshot');
          printFeed(feed);
        });
      });
  }
}
