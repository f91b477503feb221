/**
 * One case of the intake benchmark, run in a child process of `bench/intake.ts` so that its
 * peak RSS is its own. The parent forks this file with a {@link CaseRequest} as JSON in argv
 * and receives a {@link CaseResult} over IPC. Cases:
 *
 * - `feed`: the real pipeline on one file: `receiveFeed` (copy + hash into the feed store),
 *   `IntakeService.drain` (read, map, validate, sort, diff, apply in batch transactions) and the
 *   outbox flush to BullMQ that follows, wired by `openIntake` as the CLI does;
 * - `parse`: the ceiling of the read: the same format reader over the same file, nothing else;
 * - `insert`: the ceiling of the apply: plain multi-row INSERTs of `customers` subscriber rows,
 *   as many rows per statement and statements in flight as the apply path uses.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Writable } from 'node:stream';
import { openIntake } from '../cli/intake-runtime.js';
import { openServices } from '../cli/services.js';
import { loadConfigOrThrow } from '../config/load.js';
import { formatFor } from '../connectors/formats/registry.js';
import { copyHashed } from '../connectors/intake/feed-files.js';
import { receiveFeed } from '../connectors/intake/receive.js';
import { syncIsps } from '../connectors/isp-registry.js';
import { createRecordMapper } from '../mappings/record-mapper.js';
import { createDb } from '../platform/db.js';
import { newId } from '../platform/ids.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { createLogger, silentLogger } from '../platform/logger.js';
import { BUSY } from '../platform/named-lock.js';
import { batchJobId } from '../queue/queues.js';
import { refOf } from '../test/generators/isp-exports.js';

export interface CaseRequest {
  kind: 'feed' | 'parse' | 'insert';
  configFile: string;
  ispId: string;
  /** The export file (feed, parse). */
  file?: string;
  /** Rows to insert (insert). */
  customers?: number;
}

export interface CaseResult {
  records: number;
  seconds: number;
  peakRssBytes: number;
  /** BullMQ jobs added (feed). */
  jobs?: number;
  /** Provisioning commands in those jobs (feed). */
  commands?: number;
  status?: string;
  /** Seconds spent reading, diffing and applying (feed), from the 'feed applied' log line. */
  phasesS?: { read: number; diff: number; apply: number };
}

/** A logger that keeps the 'feed applied' line, whose fields time the phases. */
function phaseLogger(): { log: ReturnType<typeof createLogger>; applied: () => unknown } {
  let applied: unknown;
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.includes('"feed applied"')) applied = JSON.parse(line);
      }
      done();
    },
  });
  return { log: createLogger({ level: 'info', destination }), applied: () => applied };
}

/** Rows per INSERT and statements in flight: the apply path's defaults (process-feed.ts). */
const INSERT_BATCH = 500;
const INSERT_CONCURRENCY = 4;

/** Peak resident set size of this process so far (the kernel's high-water mark). */
export function peakRssBytes(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? process.memoryUsage.rss() : Number(kb) * 1024;
}

function elapsedS(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function runFeed(request: CaseRequest): Promise<CaseResult> {
  const config = loadConfigOrThrow({ file: request.configFile, env: {} });
  const { log, applied } = phaseLogger();
  const lifecycle = new Lifecycle(log, 30_000);
  try {
    const services = await openServices(config, log, lifecycle);
    const runtime = await openIntake(services);
    const isp = runtime.intake.isp(request.ispId);
    const file = request.file as string;

    const started = process.hrtime.bigint();
    const received = await receiveFeed(runtime.deps, {
      ispId: isp.id,
      source: 'cli',
      name: basename(file),
      fill: (path) => copyHashed(file, path),
    });
    const drained = await runtime.intake.drain(isp);
    const seconds = elapsedS(started);

    if (drained === BUSY) throw new Error('the bench isp is locked by another process');
    const feed = await runtime.ledger.get(received.feed.id);
    const batches: { id: string | number; command_count: number; created_at: Date }[] =
      await services
        .connectorDb('provisioning_batches')
        .select('id', 'command_count', 'created_at')
        .where({ feed_id: received.feed.id, state: 'queued' });
    let jobs = 0;
    for (const batch of batches) {
      if (await runtime.queues.provisioning.getJob(batchJobId(Number(batch.id), batch.created_at)))
        jobs++;
    }
    const phasesMs = (applied() as { phasesMs?: { read: number; diff: number; apply: number } })
      ?.phasesMs;
    return {
      phasesS: phasesMs && {
        read: phasesMs.read / 1000,
        diff: phasesMs.diff / 1000,
        apply: phasesMs.apply / 1000,
      },
      records: feed?.records ?? 0,
      seconds,
      peakRssBytes: peakRssBytes(),
      jobs,
      commands: batches.reduce((sum, b) => sum + Number(b.command_count), 0),
      status: feed?.status,
    };
  } finally {
    await lifecycle.shutdown('bench case finished');
  }
}

async function runParse(request: CaseRequest): Promise<CaseResult> {
  const config = loadConfigOrThrow({ file: request.configFile, env: {} });
  const isp = config.isps.get(request.ispId);
  if (!isp) throw new Error(`no isp ${request.ispId}`);
  const { wanted } = createRecordMapper({
    fields: isp.intake.fields,
    offers: isp.offers,
    timeZone: isp.timeZone,
    mode: isp.intake.mode,
  });
  const file = request.file as string;
  const started = process.hrtime.bigint();
  let records = 0;
  const items = formatFor(isp.intake.format).read(createReadStream(file), isp.intake.format, {
    fileName: basename(file),
    wanted,
  });
  for await (const _item of items) records++;
  return { records, seconds: elapsedS(started), peakRssBytes: peakRssBytes() };
}

async function runInsert(request: CaseRequest): Promise<CaseResult> {
  const config = loadConfigOrThrow({ file: request.configFile, env: {} });
  const log = silentLogger();
  const db = createDb(config.deployment.mysql, 'connector', log);
  try {
    await syncIsps(db, config.isps, log);
    const count = request.customers as number;
    const now = new Date();
    const rowsOf = (from: number, to: number) => {
      const rows = [];
      for (let i = from; i < to; i++) {
        rows.push({
          isp_id: request.ispId,
          customer_ref: refOf(i),
          subscriber_id: newId('sub'),
          status: 'active',
          offer: 'SECU_FAMILLE',
          modules: 'antivirus,firewall,parental-control',
          effective_at: now,
          version: 1,
          last_feed_id: 'feed_bench',
          created_at: now,
          updated_at: now,
        });
      }
      return rows;
    };

    const started = process.hrtime.bigint();
    const inFlight = new Set<Promise<unknown>>();
    for (let from = 1; from <= count; from += INSERT_BATCH) {
      const task: Promise<unknown> = db('subscribers')
        .insert(rowsOf(from, Math.min(from + INSERT_BATCH, count + 1)))
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
      if (inFlight.size >= INSERT_CONCURRENCY) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    return { records: count, seconds: elapsedS(started), peakRssBytes: peakRssBytes() };
  } finally {
    await db.destroy();
  }
}

const CASES = { feed: runFeed, parse: runParse, insert: runInsert };

const request = JSON.parse(process.argv[2] as string) as CaseRequest;
try {
  const result = await CASES[request.kind](request);
  process.send?.(result);
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
