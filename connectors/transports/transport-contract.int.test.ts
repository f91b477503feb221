/**
 * The transport contract: one set of behaviours run against every PolledTransport (the local
 * folder; SFTP with `get` and with `fastGet` on a real OpenSSH server), plus the pickup semantics
 * of pickup.ts on top of each. A transport that passes here can be used for any ISP.
 *
 * To run it against a new transport, add an entry to TARGETS whose `setUp()` returns the local
 * folder the ISP side writes into (the test plays the ISP by writing there directly), an `open()`
 * that opens the transport on that inbox, and a `tearDown()`. Anything the transport must not
 * reveal goes into `secrets`. Run: `npx vitest run connectors/transports/transport-contract`
 * (as root: SFTP targets start sshd through test/harness/sshd.ts).
 *
 * Left out on purpose: connection failures, retries and host keys (sftp.int.test.ts), and
 * cross-device moves (local-folder.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFile,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TransientError } from '../../platform/errors.js';
import { silentLogger } from '../../platform/logger.js';
import { type SshdServer, startSshd } from '../../test/harness/sshd.js';
import { openPolledTransport } from './open.js';
import { type SelectContext, selectReadyFiles, settleFile } from './pickup.js';
import { type PickupOptions, pickupSchema } from './pickup.options.js';
import { sftpOptionsSchema } from './sftp.options.js';
import type { InboxFile, PolledTransport } from './transport.js';

interface TargetSetUp {
  /** Local path of the folder the transport sees as its inbox. */
  inboxDir: string;
  open(): Promise<PolledTransport>;
  /** Values that must never appear in `description`. */
  secrets: string[];
  tearDown(): Promise<void>;
}

interface ContractTarget {
  name: string;
  setUp(): Promise<TargetSetUp>;
}

const log = silentLogger();

async function localTarget(): Promise<TargetSetUp> {
  const base = await mkdtemp(join(tmpdir(), 'relais-contract-'));
  const inbox = join(base, 'inbox');
  await mkdir(inbox);
  return {
    inboxDir: inbox,
    open: () => openPolledTransport({ type: 'local', inbox }, log),
    secrets: [],
    tearDown: () => rm(base, { recursive: true, force: true }),
  };
}

async function sftpTarget(fastGet: boolean): Promise<TargetSetUp> {
  const server: SshdServer = await startSshd();
  const options = sftpOptionsSchema.parse({
    type: 'sftp',
    host: server.host,
    port: server.port,
    username: server.username,
    password: server.password,
    hostKeyFingerprint: server.hostKeyFingerprint,
    inbox: server.inboxPath,
    fastGet,
  });
  return {
    inboxDir: join(server.root, 'inbox'),
    open: () => openPolledTransport(options, log),
    secrets: [server.password],
    tearDown: () => server.stop(),
  };
}

const TARGETS: ContractTarget[] = [
  { name: 'local folder', setUp: localTarget },
  { name: 'sftp with get', setUp: () => sftpTarget(false) },
  { name: 'sftp with fastGet', setUp: () => sftpTarget(true) },
];

/** Whole seconds: SFTP v3 carries mtimes in seconds. */
function secondsAgo(seconds: number): Date {
  return new Date((Math.floor(Date.now() / 1000) - seconds) * 1000);
}

const HOUR_AGO = secondsAgo(3_600);

function pickupOf(overrides: Record<string, unknown> = {}): PickupOptions {
  return pickupSchema.parse({ completeness: { type: 'stable', minAgeS: 60 }, ...overrides });
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

const nobodyKnows: SelectContext = { isKnown: async () => false };

/** The transport, with a hook that runs after each listing (the ISP writing meanwhile). */
function afterListing(transport: PolledTransport, hook: () => Promise<void>): PolledTransport {
  return {
    description: transport.description,
    list: async () => {
      const files = await transport.list();
      await hook();
      return files;
    },
    stat: (name, folder) => transport.stat(name, folder),
    download: (name, localPath) => transport.download(name, localPath),
    moveTo: (name, folder, newName) => transport.moveTo(name, folder, newName),
    remove: (name) => transport.remove(name),
    writeText: (folder, name, text) => transport.writeText(folder, name, text),
    close: () => transport.close(),
  };
}

describe.each(TARGETS)('$name transport', (target) => {
  let setUp: TargetSetUp;
  let transport: PolledTransport;
  let staging: string;
  let owner: { uid: number; gid: number };

  /** Writes a file into the inbox (or a subfolder of it) as the ISP would. */
  async function put(name: string, content: string | Buffer, mtime = HOUR_AGO): Promise<string> {
    const path = join(setUp.inboxDir, name);
    await writeFile(path, content);
    await chown(path, owner.uid, owner.gid);
    await utimes(path, mtime, mtime);
    return path;
  }

  async function namesIn(folder = ''): Promise<string[]> {
    const entries = await readdir(join(setUp.inboxDir, folder)).catch(() => []);
    return entries.sort();
  }

  function readIn(folder: string, name: string): Promise<string> {
    return readFile(join(setUp.inboxDir, folder, name), 'utf8');
  }

  beforeAll(async () => {
    setUp = await target.setUp();
    staging = await mkdtemp(join(tmpdir(), 'relais-staging-'));
    owner = await stat(setUp.inboxDir);
  });

  afterAll(async () => {
    await rm(staging, { recursive: true, force: true });
    await setUp?.tearDown();
  });

  beforeEach(async () => {
    for (const entry of await readdir(setUp.inboxDir)) {
      await rm(join(setUp.inboxDir, entry), { recursive: true, force: true });
    }
    transport = await setUp.open();
  });

  afterEach(async () => {
    await transport.close();
  });

  describe('operations', () => {
    it('lists the regular files of the inbox with size and mtime, not its folders', async () => {
      const twoMinutesAgo = new Date(HOUR_AGO.getTime() + 58 * 60_000);
      await put('a.csv', 'ref;offer\n');
      await put('b.xml', '<x/>', twoMinutesAgo);
      await mkdir(join(setUp.inboxDir, 'processed'));
      await put('processed/old.csv', 'old');

      const files = (await transport.list()).sort((x, y) => x.name.localeCompare(y.name));

      expect(files).toEqual([
        { name: 'a.csv', sizeBytes: 10, mtimeMs: HOUR_AGO.getTime() },
        { name: 'b.xml', sizeBytes: 4, mtimeMs: twoMinutesAgo.getTime() },
      ]);
    });

    it('stats a file in the inbox or in a subfolder, and gives undefined when absent', async () => {
      await put('a.csv', 'abc');
      await mkdir(join(setUp.inboxDir, 'failed'));
      await put('failed/b.csv', 'abcd');

      expect(await transport.stat('a.csv')).toEqual({
        name: 'a.csv',
        sizeBytes: 3,
        mtimeMs: HOUR_AGO.getTime(),
      });
      expect(await transport.stat('b.csv', 'failed')).toMatchObject({ sizeBytes: 4 });
      expect(await transport.stat('missing.csv')).toBeUndefined();
      expect(await transport.stat('a.csv', 'failed')).toBeUndefined();
      expect(await transport.stat('a.csv', 'no-such-folder')).toBeUndefined();
    });

    it.each([
      ['an empty file', 0],
      ['a one-byte file', 1],
      ['a 3 MiB binary file of odd size', 3 * 1024 * 1024 + 7],
    ])('downloads %s with its size and sha256', async (_label, size) => {
      const content = randomBytes(size);
      await put('export.bin', content);
      const localPath = join(staging, `download-${size}`);

      const result = await transport.download('export.bin', localPath);

      expect(result).toEqual({ sizeBytes: size, sha256: sha256(content) });
      expect(sha256(await readFile(localPath))).toBe(sha256(content));
    });

    it('fails to download a missing file with a TransientError and leaves no local file', async () => {
      const localPath = join(staging, 'missing');

      const failure = transport.download('missing.csv', localPath);

      await expect(failure).rejects.toBeInstanceOf(TransientError);
      await expect(stat(localPath)).rejects.toThrow(/ENOENT/);
    });

    it('moves a file into a new subfolder, under its own name or a new one', async () => {
      await put('a.csv', 'a');
      await put('b.csv', 'b');

      await transport.moveTo('a.csv', 'processed');
      await transport.moveTo('b.csv', 'archive/2026', 'b.renamed.csv');

      expect(await namesIn()).toEqual(['archive', 'processed']);
      expect(await readIn('processed', 'a.csv')).toBe('a');
      expect(await readIn('archive/2026', 'b.renamed.csv')).toBe('b');
    });

    it('removes a file, and removing a missing file is not an error', async () => {
      await put('a.csv', 'a');

      await transport.remove('a.csv');
      await transport.remove('a.csv');

      expect(await namesIn()).toEqual([]);
    });

    it('writes a text file whole into a subfolder and leaves no temp file', async () => {
      await transport.writeText('failed', 'a.csv.error.txt', 'reason: é\n');
      await transport.writeText('failed', 'a.csv.error.txt', 'reason: replaced\n');

      expect(await namesIn('failed')).toEqual(['a.csv.error.txt']);
      expect(await readIn('failed', 'a.csv.error.txt')).toBe('reason: replaced\n');
    });

    it('refuses names and folders that would leave the inbox', async () => {
      await expect(transport.stat('../etc/passwd')).rejects.toThrow(/not a plain file name/);
      await expect(transport.moveTo('a.csv', '../outside')).rejects.toThrow(/inside the inbox/);
    });

    it('describes itself without any secret', () => {
      expect(transport.description.length).toBeGreaterThan(0);
      for (const secret of setUp.secrets) expect(transport.description).not.toContain(secret);
    });
  });

  describe('pickup', () => {
    it('keeps names matching the pattern, never hidden or temporary files', async () => {
      for (const name of ['export_1.csv', 'export_2.csv.tmp', 'export_3.csv.part']) {
        await put(name, 'x');
      }
      for (const name of ['other.txt', '.export_4.csv', 'export_5.csv.writing']) {
        await put(name, 'x');
      }

      const byPattern = await selectReadyFiles(
        transport,
        pickupOf({ pattern: 'export_*.csv' }),
        nobodyKnows,
      );
      const everything = await selectReadyFiles(transport, pickupOf(), nobodyKnows);

      expect(byPattern.ready.map((f) => f.name)).toEqual(['export_1.csv']);
      expect(everything.ready.map((f) => f.name).sort()).toEqual(['export_1.csv', 'other.txt']);
      expect(everything.skipped).toEqual([]);
    });

    it('waits until the last modification is minAgeS old', async () => {
      await put('old.csv', 'x', secondsAgo(61));
      await put('young.csv', 'x', secondsAgo(5));

      const selection = await selectReadyFiles(transport, pickupOf(), nobodyKnows);

      expect(selection.ready.map((f) => f.name)).toEqual(['old.csv']);
      expect(selection.skipped).toMatchObject([{ name: 'young.csv', reason: 'too recent' }]);
    });

    it.each([
      [
        'its size',
        async (path: string) => {
          await appendFile(path, 'more');
          await utimes(path, HOUR_AGO, HOUR_AGO);
        },
      ],
      ['its mtime', (path: string) => utimes(path, secondsAgo(1_800), secondsAgo(1_800))],
    ])(
      'skips a file when %s changes between the listing and the second look',
      async (_l, touch) => {
        const path = await put('export.csv', 'first part');
        await put('quiet.csv', 'done');
        const writing = afterListing(transport, () => touch(path));

        const selection = await selectReadyFiles(writing, pickupOf(), nobodyKnows);

        expect(selection.ready.map((f) => f.name)).toEqual(['quiet.csv']);
        expect(selection.skipped).toMatchObject([{ name: 'export.csv', reason: 'still changing' }]);
      },
    );

    it('with a done marker, takes a file once its marker exists and never the marker', async () => {
      const pickup = pickupOf({ completeness: { type: 'done-marker', suffix: '.done' } });
      await put('a.csv', 'a', secondsAgo(1));
      await put('a.csv.done', '', secondsAgo(1));
      await put('b.csv', 'b');

      const selection = await selectReadyFiles(transport, pickup, nobodyKnows);

      expect(selection.ready.map((f) => f.name)).toEqual(['a.csv']);
      expect(selection.skipped).toMatchObject([{ name: 'b.csv', reason: 'no done marker' }]);
    });

    it('reports a complete zero-byte file as zero bytes instead of ready', async () => {
      await put('empty.csv', '');
      await put('young-empty.csv', '', secondsAgo(2));

      const selection = await selectReadyFiles(transport, pickupOf(), nobodyKnows);

      expect(selection.ready).toEqual([]);
      expect(selection.skipped).toEqual([
        { name: 'empty.csv', sizeBytes: 0, mtimeMs: HOUR_AGO.getTime(), reason: 'zero bytes' },
        expect.objectContaining({ name: 'young-empty.csv', reason: 'too recent' }),
      ]);
    });

    it('orders by mtime then name and stops at maxFilesPerPoll', async () => {
      const later = (seconds: number) => new Date(HOUR_AGO.getTime() + seconds * 1000);
      await put('c.csv', 'c', later(0));
      await put('b.csv', 'b', later(100));
      await put('a.csv', 'a', later(100));
      await put('d.csv', 'd', later(200));

      const all = await selectReadyFiles(transport, pickupOf(), nobodyKnows);
      const firstTwo = await selectReadyFiles(
        transport,
        pickupOf({ maxFilesPerPoll: 2 }),
        nobodyKnows,
      );

      expect(all.ready.map((f) => f.name)).toEqual(['c.csv', 'a.csv', 'b.csv', 'd.csv']);
      expect(firstTwo.ready.map((f) => f.name)).toEqual(['c.csv', 'a.csv']);
      expect(firstTwo.skipped).toMatchObject([
        { name: 'b.csv', reason: 'over poll limit' },
        { name: 'd.csv', reason: 'over poll limit' },
      ]);
    });

    it('skips files the ledger already knows, asking with name, size and mtime', async () => {
      await put('seen.csv', 'seen');
      await put('new.csv', 'new!!');
      const asked: InboxFile[] = [];
      const ledger: SelectContext = {
        isKnown: async (file) => {
          asked.push(file);
          return file.name === 'seen.csv';
        },
      };

      const selection = await selectReadyFiles(transport, pickupOf(), ledger);

      expect(selection.ready.map((f) => f.name)).toEqual(['new.csv']);
      expect(selection.skipped).toMatchObject([{ name: 'seen.csv', reason: 'already processed' }]);
      expect(asked).toContainEqual({ name: 'seen.csv', sizeBytes: 4, mtimeMs: HOUR_AGO.getTime() });
    });
  });

  describe('settling', () => {
    const at = Date.UTC(2026, 4, 12, 10, 15, 30, 123);

    it('moves a processed file into processedDir and keeps an earlier one of that name', async () => {
      const pickup = pickupOf();
      await put('export.csv', 'first');
      await settleFile(transport, pickup, { name: 'export.csv' }, { ok: true }, at);
      await put('export.csv', 'second');
      await settleFile(transport, pickup, { name: 'export.csv' }, { ok: true }, at);

      expect(await namesIn()).toEqual(['processed']);
      expect(await namesIn('processed')).toEqual(['export.20260512T101530123Z.csv', 'export.csv']);
      expect(await readIn('processed', 'export.csv')).toBe('first');
      expect(await readIn('processed', 'export.20260512T101530123Z.csv')).toBe('second');
    });

    it.each([
      ['delete', []],
      ['leave', ['export.csv']],
    ])('with afterSuccess %s, settles a processed file in place', async (afterSuccess, left) => {
      await put('export.csv', 'data');

      await settleFile(transport, pickupOf({ afterSuccess }), { name: 'export.csv' }, { ok: true });

      expect(await namesIn()).toEqual(left);
    });

    it('moves a refused file into failedDir with <name>.error.txt giving the reason', async () => {
      const pickup = pickupOf({ failedDir: 'rejected' });
      await put('export.csv', 'data');
      await settleFile(transport, pickup, { name: 'export.csv' }, { ok: false, reason: 'first' });
      await put('export.csv', 'data again');

      await settleFile(
        transport,
        pickup,
        { name: 'export.csv' },
        { ok: false, reason: 'FEED_ZERO_BYTES: the file is empty' },
        at,
      );

      expect(await namesIn()).toEqual(['rejected']);
      expect(await namesIn('rejected')).toEqual([
        'export.20260512T101530123Z.csv',
        'export.20260512T101530123Z.csv.error.txt',
        'export.csv',
        'export.csv.error.txt',
      ]);
      const report = await readIn('rejected', 'export.20260512T101530123Z.csv.error.txt');
      expect(report).toContain('reason: FEED_ZERO_BYTES: the file is empty\n');
      expect(report).toContain('file: export.csv\n');
      expect(await readIn('rejected', 'export.csv.error.txt')).toContain('reason: first\n');
    });

    it('leaves a refused file alone when afterFailure is leave', async () => {
      await put('export.csv', 'data');

      await settleFile(
        transport,
        pickupOf({ afterFailure: 'leave' }),
        { name: 'export.csv' },
        { ok: false, reason: 'bad' },
      );

      expect(await namesIn()).toEqual(['export.csv']);
    });

    it('moves or deletes the done marker together with its file', async () => {
      const marker = { type: 'done-marker', suffix: '.ok' };
      await put('a.csv', 'a');
      await put('a.csv.ok', '');
      await put('b.csv', 'b');
      await put('b.csv.ok', '');

      await settleFile(
        transport,
        pickupOf({ completeness: marker }),
        { name: 'a.csv' },
        {
          ok: false,
          reason: 'bad',
        },
      );
      await settleFile(
        transport,
        pickupOf({ completeness: marker, afterSuccess: 'delete' }),
        { name: 'b.csv' },
        { ok: true },
      );

      expect(await namesIn()).toEqual(['failed']);
      expect(await namesIn('failed')).toEqual(['a.csv', 'a.csv.error.txt', 'a.csv.ok']);
    });
  });
});
