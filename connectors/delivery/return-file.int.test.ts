import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { newId } from '../../platform/ids.js';
import { createLogger } from '../../platform/logger.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { syncIsps } from '../isp-registry.js';
import { openVault, type Vault } from '../vault.js';
import { type DeliveredKey, deliverByReturnFile, type ReturnFileDeps } from './return-file.js';

const base = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const withDelimiter = (delimiter: string) => ({
  ...base,
  delivery: { mode: 'return-file', returnFile: { delimiter } },
});

const ctx = useTestContext({
  isps: {
    semi: withDelimiter(';'),
    comma: withDelimiter(','),
    dash: withDelimiter('-'),
    crash: withDelimiter(';'),
    bad: withDelimiter(';'),
    later: withDelimiter(';'),
    blocked: withDelimiter(';'),
    killed: withDelimiter(';'),
  },
});

const NOW = new Date('2026-12-04T10:15:00.000Z');
const EXPIRES = new Date('2027-01-03T10:15:00.000Z');
const logLines: string[] = [];
let vault: Vault;
let deps: ReturnFileDeps;

beforeAll(async () => {
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  });
  await syncIsps(ctx().connectorDb, ctx().config.isps, log);
  vault = openVault(ctx().config.deployment.signing.keysDir);
  deps = { db: ctx().connectorDb, vault, config: ctx().config, log, now: () => NOW };
});

let refCounter = 0;

interface Seeded {
  ref: string;
  deliveryId: number;
  subscriberId: string;
  licenceId: string;
  key: string;
  url: string;
}

/** A subscriber of the map with a pending delivery of its key, sealed as the worker seals it. */
async function seed(
  ispId: string,
  batchId: number,
  over: { ref?: string; channel?: string; sealFor?: string; state?: string } = {},
): Promise<Seeded> {
  const db = ctx().connectorDb;
  const subscriberId = newId('sub');
  const licenceId = newId('lic');
  const n = ++refCounter;
  const key = `K${String(n).padStart(4, '0')}-ABCDE-FGHJK-MNPQR-STVW${n % 10}`;
  const url = `https://relais.example/v1/downloads/tok${n}.sig${n}`;
  const ref = over.ref ?? `REF${String(n).padStart(6, '0')}`;
  await db('subscribers').insert({
    isp_id: ispId,
    customer_ref: ref,
    subscriber_id: subscriberId,
    status: 'active',
    offer: 'SECU_FAMILLE',
    modules: 'antivirus',
    version: 1,
    created_at: NOW,
    updated_at: NOW,
  });
  const secret = vault.seal(
    JSON.stringify({ key, downloadUrl: url }),
    `delivery:${over.sealFor ?? licenceId}`,
  );
  const [deliveryId] = await db('deliveries').insert({
    isp_id: ispId,
    subscriber_id: subscriberId,
    licence_id: licenceId,
    batch_id: batchId,
    channel: over.channel ?? 'return-file',
    secret,
    link_expires_at: EXPIRES,
    state: over.state ?? 'pending',
    created_at: NOW,
  });
  return { ref, deliveryId: Number(deliveryId), subscriberId, licenceId, key, url };
}

const keysDir = (ispId: string) =>
  join(ctx().config.isps.get(ispId)?.workDir as string, 'outbox', 'keys');
const fileText = (ispId: string, name: string) => readFileSync(join(keysDir(ispId), name), 'utf8');

async function deliveryRows(ids: number[]) {
  return ctx().connectorDb('deliveries').whereIn('id', ids).orderBy('id');
}

describe('deliverByReturnFile', () => {
  it('writes keys-<batch>.csv with a line per pending key, and marks the rows delivered', async () => {
    const a = await seed('semi', 7);
    const b = await seed('semi', 7);
    const other = await seed('semi', 8);
    const mailed = await seed('semi', 7, { channel: 'email' });

    const delivered = await deliverByReturnFile(deps, 'semi', 7);

    expect(readdirSync(keysDir('semi'))).toEqual(['keys-7.csv']);
    expect(fileText('semi', 'keys-7.csv')).toBe(
      'customer_ref;activation_key;download_url;link_expires_at\r\n' +
        `${a.ref};${a.key};${a.url};2027-01-03T10:15:00.000Z\r\n` +
        `${b.ref};${b.key};${b.url};2027-01-03T10:15:00.000Z\r\n`,
    );
    expect(delivered).toEqual<DeliveredKey[]>([
      {
        subscriberId: a.subscriberId,
        licenceId: a.licenceId,
        channel: 'return-file',
        deliveredAt: NOW,
      },
      {
        subscriberId: b.subscriberId,
        licenceId: b.licenceId,
        channel: 'return-file',
        deliveredAt: NOW,
      },
    ]);
    const rows = await deliveryRows([
      a.deliveryId,
      b.deliveryId,
      other.deliveryId,
      mailed.deliveryId,
    ]);
    expect(
      rows.map((r) => [r.state, r.secret === null, r.delivered_at?.toISOString() ?? null]),
    ).toEqual([
      ['delivered', true, NOW.toISOString()],
      ['delivered', true, NOW.toISOString()],
      ['pending', false, null],
      ['pending', false, null],
    ]);
    const log = logLines.join('');
    for (const secret of [a.key, a.url, a.ref]) expect(log).not.toContain(secret);
  });

  it('delivers nothing twice and writes no file when nothing is pending', async () => {
    expect(await deliverByReturnFile(deps, 'semi', 7)).toEqual([]);
    expect(await deliverByReturnFile(deps, 'semi', 999)).toEqual([]);
    expect(readdirSync(keysDir('semi'))).toEqual(['keys-7.csv']);
    expect(existsSync(join(keysDir('semi'), 'keys-999.csv'))).toBe(false);
  });

  it('uses the ISP delimiter and quotes a value that holds it, a quote or a line break', async () => {
    const a = await seed('comma', 1, { ref: 'A,1' });
    const b = await seed('comma', 1, { ref: 'B"2' });
    await deliverByReturnFile(deps, 'comma', 1);
    expect(fileText('comma', 'keys-1.csv')).toBe(
      'customer_ref,activation_key,download_url,link_expires_at\r\n' +
        `"A,1",${a.key},${a.url},2027-01-03T10:15:00.000Z\r\n` +
        `"B""2",${b.key},${b.url},2027-01-03T10:15:00.000Z\r\n`,
    );

    const c = await seed('dash', 1, { ref: 'C3' });
    await deliverByReturnFile(deps, 'dash', 1);
    const [header, line] = fileText('dash', 'keys-1.csv').split('\r\n');
    expect(header).toBe('customer_ref-activation_key-download_url-link_expires_at');
    expect(line).toBe(`C3-"${c.key}"-${c.url}-"2027-01-03T10:15:00.000Z"`);
  });

  it('after a crash before the rows are marked, writes the same file again, once', async () => {
    const db = ctx().connectorDb;
    const seeded = [await seed('crash', 3), await seed('crash', 3), await seed('crash', 3)];
    const ids = seeded.map((s) => s.deliveryId);
    // A real database fault at the one step after the rename: marking the rows.
    await db.raw(
      "CREATE TRIGGER deliveries_crash BEFORE UPDATE ON deliveries FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'simulated crash'",
    );
    try {
      await expect(deliverByReturnFile(deps, 'crash', 3)).rejects.toThrow(/simulated crash/);
    } finally {
      await db.raw('DROP TRIGGER deliveries_crash');
    }
    const first = fileText('crash', 'keys-3.csv');
    expect((await deliveryRows(ids)).map((r) => [r.state, r.secret !== null])).toEqual([
      ['pending', true],
      ['pending', true],
      ['pending', true],
    ]);

    const delivered = await deliverByReturnFile(deps, 'crash', 3);

    expect(delivered.map((d) => d.licenceId)).toEqual(seeded.map((s) => s.licenceId));
    expect(readdirSync(keysDir('crash'))).toEqual(['keys-3.csv']);
    expect(fileText('crash', 'keys-3.csv')).toBe(first);
    expect(first.split('\r\n')).toHaveLength(5); // header, three keys, final line break
    expect((await deliveryRows(ids)).map((r) => [r.state, r.secret])).toEqual([
      ['delivered', null],
      ['delivered', null],
      ['delivered', null],
    ]);
  });

  it('removes the keys a writer killed before its rename left in a temporary file', async () => {
    const seeded = await seed('killed', 4);
    const dir = keysDir('killed');
    mkdirSync(dir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // exited, so no longer running
    const left = `.keys-4.csv.${dead}-0a1b2c3d.tmp`;
    const live = `.keys-9.csv.${process.ppid}-0a1b2c3d.tmp`; // vitest's main process runs on
    writeFileSync(
      join(dir, left),
      `customer_ref;activation_key\r\n${seeded.ref};${seeded.key}\r\n`,
    );
    writeFileSync(join(dir, live), '');

    await deliverByReturnFile(deps, 'killed', 4);

    expect(readdirSync(dir).sort()).toEqual([live, 'keys-4.csv']);
  });

  it('fails loudly on a secret sealed for another licence, writing and marking nothing', async () => {
    const good = await seed('bad', 4);
    const wrong = await seed('bad', 4, { sealFor: newId('lic') });

    await expect(deliverByReturnFile(deps, 'bad', 4)).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringMatching(
        new RegExp(
          `delivery ${wrong.deliveryId} \\(licence ${wrong.licenceId}\\): its secret does not open`,
        ),
      ),
    });
    expect(existsSync(join(keysDir('bad'), 'keys-4.csv'))).toBe(false);
    expect(existsSync(keysDir('bad')) ? readdirSync(keysDir('bad')) : []).toEqual([]);
    expect((await deliveryRows([good.deliveryId, wrong.deliveryId])).map((r) => r.state)).toEqual([
      'pending',
      'pending',
    ]);
  });

  it('refuses a key whose subscriber the map does not know', async () => {
    const orphan = await seed('bad', 5);
    await ctx().connectorDb('subscribers').where({ subscriber_id: orphan.subscriberId }).delete();
    await expect(deliverByReturnFile(deps, 'bad', 5)).rejects.toThrow(
      new RegExp(`subscriber ${orphan.subscriberId} is not in the subscriber map`),
    );
  });

  it('keeps the rows pending when the outbox cannot be written, and retries cleanly', async () => {
    const seeded = await seed('blocked', 2);
    const outbox = join(ctx().config.isps.get('blocked')?.workDir as string, 'outbox');
    mkdirSync(outbox, { recursive: true });
    writeFileSync(join(outbox, 'keys'), 'not a folder');

    await expect(deliverByReturnFile(deps, 'blocked', 2)).rejects.toMatchObject({
      code: 'DELIVERY_FAILED',
      retryable: true,
    });
    expect((await deliveryRows([seeded.deliveryId]))[0]).toMatchObject({ state: 'pending' });

    rmSync(join(outbox, 'keys'));
    expect(await deliverByReturnFile(deps, 'blocked', 2)).toHaveLength(1);
    expect(readdirSync(keysDir('blocked'))).toEqual(['keys-2.csv']);
  });

  it('puts keys added to a batch already delivered into a file of their own', async () => {
    const early = await seed('later', 6);
    await deliverByReturnFile(deps, 'later', 6);
    const before = fileText('later', 'keys-6.csv');
    const late = await seed('later', 6);

    const delivered = await deliverByReturnFile(deps, 'later', 6);

    expect(delivered.map((d) => d.licenceId)).toEqual([late.licenceId]);
    expect(readdirSync(keysDir('later')).sort()).toEqual([
      `keys-6-${late.deliveryId}.csv`,
      'keys-6.csv',
    ]);
    expect(fileText('later', 'keys-6.csv')).toBe(before);
    expect(before).toContain(early.key);
    expect(fileText('later', `keys-6-${late.deliveryId}.csv`)).toContain(late.key);
  });
});
