/**
 * How a Relais process judges its own health (`health:` in relais.yaml): when a queue with
 * waiting jobs and no running one counts as stalled, which turns /readyz of the worker
 * processes red. See docs/metrics.md and platform/queue-readiness.ts.
 */
import { z } from 'zod';

export const healthSchema = z
  .strictObject({
    stalledQueueAfterS: z
      .int()
      .min(1)
      .max(86_400)
      .default(120)
      .describe(
        'Seconds the oldest waiting job of a queue may wait, with no job of that queue running, before /readyz of the worker processes reports the queue stalled.',
      ),
  })
  .describe('Readiness checks of the Relais processes.');

export type HealthSettings = z.output<typeof healthSchema>;
