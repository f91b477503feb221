/**
 * The connector side of month end for one ISP and period: read the closed period's rated lines
 * from the subscription server, map each subscriber id back to the ISP's customer ref, and
 * hand the ISP its invoice lines in its own format: a file delivered to its outbox, or a push
 * to its billing system's HTTP endpoint.
 *
 * Every step is safe to repeat. A closed period streams the same lines in the same order, the
 * writers are deterministic, so a rerun writes the same bytes, and the outbox's delivery ledger
 * skips a file already delivered with that checksum (and refuses one with another). A push
 * carries an idempotency key per line, and the ledger records it once it is complete, so the
 * schedule does not push it again.
 *
 * The file's line count and total must equal the server's summary before anything is
 * delivered: a line lost or doubled between the two sides stops the export.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { Decimal } from 'decimal.js';
import type { IspConfig } from '../config/load.js';
import type { Db } from '../platform/db.js';
import { InternalError, isRelaisError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { IspInvoiceLine, VendorRatedLine } from './invoice-line.js';
import { pushInvoiceLines } from './invoice-lines/http-push.js';
import {
  invoiceLinesFileName,
  invoiceLinesFor,
  isInvoiceFile,
  type WriteResult,
  writeInvoiceLines,
} from './invoice-lines/registry.js';
import { mapToCustomerRefs } from './map-back.js';
import {
  billingDeliveryMetrics,
  type DeliveredFile,
  deliverFiles,
  type OutboxDeps,
} from './outbox/deliver.js';
import { advanceDelivery, findDelivery, startDelivery } from './outbox/delivery-ledger.js';

/** What the connector needs of the subscription server: `queue/billing-client.ts`. */
export interface ClosedPeriodSource {
  summary(ispId: string, period: string): Promise<{ lineCount: number; total: string }>;
  lines(ispId: string, period: string, expected: number): AsyncIterable<VendorRatedLine>;
}

export interface ExportDeps {
  /** The connector database: subscriber map and delivery ledger. */
  db: Db;
  log: Logger;
  source: ClosedPeriodSource;
  now?: () => Date;
  outbox?: Pick<OutboxDeps, 'sftp' | 'lockWaitS'>;
  /** Counts deliveries and failed ones (`relais_billing_deliveries_total`, docs/metrics.md). */
  metrics?: Metrics;
}

export interface ExportProgress {
  /** Invoice lines written or pushed so far. */
  lines: number;
  /** Lines of the closed period, from the server's summary. */
  total: number;
}

export interface ExportOptions {
  /** Called every {@link PROGRESS_EVERY_LINES} lines and once at the end. */
  onProgress?: (progress: ExportProgress) => void;
}

/** How often `onProgress` is called: often enough for a bar, rarely enough to cost nothing. */
export const PROGRESS_EVERY_LINES = 5_000;

export interface ExportResult {
  ispId: string;
  period: string;
  lines: number;
  totalAmount: string;
  /** For a file: where it was written locally, and what the outbox delivery did. */
  file?: { path: string; bytes: number; sha256: string; delivered: DeliveredFile[] };
  /** For a push: chunks and requests, or `already` when an earlier run completed it. */
  push?: { chunks: number; requests: number } | 'already';
}

/** The name a completed push is recorded under in the delivery ledger. */
export const PUSH_LEDGER_NAME = 'http-push';

export async function exportInvoiceLines(
  deps: ExportDeps,
  isp: IspConfig,
  period: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const { settings, ctx } = invoiceLinesFor(isp, period);
  const log = deps.log.child({ isp: isp.id, period });
  const summary = await deps.source.summary(isp.id, period);
  const mapped = () =>
    mapToCustomerRefs(deps.db, isp.id, deps.source.lines(isp.id, period, summary.lineCount));
  const onProgress = options.onProgress;
  const lines = onProgress ? () => counted(mapped(), summary.lineCount, onProgress) : mapped;

  if (!isInvoiceFile(settings)) {
    const metrics = deps.metrics ? billingDeliveryMetrics(deps.metrics) : undefined;
    const pushed = await findDelivery(deps.db, isp.id, period, PUSH_LEDGER_NAME);
    if (pushed?.status === 'delivered') {
      metrics?.deliveries.inc({ isp: isp.id, channel: 'push', outcome: 'already-delivered' });
      log.info('invoice lines were pushed before; nothing to do');
      return {
        ispId: isp.id,
        period,
        lines: summary.lineCount,
        totalAmount: summary.total,
        push: 'already',
      };
    }
    const digest = new LineDigest();
    const result = await pushInvoiceLines(settings, digest.through(lines()), ctx, { log }).catch(
      (err: unknown) => {
        const code = isRelaisError(err) ? err.code : 'INTERNAL';
        metrics?.failures.inc({ isp: isp.id, channel: 'push', code });
        throw err;
      },
    );
    checkAgainstSummary(isp.id, period, result.lines, result.totalAmount, summary);
    const now = (deps.now ?? (() => new Date()))();
    const row =
      pushed ??
      (await startDelivery(
        deps.db,
        {
          ispId: isp.id,
          period,
          fileName: PUSH_LEDGER_NAME,
          sha256: digest.hex(),
          sizeBytes: 0,
          target: settings.url,
        },
        now,
      ));
    await advanceDelivery(deps.db, row.id, 'delivered', now);
    metrics?.deliveries.inc({ isp: isp.id, channel: 'push', outcome: 'delivered' });
    log.info({ lines: result.lines, chunks: result.chunks }, 'invoice lines pushed');
    return {
      ispId: isp.id,
      period,
      lines: result.lines,
      totalAmount: result.totalAmount,
      push: { chunks: result.chunks, requests: result.requests },
    };
  }

  const dir = join(isp.workDir, 'billing', period);
  await mkdir(dir, { recursive: true });
  const path = join(dir, invoiceLinesFileName(settings, ctx));
  const written = await writeAtomically(path, (out) =>
    writeInvoiceLines(settings, lines(), out, ctx),
  );
  checkAgainstSummary(isp.id, period, written.lines, written.totalAmount, summary);
  const delivered = await deliverFiles(
    { db: deps.db, log, now: deps.now, metrics: deps.metrics, ...deps.outbox },
    isp,
    period,
    [path],
  );
  log.info({ lines: written.lines, bytes: written.bytes, file: path }, 'invoice lines delivered');
  return {
    ispId: isp.id,
    period,
    lines: written.lines,
    totalAmount: written.totalAmount,
    file: { path, bytes: written.bytes, sha256: written.sha256, delivered },
  };
}

function checkAgainstSummary(
  ispId: string,
  period: string,
  lines: number,
  total: string,
  summary: { lineCount: number; total: string },
): void {
  if (lines !== summary.lineCount || !new Decimal(total).equals(summary.total)) {
    throw new InternalError(
      'INTERNAL',
      `invoice lines of ${ispId} ${period} came to ${lines} lines for ${total}, but the subscription server closed ${summary.lineCount} lines for ${summary.total}`,
      { ispId, period, lines, total, expected: summary },
    );
  }
}

/** Writes through a temporary name, flushes, then renames: a crash never leaves half a file. */
async function writeAtomically(
  path: string,
  write: (out: Writable) => Promise<WriteResult>,
): Promise<WriteResult> {
  const temp = `${path}.part`;
  try {
    const result = await write(createWriteStream(temp));
    const handle = await open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    return result;
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** Passes lines through, reporting their count every {@link PROGRESS_EVERY_LINES} and at the end. */
async function* counted(
  lines: AsyncIterable<IspInvoiceLine>,
  total: number,
  onProgress: (progress: ExportProgress) => void,
): AsyncGenerator<IspInvoiceLine> {
  let n = 0;
  for await (const line of lines) {
    yield line;
    if (++n % PROGRESS_EVERY_LINES === 0) onProgress({ lines: n, total });
  }
  onProgress({ lines: n, total });
}

/** A checksum of what a push sent, line id and amount per line, for the ledger. */
class LineDigest {
  private readonly hash = createHash('sha256');

  async *through(lines: AsyncIterable<IspInvoiceLine>): AsyncGenerator<IspInvoiceLine> {
    for await (const line of lines) {
      this.hash.update(`${line.lineId}\t${line.amount}\n`);
      yield line;
    }
  }

  hex(): string {
    return this.hash.digest('hex');
  }
}
