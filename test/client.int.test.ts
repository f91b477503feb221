import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activationRoutes } from '../api/activation.routes.js';
import { buildApi } from '../api/server.js';
import { registerClientCommand } from '../cli/commands/client.js';
import { exitCodeFor } from '../cli/exit.js';
import type { LicensingDeps } from '../licensing/context.js';
import { type Keystore, openKeystore } from '../licensing/keystore.js';
import { LICENCE_DOCUMENT_TYPE } from '../licensing/licence-document.js';
import { signDocument } from '../licensing/signed-document.js';
import { silentLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';
import { seedLicence } from './harness/seed-licences.js';

const ctx = useTestContext({ isps: { 'demo-fai': readShipped() } });

function readShipped(): string {
  return readFileSync(join(import.meta.dirname, '../config/isps/demo-fai.yaml'), 'utf8');
}

let app: FastifyInstance;
let server: string;
let deps: LicensingDeps;
let stateRoot: string;

beforeAll(async () => {
  const c = ctx();
  deps = licensingDepsOf(c);
  app = await buildApi({
    log: silentLogger(),
    metrics: deps.metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [async (a) => a.register(activationRoutes, { deps })],
  });
  server = await app.listen({ host: '127.0.0.1', port: 0 });
  stateRoot = mkdtempSync(join(tmpdir(), 'relais-client-'));
});
/** A server on the same databases that signs with keys of its own: an impostor, or a rotation. */
async function otherServer(
  keystore: Keystore,
): Promise<{ url: string; close: () => Promise<void> }> {
  const own = { ...deps, keystore, metrics: createMetrics({ defaultMetrics: false }) };
  const api = await buildApi({
    log: silentLogger(),
    metrics: own.metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [async (a) => a.register(activationRoutes, { deps: own })],
  });
  const url = await api.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => api.close() };
}

afterAll(async () => {
  await app?.close();
  rmSync(stateRoot, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `relais client …` in this process, as cli/program.ts would, capturing its output. */
async function client(args: string[]): Promise<Run> {
  const program = new Command('relais').exitOverride();
  registerClientCommand(program);
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) sub.exitOverride();
  }
  let stdout = '';
  let stderr = '';
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  let code = 0;
  try {
    await program.parseAsync(['client', ...args], { from: 'user' });
  } catch (err) {
    code = exitCodeFor(err);
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
  return { code, stdout, stderr };
}

let n = 0;
function device(): { state: string; fingerprint: string; args: string[] } {
  n += 1;
  const state = join(stateRoot, `pc${n}`);
  const fingerprint = `test-device-${n}-aaaaaaaaaaaaaaaa`;
  return {
    state,
    fingerprint,
    args: ['--server', server, '--state', state, '--fingerprint', fingerprint],
  };
}

async function attempts(): Promise<number> {
  const text = await deps.metrics.metrics();
  return text
    .split('\n')
    .filter((l) => l.startsWith('relais_activation_attempts_total{'))
    .reduce((sum, l) => sum + Number(l.split(' ')[1]), 0);
}

describe('relais client', () => {
  it('refuses a mistyped key without calling the server', async () => {
    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret);
    const typo = `${licence.key.startsWith('A') ? 'B' : 'A'}${licence.key.slice(1)}`;
    const before = await attempts();
    const pc = device();
    const run = await client([...pc.args, 'activate', '--key', typo]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/mistyped.*nothing was sent/);
    expect(await attempts()).toBe(before);
    expect(existsSync(pc.state)).toBe(false);
  });

  it('activates, keeps the document, verifies it offline, and follows module changes', async () => {
    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret, {
      modules: ['antivirus', 'backup'],
    });
    const pc = device();
    const activated = await client([...pc.args, 'activate', '--key', licence.key.toLowerCase()]);
    expect(activated.stderr).toBe('');
    expect(activated.code).toBe(0);
    expect(activated.stdout).toContain(`licence        ${licence.licenceId}`);
    expect(activated.stdout).toMatch(/status {9}active/);
    expect(activated.stdout).toMatch(/modules {8}antivirus, backup/);
    expect(existsSync(join(pc.state, 'licence.json'))).toBe(true);

    // Offline: a server address nobody answers on changes nothing.
    const offline = ['--server', 'http://127.0.0.1:1', '--state', pc.state];
    const status = await client([...offline, 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(licence.licenceId);

    await deps
      .db('subscriptions')
      .where({ subscriber_id: licence.subscriberId })
      .update({ modules: 'antivirus,firewall' });
    const checkedIn = await client([...pc.args, 'check-in']);
    expect(checkedIn.code).toBe(0);
    expect(checkedIn.stdout).toMatch(/modules {8}antivirus, firewall/);
    expect((await client([...offline, 'status'])).stdout).toMatch(/antivirus, firewall/);

    await deps
      .db('subscriptions')
      .where({ subscriber_id: licence.subscriberId })
      .update({ status: 'suspended' });
    const suspended = await client([...pc.args, 'check-in']);
    expect(suspended.code).toBe(1);
    expect(suspended.stdout).toMatch(/status {9}suspended/);
    expect(suspended.stderr).toContain('the licence is not valid: the licence is suspended');
    expect((await client([...offline, 'status'])).code).toBe(1);
  });

  it('fails status on a forged or expired document, saying why', async () => {
    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret, {
      validUntil: new Date(Date.now() + 1500),
    });
    const pc = device();
    expect((await client([...pc.args, 'activate', '--key', licence.key])).code).toBe(0);
    const file = join(pc.state, 'licence.json');
    const genuine = readFileSync(file, 'utf8');
    const doc = JSON.parse(genuine);
    const claims = JSON.parse(Buffer.from(doc.payload, 'base64url').toString('utf8'));
    claims.validUntil = '2099-01-01T00:00:00.000Z';
    doc.payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    writeFileSync(file, JSON.stringify(doc));
    const forged = await client(['--state', pc.state, 'status']);
    expect(forged.code).toBe(1);
    expect(forged.stderr).toContain('is not genuine: signature does not match');

    writeFileSync(file, genuine);
    await new Promise((r) => setTimeout(r, 1600));
    const expired = await client(['--state', pc.state, 'status']);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/the licence expired at/);
  });

  it('reports a refusal with its code, and a missing state', async () => {
    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret, { deviceLimit: 1 });
    expect((await client([...device().args, 'activate', '--key', licence.key])).code).toBe(0);
    const second = await client([...device().args, 'activate', '--key', licence.key]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/activation refused: ACTIVATION_SEAT_LIMIT/);
    const none = await client([...device().args, 'status']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/run `relais client activate` first/);
  });

  it('pins the server keys at first activation, and refuses a self-signed document whatever keys.json says', async () => {
    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret);
    const pc = device();
    const activated = await client([...pc.args, 'activate', '--key', licence.key]);
    expect(activated.code).toBe(0);
    expect(activated.stdout).toContain(
      `trusting the keys of ${server} from now on: ${deps.keystore.signing.kid}`,
    );
    const pinned = JSON.parse(readFileSync(join(pc.state, 'trusted-keys.json'), 'utf8'));
    expect(pinned.keys).toEqual(deps.keystore.publicKeys);

    // A forger with write access to the document writes their key next to it, then a document
    // of their own: under their key id, and under the server's.
    const forger = openKeystore(join(ctx().dir, 'forger-keys'), new Date('2030-01-01T00:00:00Z'));
    expect(forger.signing.kid).not.toBe(deps.keystore.signing.kid);
    const genuine = JSON.parse(readFileSync(join(pc.state, 'licence.json'), 'utf8'));
    const claims = JSON.parse(Buffer.from(genuine.payload, 'base64url').toString('utf8'));
    const richer = { ...claims, modules: ['antivirus', 'backup', 'firewall'], validUntil: null };
    writeFileSync(join(pc.state, 'keys.json'), JSON.stringify({ keys: forger.publicKeys }));
    for (const kid of [forger.signing.kid, deps.keystore.signing.kid]) {
      const forged = signDocument({ ...forger.signing, kid }, LICENCE_DOCUMENT_TYPE, richer);
      writeFileSync(join(pc.state, 'licence.json'), JSON.stringify(forged));
      const status = await client(['--state', pc.state, 'status']);
      expect(status.code).toBe(1);
      expect(status.stderr).toContain('is not genuine');
      expect(status.stdout).toBe('');
    }
  });

  it('lets a server with other keys vouch for nothing until they are pinned with trust --refresh', async () => {
    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret);
    const pc = device();
    expect((await client([...pc.args, 'activate', '--key', licence.key])).code).toBe(0);
    const kept = readFileSync(join(pc.state, 'licence.json'), 'utf8');
    // A later signing key (another kid), with the same secrets so the device is still known.
    const impostorKeys = openKeystore(join(ctx().dir, 'rotated-keys'), new Date('2031-06-01Z'));
    const impostor = await otherServer({
      ...deps.keystore,
      signing: impostorKeys.signing,
      publicKeys: impostorKeys.publicKeys,
    });
    try {
      const via = ['--server', impostor.url, '--state', pc.state, '--fingerprint', pc.fingerprint];
      const checkIn = await client([...via, 'check-in']);
      expect(checkIn.code).toBe(1);
      expect(checkIn.stderr).toMatch(/not genuine: signed with unknown key .*trust --refresh/);
      expect(readFileSync(join(pc.state, 'licence.json'), 'utf8')).toBe(kept);
      expect((await client(['--state', pc.state, 'status'])).code).toBe(0);

      // Asked explicitly (after a real rotation), the new keys are pinned next to the old.
      const refresh = await client([...via, 'trust', '--refresh']);
      expect(refresh.code).toBe(0);
      expect(refresh.stdout).toContain(`pinned ${impostorKeys.signing.kid}`);
      expect((await client([...via, 'check-in'])).code).toBe(0);
      const pinned = JSON.parse(readFileSync(join(pc.state, 'trusted-keys.json'), 'utf8'));
      expect(pinned.keys.map((k: { kid: string }) => k.kid)).toEqual([
        deps.keystore.signing.kid,
        impostorKeys.signing.kid,
      ]);
    } finally {
      await impostor.close();
    }
  });

  it('with --trust-keys, trusts that file only, even at the first activation', async () => {
    const wrongFile = join(stateRoot, 'wrong-keys.json');
    const rightFile = join(stateRoot, 'right-keys.json');
    const wrong = openKeystore(join(ctx().dir, 'wrong-keys'));
    writeFileSync(wrongFile, JSON.stringify({ keys: wrong.publicKeys }));
    writeFileSync(rightFile, JSON.stringify({ keys: deps.keystore.publicKeys }));

    const licence = await seedLicence(deps.db, deps.keystore.keyHashSecret, { deviceLimit: 2 });
    const refused = device();
    const run = await client([
      ...refused.args,
      '--trust-keys',
      wrongFile,
      'activate',
      '--key',
      licence.key,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/the licence document the server sent is not genuine/);
    expect(existsSync(join(refused.state, 'licence.json'))).toBe(false);
    expect(existsSync(join(refused.state, 'trusted-keys.json'))).toBe(false);

    const pc = device();
    const ok = await client([
      ...pc.args,
      '--trust-keys',
      rightFile,
      'activate',
      '--key',
      licence.key,
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).not.toContain('trusting the keys');
    // Pinned from the file, so status needs it no more; given the wrong file, status fails.
    expect((await client(['--state', pc.state, 'status'])).code).toBe(0);
    const other = await client(['--state', pc.state, '--trust-keys', wrongFile, 'status']);
    expect(other.code).toBe(1);
  });
});
