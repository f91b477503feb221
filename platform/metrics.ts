/**
 * Prometheus metrics. One registry per process, created at the composition root and passed
 * down, so tests can build several isolated apps in one process. Metric names are
 * `relais_<area>_<what>_<unit>`; labels are low-cardinality (ISP id, status, code), never an
 * id of a subscriber, feed or licence.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export type Metrics = Registry;

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}
