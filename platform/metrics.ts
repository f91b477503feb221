/**
 * Prometheus metrics. One registry per process, created at the composition root and passed
 * down, so tests can build several isolated apps in one process. Metric names are
 * `relais_<area>_<what>_<unit>`; labels are low-cardinality (ISP id, status, code), never an
 * id of a subscriber, feed or licence. docs/metrics.md lists every metric; a test keeps it true.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export type Metrics = Registry;

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * Wraps a function that registers an area's metrics so it runs once per registry: later calls
 * with the same registry get the first call's result (prom-client refuses a second metric of
 * the same name). The composition root calls each such function at start-up, so every metric
 * is listed from the first scrape; the code that counts calls it again and gets the same ones.
 */
export function perRegistry<T>(register: (registry: Metrics) => T): (registry: Metrics) => T {
  const known = new WeakMap<Metrics, T>();
  return (registry) => {
    let found = known.get(registry);
    if (found === undefined) {
      found = register(registry);
      known.set(registry, found);
    }
    return found;
  };
}
