/**
 * Prometheus metrics of the intake, per ISP: feeds by outcome (and failed ones by code),
 * records accepted and rejected, the changes snapshots and deltas produced, and deliveries
 * refused before a feed existed.
 */
import { Counter, Gauge } from 'prom-client';
import { perRegistry } from '../../platform/metrics.js';
import type { FeedCounts } from '../feed-ledger.js';

export interface IntakeMetrics {
  feedReceived(ispId: string, source: string, duplicate: boolean): void;
  /** A feed refused (`failed`, with the error code that says why) or held for approval. */
  feedFinished(ispId: string, status: 'failed' | 'held', code?: string): void;
  feedApplied(ispId: string, counts: FeedCounts): void;
  setHeld(ispId: string, count: number): void;
  /** A delivery refused before any feed existed: a push or a poll failing with `code`. */
  deliveryRefused(ispId: string, code: string): void;
}

/** The intake metrics of a registry, registered once however often this is called. */
export const createIntakeMetrics = perRegistry((registry): IntakeMetrics => {
  const feeds = new Counter({
    name: 'relais_feeds_total',
    help: 'Feeds by ISP and outcome: received, duplicate, applied, held, failed.',
    labelNames: ['isp', 'status'],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'relais_feed_failures_total',
    help: 'Feeds refused, by ISP and error code (docs/errors.md).',
    labelNames: ['isp', 'code'],
    registers: [registry],
  });
  const records = new Counter({
    name: 'relais_feed_records_total',
    help: 'Records read from feeds, by outcome: applied or rejected.',
    labelNames: ['isp', 'outcome'],
    registers: [registry],
  });
  const changes = new Counter({
    name: 'relais_feed_changes_total',
    help: 'Subscriber changes applied from feeds, by kind.',
    labelNames: ['isp', 'kind'],
    registers: [registry],
  });
  const held = new Gauge({
    name: 'relais_feeds_held',
    help: 'Snapshots held for approval right now.',
    labelNames: ['isp'],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'relais_deliveries_refused_total',
    help: 'Pushes and polls refused before a feed existed (bad signature, replay, over the size cap, SFTP failures), by error code.',
    labelNames: ['isp', 'code'],
    registers: [registry],
  });
  return {
    deliveryRefused(isp, code) {
      refused.inc({ isp, code });
    },
    feedReceived(isp, _source, duplicate) {
      feeds.inc({ isp, status: duplicate ? 'duplicate' : 'received' });
    },
    feedFinished(isp, status, code) {
      feeds.inc({ isp, status });
      if (status === 'failed') failures.inc({ isp, code: code ?? 'INTERNAL' });
    },
    feedApplied(isp, counts) {
      feeds.inc({ isp, status: 'applied' });
      records.inc({ isp, outcome: 'applied' }, counts.applied);
      records.inc({ isp, outcome: 'rejected' }, counts.rejected);
      for (const kind of ['subscribes', 'changes', 'suspends', 'resumes', 'cancels'] as const) {
        changes.inc({ isp, kind: kind.replace(/s$/, '') }, counts[kind]);
      }
    },
    setHeld(isp, count) {
      held.set({ isp }, count);
    },
  };
});
