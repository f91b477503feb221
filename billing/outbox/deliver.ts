/**
 * Delivers the month-end files of one ISP and period to its outbox (local folder or SFTP), so
 * that the ISP only ever sees whole, verified files under their final names, and a retry never
 * uploads a second, different file under a name the ISP may already have imported.
 *
 * Per file: hash the local copy; consult the delivery ledger (delivered with the same SHA-256:
 * nothing to do; with another one: refused, a closed period's file must never change); upload
 * under `<name><tempSuffix>`; check the remote size (and read it back for fastPut or readBack);
 * mark the row `uploaded`; rename atomically to the final name; write `<name>.sha256` and the
 * done marker; mark the row `delivered`. A crash between any two steps leaves a row the retry
 * can finish from: see docs/billing-outbox.md for each case.
 */
import { basename } from 'node:path';
import { Counter } from 'prom-client';
import type { IspConfig } from '../../config/load.js';
import { assertFileName } from '../../connectors/transports/inbox-names.js';
import { hashFile } from '../../connectors/transports/local-files.js';
import type { Db } from '../../platform/db.js';
import {
  InternalError,
  isRelaisError,
  RequestError,
  TransientError,
} from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { type Metrics, perRegistry } from '../../platform/metrics.js';
import { BUSY, withNamedLock } from '../../platform/named-lock.js';
import {
  advanceDelivery,
  type DeliveryRow,
  findDelivery,
  restartDelivery,
  startDelivery,
} from './delivery-ledger.js';
import { openOutbox, outboxSettingsOf } from './open-outbox.js';
import type { FileDigest, OutboxTarget } from './outbox-target.js';
import type { SftpOutboxOptions } from './sftp-outbox.js';

const PERIOD_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;

/** How long a delivery waits for another one of the same ISP and period, by default. */
const DEFAULT_LOCK_WAIT_S = 30;

export interface OutboxDeps {
  /** The connector database (the ledger lives there). */
  db: Db;
  log: Logger;
  now?: () => Date;
  /** Seconds to wait for a concurrent delivery of the same ISP and period; default 30. */
  lockWaitS?: number;
  /** SFTP connection details that are not ISP config (backoff, rename strategy). */
  sftp?: SftpOutboxOptions;
  /** Counts each file's outcome and each failed delivery (`billingDeliveryMetrics`). */
  metrics?: Metrics;
}

/**
 * Invoice-line deliveries per ISP: files (and pushes, billing/export.ts) by outcome, failed
 * attempts by error code. Channel `file` is an outbox file, `push` the ISP's HTTP endpoint.
 */
export const billingDeliveryMetrics = perRegistry((registry: Metrics) => ({
  deliveries: new Counter({
    name: 'relais_billing_deliveries_total',
    help: 'Invoice-line deliveries by ISP, channel (file, push) and outcome: delivered, completed (an earlier attempt had placed the file), already-delivered.',
    labelNames: ['isp', 'channel', 'outcome'] as const,
    registers: [registry],
  }),
  failures: new Counter({
    name: 'relais_billing_delivery_failures_total',
    help: 'Invoice-line delivery attempts that failed, by ISP, channel and error code.',
    labelNames: ['isp', 'channel', 'code'] as const,
    registers: [registry],
  }),
}));

/**
 * What happened to one file: `delivered` by this call; `already-delivered` by an earlier one
 * (nothing was touched); `completed`: an earlier attempt had put the file in place (or the ISP
 * had already collected it) and this call only finished the side files and the ledger.
 */
export type DeliveryOutcome = 'delivered' | 'already-delivered' | 'completed';

export interface DeliveredFile extends FileDigest {
  name: string;
  outcome: DeliveryOutcome;
  /** The outbox, as `sftp://host:port/folder` or `file:///folder`. */
  target: string;
}

interface Run {
  deps: OutboxDeps;
  isp: IspConfig;
  period: string;
  outbox: () => Promise<OutboxTarget>;
}

/**
 * Delivers `files` (local paths; each keeps its base name in the outbox) in order. Files
 * delivered before a failure stay delivered; the retry skips them.
 *
 * @throws InternalError BILLING_DELIVERY_CHANGED when a file was delivered with other content.
 * @throws InternalError BILLING_OUTBOX_OCCUPIED when another file holds the final name.
 * @throws TransientError (SFTP_TRANSFER_FAILED, TRANSPORT_IO_FAILED, BILLING_DELIVERY_BUSY)
 *   when the outbox cannot be reached or written, or another delivery holds the lock.
 */
export async function deliverFiles(
  deps: OutboxDeps,
  isp: IspConfig,
  period: string,
  files: readonly string[],
): Promise<DeliveredFile[]> {
  const metrics = deps.metrics ? billingDeliveryMetrics(deps.metrics) : undefined;
  try {
    const delivered = await deliverAll(deps, isp, period, files);
    for (const file of delivered) {
      metrics?.deliveries.inc({ isp: isp.id, channel: 'file', outcome: file.outcome });
    }
    return delivered;
  } catch (err) {
    const code = isRelaisError(err) ? err.code : 'INTERNAL';
    metrics?.failures.inc({ isp: isp.id, channel: 'file', code });
    throw err;
  }
}

async function deliverAll(
  deps: OutboxDeps,
  isp: IspConfig,
  period: string,
  files: readonly string[],
): Promise<DeliveredFile[]> {
  if (!PERIOD_PATTERN.test(period)) {
    throw new RequestError(
      'PERIOD_INVALID',
      `period must be a month written YYYY-MM, got "${period}"`,
      {
        period,
      },
    );
  }
  const names = files.map((path) => basename(path));
  for (const name of names) assertFileName(name);
  if (new Set(names).size !== names.length) {
    throw new InternalError('INTERNAL', `billing files of ${isp.id} ${period} share a name`, {
      names,
    });
  }

  const lockName = `billing-outbox:${isp.id}:${period}`;
  const result = await withNamedLock(
    deps.db,
    lockName,
    async () => {
      let target: OutboxTarget | undefined;
      // Opened at the first file that needs it: a retry of a delivered period never connects.
      const outbox = async () => {
        target ??= await openOutbox(isp, deps.log, deps.sftp);
        return target;
      };
      const run: Run = { deps, isp, period, outbox };
      try {
        const delivered: DeliveredFile[] = [];
        for (const path of files) delivered.push(await deliverOne(run, path));
        return delivered;
      } finally {
        await target?.close();
      }
    },
    deps.lockWaitS ?? DEFAULT_LOCK_WAIT_S,
  );
  if (result === BUSY) {
    throw new TransientError(
      'BILLING_DELIVERY_BUSY',
      `another process is delivering the billing files of ${isp.id} ${period}`,
      { isp: isp.id, period },
    );
  }
  return result;
}

async function deliverOne(run: Run, path: string): Promise<DeliveredFile> {
  const { deps, isp, period } = run;
  const settings = outboxSettingsOf(isp);
  const name = basename(path);
  const temp = `${name}${settings.tempSuffix}`;
  const now = () => deps.now?.() ?? new Date();
  const log = deps.log.child({ isp: isp.id, period, file: name });
  const local = await digestLocal(path);

  let row = await findDelivery(deps.db, isp.id, period, name);
  if (row?.status === 'delivered') {
    if (!sameContent(row, local)) throw changedError(isp, period, name, row, local);
    log.debug({ sha256: row.sha256 }, 'billing file already delivered');
    return { name, ...local, outcome: 'already-delivered', target: row.target };
  }

  const out = await run.outbox();
  const file = { ...local, target: out.description };
  if (!row) {
    row = await startDelivery(deps.db, { ispId: isp.id, period, fileName: name, ...file }, now());
  } else {
    if (!sameContent(row, local) && row.status === 'uploaded') {
      // The earlier content was complete and may have been renamed into place (and collected)
      // already. Only when its temporary file is still there and the final name is free is it
      // certain that the ISP never saw it.
      const neverRenamed =
        (await out.sizeOf(name)) === undefined && (await out.sizeOf(temp)) === row.sizeBytes;
      if (!neverRenamed) throw changedError(isp, period, name, row, local);
      await out.remove(temp);
      row = { ...row, status: 'uploading' };
    }
    // An `uploading` row never reached the final name, whatever its content: start over.
    if (row.status === 'uploading') await restartDelivery(deps.db, row.id, file, now());
  }

  // A file under the final name is either ours, from an attempt that crashed before the
  // ledger caught up, or someone else's. Only a byte-identical one is accepted.
  const finalSize = await out.sizeOf(name);
  if (finalSize !== undefined) {
    const found = finalSize === local.sizeBytes ? await out.digestOf(name) : undefined;
    if (found?.sha256 !== local.sha256) {
      throw new InternalError(
        'BILLING_OUTBOX_OCCUPIED',
        `billing file ${name} of ${isp.id} ${period}: ${out.description} already holds another file under that name; it is not overwritten`,
        { isp: isp.id, period, file: name, outbox: out.description, sizeBytes: finalSize },
      );
    }
    await out.remove(temp);
    await placeSideFiles(run, out, name, local);
    await advanceDelivery(deps.db, row.id, 'delivered', now());
    log.info({ outbox: out.description, ...local }, 'billing file delivery completed');
    return { name, ...local, outcome: 'completed', target: out.description };
  }
  if (row.status === 'uploaded' && (await out.sizeOf(temp)) === undefined) {
    // Renamed into place before a crash, then collected by the ISP before this retry.
    await advanceDelivery(deps.db, row.id, 'delivered', now());
    log.warn({ outbox: out.description }, 'billing file already collected by the ISP');
    return { name, ...local, outcome: 'completed', target: out.description };
  }
  if (row.status === 'uploaded') await restartDelivery(deps.db, row.id, file, now());

  const startedMs = Date.now();
  await uploadVerified(run, out, path, temp, local);
  await advanceDelivery(deps.db, row.id, 'uploaded', now());
  await out.rename(temp, name);
  await placeSideFiles(run, out, name, local);
  await advanceDelivery(deps.db, row.id, 'delivered', now());
  const durationMs = Date.now() - startedMs;
  log.info({ outbox: out.description, ...local, durationMs }, 'billing file delivered');
  return { name, ...local, outcome: 'delivered', target: out.description };
}

/** Uploads to the temporary name and proves it whole; on any doubt the temporary goes. */
async function uploadVerified(
  run: Run,
  out: OutboxTarget,
  path: string,
  temp: string,
  local: FileDigest,
): Promise<void> {
  const settings = outboxSettingsOf(run.isp);
  const fastPut = settings.type === 'sftp' && settings.fastPut;
  const readBack = fastPut || (settings.type === 'sftp' && settings.readBack);
  const where = { isp: run.isp.id, period: run.period, file: temp, outbox: out.description };
  const discard = () => out.remove(temp).catch(() => undefined);

  const sent = await out.upload(path, temp, { fastPut });
  if (!sameDigest(sent, local)) {
    await discard();
    throw new TransientError(
      'TRANSPORT_IO_FAILED',
      `local billing file ${path} changed while it was being uploaded`,
      { ...where, sizeBytes: sent.sizeBytes, expected: local.sizeBytes },
    );
  }
  const remoteSize = await out.sizeOf(temp);
  if (remoteSize !== local.sizeBytes) {
    await discard();
    const folderGone = remoteSize === undefined && !(await out.folderExists().catch(() => false));
    const landed =
      remoteSize === undefined
        ? `is gone${folderGone ? ' (the outbox folder itself is gone)' : ''}`
        : `holds ${remoteSize} bytes`;
    throw new TransientError(
      transferCode(out),
      `billing file ${temp} on ${out.description} ${landed} after the upload, expected ${local.sizeBytes} bytes`,
      { ...where, sizeBytes: remoteSize ?? null, expected: local.sizeBytes, folderGone },
    );
  }
  if (readBack) {
    const back = await out.digestOf(temp);
    run.deps.log.debug({ file: temp, fastPut, sha256: back.sha256 }, 'billing file read back');
    if (!sameDigest(back, local)) {
      await discard();
      throw new TransientError(
        transferCode(out),
        `billing file ${temp} on ${out.description} reads back with sha256 ${back.sha256}, expected ${local.sha256}${fastPut ? ' (fastPut corrupted it: consider fastPut: false)' : ''}`,
        { ...where, sha256: back.sha256, expected: local.sha256 },
      );
    }
  }
}

/**
 * `<name>.sha256`, then the done marker: each written under its temporary name and renamed,
 * after the file itself, so the marker announces a file whose checksum file is already there.
 */
async function placeSideFiles(
  run: Run,
  out: OutboxTarget,
  name: string,
  local: FileDigest,
): Promise<void> {
  const settings = outboxSettingsOf(run.isp);
  if (settings.checksumFile) {
    const line = Buffer.from(`${checksumLine(local.sha256, name)}`, 'utf8');
    await placeSmall(run, out, `${name}.sha256`, line, settings.tempSuffix);
  }
  if (settings.doneMarker !== undefined) {
    await placeSmall(
      run,
      out,
      `${name}${settings.doneMarker}`,
      Buffer.alloc(0),
      settings.tempSuffix,
    );
  }
}

/** The line `sha256sum` prints (and `sha256sum -c` reads): hex, two spaces, name. */
export function checksumLine(sha256: string, name: string): string {
  return `${sha256}  ${name}\n`;
}

async function placeSmall(
  run: Run,
  out: OutboxTarget,
  name: string,
  content: Buffer,
  tempSuffix: string,
): Promise<void> {
  if ((await out.sizeOf(name)) !== undefined) {
    if ((await out.readSmall(name)).equals(content)) return;
    throw new InternalError(
      'BILLING_OUTBOX_OCCUPIED',
      `billing file ${name} of ${run.isp.id} ${run.period}: ${out.description} already holds another file under that name; it is not overwritten`,
      { isp: run.isp.id, period: run.period, file: name, outbox: out.description },
    );
  }
  const temp = `${name}${tempSuffix}`;
  await out.writeSmall(temp, content);
  await out.rename(temp, name);
}

async function digestLocal(path: string): Promise<FileDigest> {
  try {
    return await hashFile(path);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    throw new InternalError(
      'INTERNAL',
      `billing file ${path} to deliver cannot be read (${errno})`,
      { path, errno },
      { cause: err },
    );
  }
}

/** The code of a failed transfer: the SFTP one for a server, the file-system one otherwise. */
function transferCode(out: OutboxTarget): 'SFTP_TRANSFER_FAILED' | 'TRANSPORT_IO_FAILED' {
  return out.description.startsWith('sftp:') ? 'SFTP_TRANSFER_FAILED' : 'TRANSPORT_IO_FAILED';
}

function sameDigest(a: FileDigest, b: FileDigest): boolean {
  return a.sizeBytes === b.sizeBytes && a.sha256 === b.sha256;
}

function sameContent(row: DeliveryRow, local: FileDigest): boolean {
  return sameDigest(row, local);
}

function changedError(
  isp: IspConfig,
  period: string,
  name: string,
  row: DeliveryRow,
  local: FileDigest,
): InternalError {
  const when = row.deliveredAt ? ` on ${row.deliveredAt.toISOString()}` : '';
  return new InternalError(
    'BILLING_DELIVERY_CHANGED',
    `billing file ${name} of ${isp.id} ${period} was delivered${when} with sha256 ${row.sha256} (${row.sizeBytes} bytes); this one has sha256 ${local.sha256} (${local.sizeBytes} bytes) and is refused: a closed period's file must never change`,
    {
      isp: isp.id,
      period,
      file: name,
      delivered: { sha256: row.sha256, sizeBytes: row.sizeBytes, status: row.status },
      refused: local,
    },
  );
}
