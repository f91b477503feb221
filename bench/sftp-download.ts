/**
 * SFTP download throughput. Starts a throwaway OpenSSH server (test/harness/sshd.ts: needs root
 * and sshd), writes a 200 MiB file of random bytes into its inbox, then downloads it with the
 * SFTP transport using streamed `get` (TCP no-delay) and `fastGet`, checks size and SHA-256 of
 * each copy, and prints MB/s (10^6 bytes). Target: at least 100 MB/s with `get`. For contrast it
 * also times a plain ssh2-sftp-client `get` on ssh2's own socket, where Nagle's algorithm is on.
 *
 * Run: npx tsx bench/sftp-download.ts
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, rmSync } from 'node:fs';
import { chown, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { hashFile } from '../connectors/transports/local-files.js';
import { openPolledTransport } from '../connectors/transports/open.js';
import { sftpOptionsSchema } from '../connectors/transports/sftp.options.js';
import { fingerprintOf, sameFingerprint } from '../connectors/transports/sftp-host-key.js';
import type { DownloadResult } from '../connectors/transports/transport.js';
import { silentLogger } from '../platform/logger.js';
import { type SshdServer, startSshd } from '../test/harness/sshd.js';

const FILE_BYTES = 200 * 1024 * 1024;
const CHUNK_BYTES = 1024 * 1024;
const RUNS = 3;
const TARGET_GET_MBPS = 100;

/** Writes `bytes` random bytes to `path` and returns their SHA-256. */
async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  for (let written = 0; written < bytes; written += CHUNK_BYTES) {
    const chunk = randomBytes(Math.min(CHUNK_BYTES, bytes - written));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  return hash.digest('hex');
}

interface Timed {
  result: DownloadResult;
  seconds: number;
}

/** Times `download` alone: connecting and closing are left out of the figure. */
async function time(download: () => Promise<DownloadResult>): Promise<Timed> {
  const started = process.hrtime.bigint();
  const result = await download();
  return { result, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

async function transportDownload(
  server: SshdServer,
  fastGet: boolean,
  localPath: string,
): Promise<Timed> {
  const options = sftpOptionsSchema.parse({
    type: 'sftp',
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.privateKey,
    hostKeyFingerprint: server.hostKeyFingerprint,
    fastGet,
  });
  const transport = await openPolledTransport(options, silentLogger());
  try {
    return await time(() => transport.download('bench.bin', localPath));
  } finally {
    await transport.close();
    rmSync(localPath, { force: true });
  }
}

/** ssh2-sftp-client on its own: ssh2 opens the socket and leaves Nagle's algorithm on. */
async function plainGet(server: SshdServer, localPath: string): Promise<Timed> {
  const client = new SftpClient('bench');
  await client.connect({
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.privateKey,
    hostVerifier: (key: Buffer) => sameFingerprint(fingerprintOf(key), server.hostKeyFingerprint),
  });
  try {
    return await time(async () => {
      const out = createWriteStream(localPath);
      await client.get(`${server.inboxPath}/bench.bin`, out);
      if (!out.closed) await once(out, 'close');
      return hashFile(localPath);
    });
  } finally {
    await client.end();
    rmSync(localPath, { force: true });
  }
}

async function main(): Promise<void> {
  const server = await startSshd();
  const work = await mkdtemp(join(tmpdir(), 'relais-bench-'));
  try {
    const remote = join(server.root, 'inbox', 'bench.bin');
    const sha = await writeRandomFile(remote, FILE_BYTES);
    const owner = await stat(join(server.root, 'inbox'));
    await chown(remote, owner.uid, owner.gid);
    const local = join(work, 'bench.bin');
    const methods: [string, () => Promise<Timed>][] = [
      ['transport get (no-delay)', () => transportDownload(server, false, local)],
      ['transport fastGet', () => transportDownload(server, true, local)],
      ['plain get (Nagle on)', () => plainGet(server, local)],
    ];
    console.log(`file: ${FILE_BYTES} bytes, ${RUNS} runs each, MB = 10^6 bytes`);
    const speeds = new Map<string, number[]>();
    for (let run = 1; run <= RUNS; run++) {
      for (const [method, download] of methods) {
        const { result, seconds } = await download();
        const mbPerS = FILE_BYTES / 1e6 / seconds;
        const ok = result.sizeBytes === FILE_BYTES && result.sha256 === sha;
        const speed = `${mbPerS.toFixed(1).padStart(7)} MB/s`;
        console.log(`${method.padEnd(26)} ${speed}  ${ok ? 'size and sha256 ok' : 'MISMATCH'}`);
        if (!ok) process.exitCode = 1;
        speeds.set(method, [...(speeds.get(method) ?? []), mbPerS]);
      }
    }
    const runsOf = [...(speeds.get('transport get (no-delay)') ?? [0])].sort((a, b) => a - b);
    const median = runsOf[Math.floor(runsOf.length / 2)] as number;
    console.log(`median transport get: ${median.toFixed(1)} MB/s (target ${TARGET_GET_MBPS})`);
    if (median < TARGET_GET_MBPS) process.exitCode = 1;
  } finally {
    await rm(work, { recursive: true, force: true });
    await server.stop();
  }
}

await main();
