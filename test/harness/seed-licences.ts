/**
 * Seeds subscriptions and licences straight into a licensing database, for tests and benches
 * of what comes after provisioning (activation, check-in, devices). The rows have the shape
 * provisioning writes; the clear key is returned, as provisioning hands it out once.
 */

import { generateKey, hashKey, readKey } from '../../licensing/activation-key.js';
import type { Db } from '../../platform/db.js';
import { newId } from '../../platform/ids.js';

export interface SeedOptions {
  ispId?: string;
  status?: 'active' | 'suspended' | 'cancelled';
  modules?: string[];
  deviceLimit?: number;
  validUntil?: Date | null;
  licenceStatus?: 'valid' | 'revoked';
  period?: string | null;
  erasedAt?: Date | null;
}

export interface SeededLicence {
  key: string;
  licenceId: string;
  subscriberId: string;
}

const DAY_MS = 86_400_000;

export async function seedLicences(
  db: Db,
  keyHashSecret: Buffer,
  count: number,
  options: SeedOptions = {},
): Promise<SeededLicence[]> {
  const now = new Date();
  const seeded: SeededLicence[] = [];
  for (let i = 0; i < count; i += 1000) {
    const chunk: SeededLicence[] = [];
    for (let j = i; j < Math.min(count, i + 1000); j++) {
      chunk.push({ key: generateKey(), licenceId: newId('lic'), subscriberId: newId('sub') });
    }
    const ispId = options.ispId ?? 'demo-fai';
    await db('subscriptions').insert(
      chunk.map((l) => ({
        subscriber_id: l.subscriberId,
        isp_id: ispId,
        status: options.status ?? 'active',
        modules: [...(options.modules ?? ['antivirus'])].sort().join(','),
        version: 1,
        erased_at: options.erasedAt ?? null,
        created_at: now,
        updated_at: now,
      })),
    );
    await db('licences').insert(
      chunk.map((l) => {
        const reading = readKey(l.key);
        if (!reading.ok) throw new Error('generated key does not read back');
        return {
          id: l.licenceId,
          subscriber_id: l.subscriberId,
          isp_id: ispId,
          key_hash: hashKey(keyHashSecret, reading.canonical),
          status: options.licenceStatus ?? 'valid',
          valid_until:
            options.validUntil === undefined
              ? new Date(now.getTime() + 30 * DAY_MS)
              : options.validUntil,
          period: options.period === undefined ? now.toISOString().slice(0, 7) : options.period,
          device_limit: options.deviceLimit ?? 1,
          link_generation: 1,
          created_at: now,
          updated_at: now,
        };
      }),
    );
    seeded.push(...chunk);
  }
  return seeded;
}

export async function seedLicence(
  db: Db,
  keyHashSecret: Buffer,
  options: SeedOptions = {},
): Promise<SeededLicence> {
  const [one] = await seedLicences(db, keyHashSecret, 1, options);
  return one as SeededLicence;
}
