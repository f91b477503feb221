/**
 * Registers every Relais metric on a process's registry at start-up, whatever the role, so the
 * first scrape already lists them all (with HELP and TYPE) and a dashboard or an alert never
 * meets a metric that appears only after its first event. The code that counts calls the same
 * once-per-registry functions and gets these very metrics. docs/metrics.md lists them; a test
 * compares that page with a real process's registry.
 */
import { activationMetrics } from '../api/activation.routes.js';
import { downloadCounter } from '../api/download.routes.js';
import { billingDeliveryMetrics } from '../billing/outbox/deliver.js';
import { reconciliationMetrics } from '../billing/reconciliation/reconciliation-metrics.js';
import { createIntakeMetrics } from '../connectors/intake/intake-metrics.js';
import { closeMetrics, linesCounter } from '../licensing/billing/close.js';
import { guardMetrics } from '../licensing/guard.js';
import { provisioningMetrics } from '../licensing/provisioning.js';
import { renewalMetrics } from '../licensing/renewal.js';
import type { Metrics } from '../platform/metrics.js';
import { deliveriesCounter } from '../queue/delivery.worker.js';
import { provisioningWorkerMetrics } from '../queue/provisioning.worker.js';
import { queueList, registerQueueMetrics } from '../queue/queue-metrics.js';
import type { Queues } from '../queue/queues.js';

/** Every metric of every area, and BullMQ's export of `queues`. Safe to call twice. */
export function registerRelaisMetrics(registry: Metrics, queues: Queues): void {
  // connector side
  createIntakeMetrics(registry);
  provisioningWorkerMetrics(registry);
  deliveriesCounter(registry);
  billingDeliveryMetrics(registry);
  reconciliationMetrics(registry);
  // subscription-server side
  provisioningMetrics(registry);
  guardMetrics(registry);
  activationMetrics(registry);
  downloadCounter(registry);
  linesCounter(registry);
  closeMetrics(registry);
  renewalMetrics(registry);
  // queues
  registerQueueMetrics(registry, queueList(queues));
}
