/**
 * Reconciles the `isps` table with the ISP config files: configured ISPs are inserted or
 * updated (with a hash of their file, so a change is visible), ISPs whose file vanished are
 * disabled, never deleted, because feeds and subscribers still point at them.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IspConfig } from '../config/load.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';

export interface IspSyncResult {
  added: string[];
  updated: string[];
  disabled: string[];
}

export async function syncIsps(
  db: Db,
  isps: ReadonlyMap<string, IspConfig>,
  log: Logger,
): Promise<IspSyncResult> {
  const now = new Date();
  const result: IspSyncResult = { added: [], updated: [], disabled: [] };
  await db.transaction(async (trx) => {
    const rows: { id: string; config_sha256: string; enabled: number }[] = await trx('isps')
      .select('id', 'config_sha256', 'enabled')
      .forUpdate();
    const known = new Map(rows.map((r) => [r.id, r]));
    for (const isp of isps.values()) {
      const hash = createHash('sha256').update(readFileSync(isp.file)).digest('hex');
      const row = known.get(isp.id);
      const values = { name: isp.name, enabled: isp.enabled, config_sha256: hash, updated_at: now };
      if (!row) {
        await trx('isps').insert({ id: isp.id, ...values, created_at: now });
        result.added.push(isp.id);
      } else if (row.config_sha256 !== hash || Boolean(row.enabled) !== isp.enabled) {
        await trx('isps').where({ id: isp.id }).update(values);
        result.updated.push(isp.id);
      }
    }
    for (const row of rows) {
      if (!isps.has(row.id) && row.enabled) {
        await trx('isps').where({ id: row.id }).update({ enabled: false, updated_at: now });
        result.disabled.push(row.id);
      }
    }
  });
  if (result.added.length + result.updated.length + result.disabled.length > 0) {
    log.info({ ...result }, 'isp registry synchronised');
  }
  return result;
}
