/**
 * The intake of one deployment: processes each ISP's received feeds one at a time and in
 * arrival order, whatever process or job asks. Every entry point (a poll, a push, the CLI, an
 * approval) ends in `drain(isp)`, which takes the ISP's cluster-wide lock and works through the
 * oldest unfinished feeds; a process that finds the lock taken leaves the work to its holder.
 * Feeds interrupted by a crash are simply the oldest unfinished ones at the next drain.
 */
import type { IspConfig, RelaisConfig } from '../../config/load.js';
import type { Db } from '../../platform/db.js';
import { ConfigError, RequestError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { BUSY, withNamedLock } from '../../platform/named-lock.js';
import type { Feed, FeedLedger } from '../feed-ledger.js';
import { openVault } from '../vault.js';
import { keepsContacts } from './contacts.js';
import type { FeedFiles } from './feed-files.js';
import type { IntakeMetrics } from './intake-metrics.js';
import {
  type ProcessDeps,
  type ProcessOptions,
  type ProcessOutcome,
  processFeed,
} from './process-feed.js';

export interface IntakeDeps extends ProcessDeps {
  db: Db;
  log: Logger;
  ledger: FeedLedger;
  files: FeedFiles;
  metrics?: IntakeMetrics;
  /**
   * Called after every drain, to move provisioning batches still in the outbox to the queue:
   * those of the feeds just applied, and those a crash left behind after their feed was marked
   * applied (a replay of that file finds it applied and applies nothing).
   */
  afterDrain?: (ispId: string) => Promise<void>;
}

export interface DrainResult {
  processed: { feed: Feed; outcome: ProcessOutcome }[];
}

export class IntakeService {
  private readonly deps: IntakeDeps;

  /**
   * Without a vault in `deps`, opens the connector vault of the deployment's keys folder when
   * an ISP delivers keys by e-mail (its subscribers' addresses are sealed at intake).
   */
  constructor(
    deps: IntakeDeps,
    private readonly config: RelaisConfig,
  ) {
    const needsVault = [...config.isps.values()].some(keepsContacts);
    this.deps =
      deps.vault || !needsVault
        ? deps
        : { ...deps, vault: openVault(config.deployment.signing.keysDir) };
  }

  isp(ispId: string): IspConfig {
    const isp = this.config.isps.get(ispId);
    if (!isp)
      throw new ConfigError(
        'ISP_UNKNOWN',
        `no ISP ${ispId} in ${this.config.deployment.paths.ispConfigDir}`,
      );
    return isp;
  }

  /**
   * Processes the ISP's unfinished feeds, oldest first, until none is left. Returns BUSY when
   * another process holds the ISP's lock (it will process what is waiting).
   */
  async drain(isp: IspConfig, options: ProcessOptions = {}): Promise<DrainResult | typeof BUSY> {
    const result = await withNamedLock(this.deps.db, `isp:${isp.id}`, async () => {
      const processed: DrainResult['processed'] = [];
      for (
        let feed = await this.deps.ledger.nextToProcess(isp.id);
        feed;
        feed = await this.deps.ledger.nextToProcess(isp.id)
      ) {
        const outcome = await processFeed(this.deps, isp, feed, {
          ...options,
          approved: feed.approvedAt !== null,
        });
        processed.push({ feed, outcome });
      }
      this.deps.metrics?.setHeld(isp.id, await this.deps.ledger.countHeld(isp.id));
      return { processed };
    });
    if (result !== BUSY) await this.deps.afterDrain?.(isp.id);
    return result;
  }

  /** Approves a held snapshot and applies it now (or leaves it to the lock holder). */
  async approve(feedId: string): Promise<{ feed: Feed; drained: DrainResult | typeof BUSY }> {
    const feed = await this.heldFeed(feedId);
    if (!(await this.deps.ledger.approve(feedId))) throw notHeld(feedId);
    this.deps.log.warn({ isp: feed.ispId, feedId }, 'held snapshot approved');
    const drained = await this.drain(this.isp(feed.ispId));
    return { feed: (await this.deps.ledger.get(feedId)) as Feed, drained };
  }

  /** Drops a held snapshot: nothing of it is applied. */
  async reject(feedId: string): Promise<Feed> {
    const feed = await this.heldFeed(feedId);
    if (!(await this.deps.ledger.drop(feedId))) throw notHeld(feedId);
    this.deps.log.warn({ isp: feed.ispId, feedId }, 'held snapshot dropped');
    this.deps.metrics?.setHeld(feed.ispId, await this.deps.ledger.countHeld(feed.ispId));
    return (await this.deps.ledger.get(feedId)) as Feed;
  }

  private async heldFeed(feedId: string): Promise<Feed> {
    const feed = await this.deps.ledger.get(feedId);
    if (!feed) throw new RequestError('FEED_NOT_FOUND', `no feed ${feedId}`);
    if (feed.status !== 'held') throw notHeld(feedId, feed.status);
    return feed;
  }
}

function notHeld(feedId: string, status?: string): RequestError {
  return new RequestError(
    'FEED_NOT_HELD',
    `feed ${feedId} is ${status ?? 'no longer held'}, not held`,
  );
}
