/**
 * Prometheus metrics of reconciliation, per ISP: refs per category and rejected export rows of
 * the last run (gauges, so a dashboard shows the current picture), and runs by outcome.
 * Labels are the ISP id and the category only; never a ref.
 */
import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../../platform/metrics.js';
import { CATEGORIES, type Category } from './classify.js';

export interface ReconciliationMetrics {
  runFinished(ispId: string, counts: Record<Category, number>, rejectedLines: number): void;
  runFailed(ispId: string): void;
}

const cache = new WeakMap<Metrics, ReconciliationMetrics>();

/** The reconciliation metrics of a registry, registered once however often this is called. */
export function reconciliationMetrics(registry: Metrics): ReconciliationMetrics {
  const known = cache.get(registry);
  if (known) return known;
  const refs = new Gauge({
    name: 'relais_reconciliation_refs',
    help: 'Customer refs per reconciliation category in the last reconciliation of each ISP.',
    labelNames: ['isp', 'category'],
    registers: [registry],
  });
  const rejected = new Gauge({
    name: 'relais_reconciliation_rejected_lines',
    help: 'Rows of the ISP billing export refused in the last reconciliation.',
    labelNames: ['isp'],
    registers: [registry],
  });
  const runs = new Counter({
    name: 'relais_reconciliation_runs_total',
    help: 'Reconciliation runs by outcome: done or failed.',
    labelNames: ['isp', 'outcome'],
    registers: [registry],
  });
  const metrics: ReconciliationMetrics = {
    runFinished(isp, counts, rejectedLines) {
      for (const category of CATEGORIES) refs.set({ isp, category }, counts[category]);
      rejected.set({ isp }, rejectedLines);
      runs.inc({ isp, outcome: 'done' });
    },
    runFailed(isp) {
      runs.inc({ isp, outcome: 'failed' });
    },
  };
  cache.set(registry, metrics);
  return metrics;
}
