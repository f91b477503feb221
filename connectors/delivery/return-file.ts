/**
 * Key delivery by return file, for ISPs that notify their own customers: the keys and download
 * links of one provisioning batch go to `keys-<batchId>.csv` in the ISP's outbox, one line per
 * customer ref (the ISP knows its customers by ref, never by subscriber id).
 *
 * The file is the only copy of the keys once its rows are marked delivered (their sealed
 * secrets are erased), so the order is: write under a temporary name, flush it to disk, rename
 * it into place, flush the folder, and only then mark the rows in one transaction. A crash
 * before the commit leaves the rows pending, and the retry writes the same name with the same
 * content (rows in id order, every value from the rows): the file is replaced, never doubled.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RelaisConfig } from '../../config/load.js';
import type { Db } from '../../platform/db.js';
import { removeDeadWritersFiles } from '../../platform/dead-writer-files.js';
import { ConfigError, InternalError, TransientError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { FeedFiles } from '../intake/feed-files.js';
import type { Vault } from '../vault.js';

export interface DeliveredKey {
  subscriberId: string;
  licenceId: string;
  channel: 'return-file';
  deliveredAt: Date;
}

export interface ReturnFileDeps {
  /** The connector database. */
  db: Db;
  vault: Vault;
  config: RelaisConfig;
  log: Logger;
  now?: () => Date;
  /** Where the ISP outboxes are; by default each ISP's `workDir`. */
  files?: FeedFiles;
}

export const RETURN_FILE_HEADER = [
  'customer_ref',
  'activation_key',
  'download_url',
  'link_expires_at',
] as const;

/** The vault context of a delivery's sealed `{key, downloadUrl}`. */
export function deliverySecretContext(licenceId: string): string {
  return `delivery:${licenceId}`;
}

interface PendingRow {
  id: number | string;
  subscriber_id: string;
  licence_id: string;
  secret: Buffer | null;
  link_expires_at: Date | null;
  customer_ref: string | null;
}

interface OpenedSecret {
  key: string;
  downloadUrl: string;
}

/**
 * Writes the pending return-file keys of one batch to the ISP's outbox and marks them
 * delivered (secret erased). Returns what this call delivered; nothing pending writes no file.
 *
 * @throws InternalError for a row that cannot be delivered as stored (a secret that does not
 *   open for its licence, a subscriber the map does not know): nothing is written or marked.
 * @throws TransientError (DELIVERY_FAILED) when the outbox cannot be written; rows stay pending.
 */
export async function deliverByReturnFile(
  deps: ReturnFileDeps,
  ispId: string,
  batchId: number,
): Promise<DeliveredKey[]> {
  const isp = deps.config.isps.get(ispId);
  if (!isp) throw new ConfigError('ISP_UNKNOWN', `no ISP ${ispId} to deliver keys for`);
  const rows = await pendingRows(deps.db, ispId, batchId);
  if (rows.length === 0) return [];

  const { delimiter } = isp.delivery.returnFile;
  const lines = [RETURN_FILE_HEADER.join(delimiter)];
  for (const row of rows) {
    const { key, downloadUrl } = openSecret(deps.vault, row);
    const expires = row.link_expires_at === null ? '' : row.link_expires_at.toISOString();
    const cells = [row.customer_ref as string, key, downloadUrl, expires];
    lines.push(cells.map((c) => cell(c, delimiter)).join(delimiter));
  }
  const files = deps.files ?? new FeedFiles((id) => deps.config.isps.get(id)?.workDir ?? id);
  const name = await returnFileName(deps.db, ispId, batchId, rows);
  await writeAtomically(() => files.outboxDir(ispId, 'keys'), name, `${lines.join('\r\n')}\r\n`);

  const deliveredAt = deps.now?.() ?? new Date();
  const marked = await deps.db.transaction(async (trx) => {
    // Locked and re-read: a second worker on the same batch marks (and reports) nothing twice.
    const still: { id: number | string }[] = await trx('deliveries')
      .whereIn(
        'id',
        rows.map((r) => r.id),
      )
      .where({ state: 'pending' })
      .forUpdate()
      .select('id');
    if (still.length > 0) {
      await trx('deliveries')
        .whereIn(
          'id',
          still.map((r) => r.id),
        )
        .update({ state: 'delivered', delivered_at: deliveredAt, secret: null });
    }
    return new Set(still.map((r) => String(r.id)));
  });
  deps.log.info(
    { isp: ispId, batchId, keys: marked.size, file: name },
    'keys written to the return file',
  );
  return rows
    .filter((r) => marked.has(String(r.id)))
    .map((r) => ({
      subscriberId: r.subscriber_id,
      licenceId: r.licence_id,
      channel: 'return-file' as const,
      deliveredAt,
    }));
}

async function pendingRows(db: Db, ispId: string, batchId: number): Promise<PendingRow[]> {
  const rows: PendingRow[] = await db('deliveries as d')
    .leftJoin('subscribers as s', function joinMap() {
      this.on('s.subscriber_id', '=', 'd.subscriber_id').andOn('s.isp_id', '=', 'd.isp_id');
    })
    .where({
      'd.isp_id': ispId,
      'd.batch_id': batchId,
      'd.state': 'pending',
      'd.channel': 'return-file',
    })
    .orderBy('d.id')
    .select(
      'd.id',
      'd.subscriber_id',
      'd.licence_id',
      'd.secret',
      'd.link_expires_at',
      's.customer_ref',
    );
  for (const row of rows) {
    if (row.customer_ref === null) {
      throw new InternalError(
        'INTERNAL',
        `delivery ${row.id}: subscriber ${row.subscriber_id} is not in the subscriber map of isp ${ispId}`,
      );
    }
  }
  return rows;
}

/** The key and link of a row; a secret sealed for another licence fails here, loudly. */
function openSecret(vault: Vault, row: PendingRow): OpenedSecret {
  const where = `delivery ${row.id} (licence ${row.licence_id})`;
  if (row.secret === null)
    throw new InternalError('INTERNAL', `${where} is pending without a secret`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(vault.open(row.secret, deliverySecretContext(row.licence_id)));
  } catch (err) {
    throw new InternalError('INTERNAL', `${where}: its secret does not open`, {}, { cause: err });
  }
  const { key, downloadUrl } = (parsed ?? {}) as Partial<OpenedSecret>;
  if (typeof key !== 'string' || typeof downloadUrl !== 'string') {
    throw new InternalError('INTERNAL', `${where}: its secret holds no key and download link`);
  }
  return { key, downloadUrl };
}

/**
 * `keys-<batchId>.csv`. Should keys of a batch already delivered be followed by more (rows a
 * later attempt of the batch added), those go to `keys-<batchId>-<first row id>.csv`, so the
 * earlier file, which the ISP may not have picked up yet, is never overwritten.
 */
async function returnFileName(
  db: Db,
  ispId: string,
  batchId: number,
  rows: readonly PendingRow[],
): Promise<string> {
  const earlier = await db('deliveries')
    .where({ isp_id: ispId, batch_id: batchId, channel: 'return-file', state: 'delivered' })
    .first('id');
  return earlier === undefined ? `keys-${batchId}.csv` : `keys-${batchId}-${rows[0]?.id}.csv`;
}

/** One CSV value, quoted when it holds the delimiter, a quote or a line break. */
function cell(value: string, delimiter: string): string {
  const special =
    value.includes(delimiter) ||
    value.includes('"') ||
    value.includes('\n') ||
    value.includes('\r');
  return special ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * Temp name, flush, rename, flush the folder. The temporary name starts with a dot and ends in
 * `.tmp`, so no pick-up pattern for `keys-*.csv` sees a half-written file. A temporary file a
 * killed writer left (keys in clear) is removed first.
 */
async function writeAtomically(
  outboxDir: () => string,
  name: string,
  content: string,
): Promise<void> {
  let temp: string | undefined;
  let dir: string | undefined;
  try {
    dir = outboxDir();
    await removeDeadWritersFiles(dir);
    const path = join(dir, name);
    temp = join(dir, `.${name}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(content, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    const folder = await open(dir, 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  } catch (err) {
    if (temp) await rm(temp, { force: true });
    throw new TransientError(
      'DELIVERY_FAILED',
      `cannot write ${name} to the outbox ${dir ?? '(not created)'}`,
      {},
      { cause: err },
    );
  }
}
