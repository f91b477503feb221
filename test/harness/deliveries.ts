/**
 * Writes the connector rows a sent provisioning batch leaves behind (a `deliveries` row per key,
 * a `contacts` row per address), sealed with the real vault under the contexts the provisioning
 * worker and the intake use, so delivery tests start where production would.
 */

import type { Vault } from '../../connectors/vault.js';
import { generateKey } from '../../licensing/activation-key.js';
import type { Db } from '../../platform/db.js';
import { newId } from '../../platform/ids.js';

export interface SeededDelivery {
  id: number;
  subscriberId: string;
  licenceId: string;
  key: string;
  downloadUrl: string;
  email: string | null;
}

export interface SeedOptions {
  ispId: string;
  batchId: number;
  /** Omit (undefined) for a subscriber the feed gave no address; null writes a NULL address. */
  email?: string | null;
  language?: string | null;
  channel?: 'email' | 'return-file';
  linkExpiresAt?: Date;
}

export async function seedDelivery(
  db: Db,
  vault: Vault,
  options: SeedOptions,
): Promise<SeededDelivery> {
  const subscriberId = newId('sub');
  const licenceId = newId('lic');
  const key = generateKey();
  const downloadUrl = `https://licences.example/v1/downloads/tok-${licenceId}`;
  const now = new Date();
  if (options.email !== undefined) {
    await db('contacts').insert({
      subscriber_id: subscriberId,
      isp_id: options.ispId,
      email: options.email === null ? null : vault.seal(options.email, `email:${subscriberId}`),
      language: options.language ?? null,
      created_at: now,
    });
  }
  const [id] = await db('deliveries').insert({
    isp_id: options.ispId,
    subscriber_id: subscriberId,
    licence_id: licenceId,
    batch_id: options.batchId,
    channel: options.channel ?? 'email',
    secret: vault.seal(JSON.stringify({ key, downloadUrl }), `delivery:${licenceId}`),
    link_expires_at: options.linkExpiresAt ?? new Date(now.getTime() + 30 * 86_400_000),
    state: 'pending',
    attempts: 0,
    created_at: now,
  });
  return {
    id: Number(id),
    subscriberId,
    licenceId,
    key,
    downloadUrl,
    email: options.email ?? null,
  };
}

export interface DeliveryRow {
  state: string;
  secret: Buffer | null;
  attempts: number;
  last_error: string | null;
  delivered_at: Date | null;
  reported_at?: Date | null;
}

export async function deliveryRow(db: Db, id: number): Promise<DeliveryRow> {
  return db('deliveries').where({ id }).first();
}

export async function hasContact(db: Db, subscriberId: string): Promise<boolean> {
  return (await db('contacts').where({ subscriber_id: subscriberId }).first()) !== undefined;
}
