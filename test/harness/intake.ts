/**
 * The intake of a test context, wired as `cli/intake-runtime.ts` wires it for a process, with a
 * log that tests can read back (to check, for one, that no customer data reaches it).
 */
import { Readable, Writable } from 'node:stream';
import type { IspConfig } from '../../config/load.js';
import { FeedLedger } from '../../connectors/feed-ledger.js';
import { FeedFiles, writeHashed } from '../../connectors/intake/feed-files.js';
import { type IntakeDeps, IntakeService } from '../../connectors/intake/intake-service.js';
import { receiveFeed } from '../../connectors/intake/receive.js';
import { syncIsps } from '../../connectors/isp-registry.js';
import { createLogger } from '../../platform/logger.js';
import { flushOutbox } from '../../queue/outbox.js';
import { openQueues, type Queues } from '../../queue/queues.js';
import type { TestContext } from './context.js';

export interface TestIntake {
  deps: IntakeDeps;
  intake: IntakeService;
  ledger: FeedLedger;
  queues: Queues;
  /** Every log line written so far, as JSON text. */
  logText(): string;
  /** Every log line written so far, parsed. */
  logLines(): Record<string, unknown>[];
  /** Receives `bytes` as a CLI feed named `name` and drains the ISP. */
  ingest(ispId: string, name: string, bytes: Buffer | string): Promise<string>;
  isp(ispId: string): IspConfig;
  close(): Promise<void>;
}

export async function openTestIntake(
  ctx: TestContext,
  extra: Partial<IntakeDeps> = {},
): Promise<TestIntake> {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination });
  const { config, connectorDb: db } = ctx;
  await syncIsps(db, config.isps, log);
  const queues = openQueues(ctx.redis, ctx.prefix);
  const ledger = new FeedLedger(db);
  const files = new FeedFiles((ispId) => config.isps.get(ispId)?.workDir ?? 'unused');
  const deps: IntakeDeps = {
    db,
    log,
    ledger,
    files,
    afterDrain: async () => {
      await flushOutbox(db, queues, log);
    },
    ...extra,
  };
  const intake = new IntakeService(deps, config);
  return {
    deps,
    intake,
    ledger,
    queues,
    logText: () => lines.join(''),
    logLines: () =>
      lines
        .join('')
        .split('\n')
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    isp: (ispId) => intake.isp(ispId),
    async ingest(ispId, name, bytes) {
      const body = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
      const received = await receiveFeed(deps, {
        ispId,
        source: 'cli',
        name,
        fill: (path) => writeHashed(Readable.from([body]), path),
      });
      await intake.drain(intake.isp(ispId));
      return received.original?.id ?? received.feed.id;
    },
    async close() {
      await queues.close();
    },
  };
}
