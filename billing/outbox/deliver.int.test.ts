import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { billingOutboxSchema } from '../../config/billing-outbox-schema.js';
import type { IspConfig } from '../../config/load.js';
import { createLogger, silentLogger } from '../../platform/logger.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { type SshdServer, sftpLoginOf, startSshd } from '../../test/harness/sshd.js';
import { type DeliveredFile, deliverFiles, type OutboxDeps } from './deliver.js';
import { listDeliveries } from './delivery-ledger.js';

const demo = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({ isps: { demo } });

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The demo ISP with `outbox` as its billing outbox, parsed the way the loader does. */
function ispWith(id: string, outbox: Record<string, unknown>): IspConfig {
  const base = ctx().config.isps.get('demo') as IspConfig;
  const billing = base.billing as NonNullable<IspConfig['billing']>;
  return { ...base, id, billing: { ...billing, outbox: billingOutboxSchema.parse(outbox) } };
}

function deps(extra: Partial<OutboxDeps> = {}): OutboxDeps {
  return { db: ctx().connectorDb, log: silentLogger(), lockWaitS: 5, ...extra };
}

function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'debug', destination }) };
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'relais-outbox-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Writes a local month-end file to deliver. */
async function localFile(name: string, content: Buffer | string): Promise<string> {
  const dir = join(work, randomBytes(4).toString('hex'));
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function ledger(ispId: string, period: string) {
  return listDeliveries(ctx().connectorDb, ispId, period);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('deliverFiles over sftp', () => {
  let server: SshdServer;
  let outboxDir: string;
  let owner: { uid: number; gid: number };
  let n = 0;
  /** A fresh ISP id per test, so ledgers never meet. */
  let ispId: string;

  const sftp = (extra: Record<string, unknown> = {}) =>
    ispWith(ispId, {
      ...sftpLoginOf(server),
      checksumFile: true,
      doneMarker: '.done',
      ...extra,
    });

  beforeAll(async () => {
    server = await startSshd();
    outboxDir = join(server.root, 'outbox');
    const info = await stat(outboxDir);
    owner = { uid: info.uid, gid: info.gid };
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    ispId = `sftp-${++n}`;
    await rm(outboxDir, { recursive: true, force: true });
    await mkdir(outboxDir, { mode: 0o755 });
    await chown(outboxDir, owner.uid, owner.gid);
  });

  it('uploads under the temporary name, renames, then writes the checksum file and marker', async () => {
    const content = Buffer.from('line;customer;amount\r\n1;C0001;1.20\r\n', 'utf8');
    const path = await localFile('factures-2026-11.csv', content);

    const [result] = await deliverFiles(deps(), sftp(), '2026-11', [path]);

    expect(result).toMatchObject({
      name: 'factures-2026-11.csv',
      outcome: 'delivered',
      sizeBytes: content.length,
      sha256: sha256(content),
      target: `sftp://127.0.0.1:${server.port}/outbox`,
    });
    expect(await readFile(join(outboxDir, 'factures-2026-11.csv'))).toEqual(content);
    expect(await readFile(join(outboxDir, 'factures-2026-11.csv.sha256'), 'utf8')).toBe(
      `${sha256(content)}  factures-2026-11.csv\n`,
    );
    // The checksum file is what sha256sum -c reads.
    expect(
      execFileSync('sha256sum', ['-c', 'factures-2026-11.csv.sha256'], {
        cwd: outboxDir,
      }).toString(),
    ).toBe('factures-2026-11.csv: OK\n');
    expect((await stat(join(outboxDir, 'factures-2026-11.csv.done'))).size).toBe(0);
    expect(await exists(join(outboxDir, 'factures-2026-11.csv.part'))).toBe(false);
    const [row] = await ledger(ispId, '2026-11');
    expect(row).toMatchObject({
      fileName: 'factures-2026-11.csv',
      status: 'delivered',
      sha256: sha256(content),
      sizeBytes: content.length,
      attempts: 1,
    });
    expect(row?.deliveredAt).toBeInstanceOf(Date);
  });

  it('does nothing on a retry, not even connect', async () => {
    const path = await localFile('lines.csv', 'a;b\r\n');
    await deliverFiles(deps(), sftp(), '2026-11', [path]);
    const before = await stat(join(outboxDir, 'lines.csv'));

    server.kill();
    let again: DeliveredFile[];
    try {
      again = await deliverFiles(deps(), sftp(), '2026-11', [path]);
    } finally {
      await server.restart();
    }

    expect(again.map((f) => f.outcome)).toEqual(['already-delivered']);
    const after = await stat(join(outboxDir, 'lines.csv'));
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect((await ledger(ispId, '2026-11')).map((r) => r.attempts)).toEqual([1]);
  });

  it('refuses a file of the same name with other content, and leaves the delivered one', async () => {
    await deliverFiles(deps(), sftp(), '2026-11', [await localFile('lines.csv', 'v1\r\n')]);
    const changed = await localFile('lines.csv', 'v2\r\n');

    await expect(deliverFiles(deps(), sftp(), '2026-11', [changed])).rejects.toMatchObject({
      code: 'BILLING_DELIVERY_CHANGED',
      retryable: false,
      message: expect.stringMatching(
        /lines\.csv of sftp-\d+ 2026-11 was delivered .*must never change/,
      ),
    });
    expect(await readFile(join(outboxDir, 'lines.csv'), 'utf8')).toBe('v1\r\n');
    expect((await ledger(ispId, '2026-11'))[0]?.sha256).toBe(sha256(Buffer.from('v1\r\n')));
  });

  it('never overwrites another file already under the final name', async () => {
    await writeFile(join(outboxDir, 'lines.csv'), 'the ISP own file\n');

    await expect(
      deliverFiles(deps(), sftp(), '2026-11', [await localFile('lines.csv', 'ours\r\n')]),
    ).rejects.toMatchObject({ code: 'BILLING_OUTBOX_OCCUPIED' });
    expect(await readFile(join(outboxDir, 'lines.csv'), 'utf8')).toBe('the ISP own file\n');
  });

  it('leaves no file under the final name when the outbox is removed mid-upload, and a retry succeeds once it is back', async () => {
    const content = randomBytes(96 * 1024 * 1024);
    const path = await localFile('big.csv', content);
    const temp = join(outboxDir, 'big.csv.part');

    const delivery = deliverFiles(deps(), sftp(), '2026-11', [path]);
    const settled = delivery.then(
      () => true,
      () => true,
    );
    while (
      (await stat(temp).then(
        (s) => s.size,
        () => 0,
      )) === 0
    ) {
      if (await Promise.race([settled, sleep(2).then(() => false)])) break;
    }
    await rm(outboxDir, { recursive: true, force: true });

    const err = await delivery.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 'SFTP_TRANSFER_FAILED',
      retryable: true,
      message: expect.stringMatching(
        /big\.csv\.part.*the outbox folder (\/outbox |itself )?is gone/,
      ),
    });
    expect((await ledger(ispId, '2026-11')).map((r) => r.status)).toEqual(['uploading']);

    await mkdir(outboxDir, { mode: 0o755 });
    await chown(outboxDir, owner.uid, owner.gid);
    expect(await exists(join(outboxDir, 'big.csv'))).toBe(false);
    const [retry] = await deliverFiles(deps(), sftp(), '2026-11', [path]);
    expect(retry?.outcome).toBe('delivered');
    expect(sha256(await readFile(join(outboxDir, 'big.csv')))).toBe(sha256(content));
    expect(await exists(temp)).toBe(false);
    expect((await ledger(ispId, '2026-11'))[0]).toMatchObject({ status: 'delivered', attempts: 2 });
  });

  it('fails clearly when the outbox is not writable, and a retry succeeds once it is', async () => {
    await chmod(outboxDir, 0o555);
    const path = await localFile('lines.csv', 'x\r\n');

    await expect(deliverFiles(deps(), sftp(), '2026-11', [path])).rejects.toMatchObject({
      code: 'SFTP_TRANSFER_FAILED',
      message: expect.stringMatching(/cannot upload \/outbox\/lines\.csv\.part/),
    });
    expect(await exists(join(outboxDir, 'lines.csv'))).toBe(false);

    await chmod(outboxDir, 0o755);
    const [retry] = await deliverFiles(deps(), sftp(), '2026-11', [path]);
    expect(retry?.outcome).toBe('delivered');
    expect(await readFile(join(outboxDir, 'lines.csv'), 'utf8')).toBe('x\r\n');
  });

  it('refuses to open an outbox folder that does not exist', async () => {
    const isp = sftp({ folder: '/nowhere' });
    await expect(
      deliverFiles(deps(), isp, '2026-11', [await localFile('lines.csv', 'x')]),
    ).rejects.toMatchObject({
      code: 'SFTP_TRANSFER_FAILED',
      message: expect.stringContaining('sftp outbox folder /nowhere does not exist'),
    });
  });

  it('reads a fastPut upload back and compares its checksum before renaming it', async () => {
    const content = randomBytes(8 * 1024 * 1024 + 17);
    const path = await localFile('fast.bin', content);
    const { lines, log } = capturedLog();

    const [result] = await deliverFiles(deps({ log }), sftp({ fastPut: true }), '2026-11', [path]);

    expect(result?.outcome).toBe('delivered');
    const readBack = lines.filter((l) => l.msg === 'billing file read back');
    expect(readBack).toMatchObject([
      { file: 'fast.bin.part', fastPut: true, sha256: sha256(content) },
    ]);
    expect(sha256(await readFile(join(outboxDir, 'fast.bin')))).toBe(sha256(content));
  });

  it('renames with plain SFTP rename where posix-rename is not used', async () => {
    const path = await localFile('plain.csv', 'p\r\n');
    const [result] = await deliverFiles(
      deps({ sftp: { usePosixRename: false } }),
      sftp(),
      '2026-11',
      [path],
    );
    expect(result?.outcome).toBe('delivered');
    expect(await readFile(join(outboxDir, 'plain.csv'), 'utf8')).toBe('p\r\n');
    expect(await exists(join(outboxDir, 'plain.csv.done'))).toBe(true);
  });

  describe('after a crash', () => {
    it('between the rename and the ledger: finishes the side files without uploading again', async () => {
      const path = await localFile('lines.csv', 'crash\r\n');
      await deliverFiles(deps(), sftp(), '2026-11', [path]);
      const before = await stat(join(outboxDir, 'lines.csv'));
      // The state a kill right after the rename leaves: row uploaded, side files not written.
      await ctx().connectorDb('billing_deliveries').where({ isp_id: ispId }).update({
        status: 'uploaded',
        delivered_at: null,
      });
      await rm(join(outboxDir, 'lines.csv.sha256'));
      await rm(join(outboxDir, 'lines.csv.done'));

      const [result] = await deliverFiles(deps(), sftp(), '2026-11', [path]);

      expect(result?.outcome).toBe('completed');
      const after = await stat(join(outboxDir, 'lines.csv'));
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
      expect(await exists(join(outboxDir, 'lines.csv.sha256'))).toBe(true);
      expect(await exists(join(outboxDir, 'lines.csv.done'))).toBe(true);
      expect((await ledger(ispId, '2026-11'))[0]?.status).toBe('delivered');
    });

    it('after the rename, with the file collected by the ISP since: marks it delivered, uploads nothing', async () => {
      const path = await localFile('lines.csv', 'collected\r\n');
      await deliverFiles(deps(), sftp(), '2026-11', [path]);
      await ctx()
        .connectorDb('billing_deliveries')
        .where({ isp_id: ispId })
        .update({ status: 'uploaded' });
      for (const f of ['lines.csv', 'lines.csv.sha256', 'lines.csv.done'])
        await rm(join(outboxDir, f));

      const [result] = await deliverFiles(deps(), sftp(), '2026-11', [path]);

      expect(result?.outcome).toBe('completed');
      expect(await exists(join(outboxDir, 'lines.csv'))).toBe(false);
      expect((await ledger(ispId, '2026-11'))[0]?.status).toBe('delivered');
    });

    it('mid-upload: replaces the partial temporary file and delivers', async () => {
      const path = await localFile('lines.csv', 'whole\r\n');
      await ctx()
        .connectorDb('billing_deliveries')
        .insert({
          isp_id: ispId,
          period: '2026-11',
          file_name: 'lines.csv',
          sha256: sha256(Buffer.from('whole\r\n')),
          size_bytes: 7,
          status: 'uploading',
          target: 'sftp://earlier',
          attempts: 1,
          created_at: new Date(),
          updated_at: new Date(),
        });
      await writeFile(join(outboxDir, 'lines.csv.part'), 'who');
      await chown(join(outboxDir, 'lines.csv.part'), owner.uid, owner.gid);

      const [result] = await deliverFiles(deps(), sftp(), '2026-11', [path]);

      expect(result?.outcome).toBe('delivered');
      expect(await readFile(join(outboxDir, 'lines.csv'), 'utf8')).toBe('whole\r\n');
      expect(await exists(join(outboxDir, 'lines.csv.part'))).toBe(false);
      expect((await ledger(ispId, '2026-11'))[0]).toMatchObject({
        status: 'delivered',
        attempts: 2,
      });
    });

    it('with other content verified but never renamed: the ISP never saw it, so the new one goes', async () => {
      const path = await localFile('lines.csv', 'new\r\n');
      await ctx()
        .connectorDb('billing_deliveries')
        .insert({
          isp_id: ispId,
          period: '2026-11',
          file_name: 'lines.csv',
          sha256: sha256(Buffer.from('old\r\n')),
          size_bytes: 5,
          status: 'uploaded',
          target: 'sftp://earlier',
          attempts: 1,
          created_at: new Date(),
          updated_at: new Date(),
        });
      await writeFile(join(outboxDir, 'lines.csv.part'), 'old\r\n');

      const [result] = await deliverFiles(deps(), sftp(), '2026-11', [path]);

      expect(result?.outcome).toBe('delivered');
      expect(await readFile(join(outboxDir, 'lines.csv'), 'utf8')).toBe('new\r\n');
    });

    it('with other content that may have reached the ISP: refuses', async () => {
      const path = await localFile('lines.csv', 'new\r\n');
      await ctx()
        .connectorDb('billing_deliveries')
        .insert({
          isp_id: ispId,
          period: '2026-11',
          file_name: 'lines.csv',
          sha256: sha256(Buffer.from('old\r\n')),
          size_bytes: 5,
          status: 'uploaded',
          target: 'sftp://earlier',
          attempts: 1,
          created_at: new Date(),
          updated_at: new Date(),
        });

      await expect(deliverFiles(deps(), sftp(), '2026-11', [path])).rejects.toMatchObject({
        code: 'BILLING_DELIVERY_CHANGED',
      });
      expect(await exists(join(outboxDir, 'lines.csv'))).toBe(false);
    });
  });
});

describe('deliverFiles to a local folder', () => {
  it('creates the default outbox, delivers, and does nothing on a retry', async () => {
    const isp = ispWith('local-default', { type: 'local', checksumFile: true });
    const outbox = join(isp.workDir, 'outbox');
    const path = await localFile('lines-2026-11.csv', 'l1\r\n');

    const [first] = await deliverFiles(deps(), isp, '2026-11', [path]);
    const before = await stat(join(outbox, 'lines-2026-11.csv'));
    const [second] = await deliverFiles(deps(), isp, '2026-11', [path]);

    expect([first?.outcome, second?.outcome]).toEqual(['delivered', 'already-delivered']);
    expect(first?.target).toBe(`file://${outbox}`);
    expect(await readFile(join(outbox, 'lines-2026-11.csv'), 'utf8')).toBe('l1\r\n');
    expect(await readFile(join(outbox, 'lines-2026-11.csv.sha256'), 'utf8')).toBe(
      `${sha256(Buffer.from('l1\r\n'))}  lines-2026-11.csv\n`,
    );
    expect(await exists(join(outbox, 'lines-2026-11.csv.done'))).toBe(false);
    expect((await stat(join(outbox, 'lines-2026-11.csv'))).ino).toBe(before.ino);
  });

  it('refuses changed content, and writes a done marker when asked', async () => {
    const folder = join(work, 'share-outbox');
    await mkdir(folder);
    const isp = ispWith('local-share', { type: 'local', folder, doneMarker: '.ok' });
    await deliverFiles(deps(), isp, '2026-11', [await localFile('a.xml', '<a/>')]);

    await expect(
      deliverFiles(deps(), isp, '2026-11', [await localFile('a.xml', '<b/>')]),
    ).rejects.toMatchObject({ code: 'BILLING_DELIVERY_CHANGED' });
    expect(await readFile(join(folder, 'a.xml'), 'utf8')).toBe('<a/>');
    expect((await stat(join(folder, 'a.xml.ok'))).size).toBe(0);
  });

  it('does not create a configured folder that is missing', async () => {
    const folder = join(work, 'not-mounted');
    const isp = ispWith('local-missing', { type: 'local', folder });

    await expect(
      deliverFiles(deps(), isp, '2026-11', [await localFile('a.csv', 'x')]),
    ).rejects.toMatchObject({
      code: 'TRANSPORT_IO_FAILED',
      message: expect.stringContaining(`local outbox ${folder}: cannot open the outbox (ENOENT)`),
    });
    expect(await exists(folder)).toBe(false);
  });

  it('refuses a malformed period before touching anything', async () => {
    const isp = ispWith('local-period', { type: 'local' });
    await expect(deliverFiles(deps(), isp, '2026-13', [])).rejects.toMatchObject({
      code: 'PERIOD_INVALID',
    });
  });
});
