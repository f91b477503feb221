/**
 * Upload throughput of the billing outbox over SFTP. Starts a throwaway OpenSSH server
 * (test/harness/sshd.ts: needs root and sshd), generates a 200 MiB file, and uploads it with the
 * outbox's SFTP target (our TCP socket with no-delay) using sequential `put` and `fastPut`.
 * Each upload is timed with its remote size check, as a delivery does it; the read-back that
 * fastPut (or readBack: true) adds is timed apart. Every copy is then checked on the server's
 * disk: size and SHA-256. Prints MB/s (10^6 bytes). Target: at least 100 MB/s with `put`.
 *
 * Run: npm run bench:billing-sftp
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SftpOutbox } from '../billing/outbox/sftp-outbox.js';
import { sftpOutboxSchema } from '../config/billing-outbox-schema.js';
import { hashFile } from '../connectors/transports/local-files.js';
import { silentLogger } from '../platform/logger.js';
import { type SshdServer, startSshd } from '../test/harness/sshd.js';

const FILE_BYTES = 200 * 1024 * 1024;
const CHUNK_BYTES = 1024 * 1024;
const RUNS = 3;
const TARGET_PUT_MBPS = 100;

/** Writes `bytes` of CSV-like text (what an invoice-line file is) and returns its SHA-256. */
async function writeLinesFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  // Random hex in CSV rows: compressible like real lines, but never one repeated block.
  for (let written = 0; written < bytes; written += CHUNK_BYTES) {
    const size = Math.min(CHUNK_BYTES, bytes - written);
    const chunk = Buffer.from(randomBytes(size / 2).toString('hex'), 'latin1');
    for (let i = 63; i < chunk.length; i += 64) chunk[i] = i % 128 === 127 ? 0x0a : 0x3b;
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  return hash.digest('hex');
}

function seconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

interface Figures {
  uploadS: number;
  readBackS: number;
  ok: boolean;
}

async function uploadOnce(
  server: SshdServer,
  local: string,
  sha: string,
  fastPut: boolean,
): Promise<Figures> {
  const settings = sftpOutboxSchema.parse({
    type: 'sftp',
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.privateKey,
    hostKeyFingerprint: server.hostKeyFingerprint,
    fastPut,
  });
  const outbox = await SftpOutbox.open(settings, silentLogger());
  const name = 'bench.csv.part';
  try {
    let started = process.hrtime.bigint();
    const sent = await outbox.upload(local, name, { fastPut });
    const remoteSize = await outbox.sizeOf(name);
    const uploadS = seconds(started);
    started = process.hrtime.bigint();
    const back = await outbox.digestOf(name);
    const readBackS = seconds(started);
    const onDisk = await hashFile(join(server.root, 'outbox', name));
    const ok =
      sent.sha256 === sha &&
      remoteSize === FILE_BYTES &&
      back.sha256 === sha &&
      onDisk.sha256 === sha &&
      onDisk.sizeBytes === FILE_BYTES;
    return { uploadS, readBackS, ok };
  } finally {
    await outbox.remove(name);
    await outbox.close();
  }
}

function mbPerS(s: number): string {
  return `${(FILE_BYTES / 1e6 / s).toFixed(1).padStart(7)} MB/s`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function main(): Promise<void> {
  const server = await startSshd();
  const work = await mkdtemp(join(tmpdir(), 'relais-bench-'));
  try {
    const local = join(work, 'bench.csv');
    const sha = await writeLinesFile(local, FILE_BYTES);
    console.log(`file: ${FILE_BYTES} bytes, ${RUNS} runs each, MB = 10^6 bytes`);
    const putSpeeds: number[] = [];
    for (let run = 1; run <= RUNS; run++) {
      for (const fastPut of [false, true]) {
        const { uploadS, readBackS, ok } = await uploadOnce(server, local, sha, fastPut);
        const method = fastPut ? 'fastPut' : 'put (no-delay)';
        console.log(
          `${method.padEnd(16)} upload+size ${mbPerS(uploadS)}   read-back ${mbPerS(readBackS)}   with read-back ${mbPerS(uploadS + readBackS)}  ${ok ? 'size and sha256 ok' : 'MISMATCH'}`,
        );
        if (!ok) process.exitCode = 1;
        if (!fastPut) putSpeeds.push(FILE_BYTES / 1e6 / uploadS);
      }
    }
    const putMedian = median(putSpeeds);
    console.log(`median put: ${putMedian.toFixed(1)} MB/s (target ${TARGET_PUT_MBPS})`);
    if (putMedian < TARGET_PUT_MBPS) process.exitCode = 1;
  } finally {
    await rm(work, { recursive: true, force: true });
    await server.stop();
  }
}

await main();
