import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { downloadCounter, downloadRoutes, prefersHtml } from '../api/download.routes.js';
import { buildApi } from '../api/server.js';
import type { LicensingDeps } from '../licensing/context.js';
import { createDownloadToken } from '../licensing/download-token.js';
import { reissueDownloadLink } from '../licensing/licences.js';
import { applyBatch } from '../licensing/provisioning.js';
import { newId } from '../platform/ids.js';
import { silentLogger } from '../platform/logger.js';
import { packageRoot } from '../platform/package-root.js';
import { useTestContext } from './harness/context.js';
import { licensingDepsOf } from './harness/licensing.js';
import { type SeedOptions, seedLicence } from './harness/seed-licences.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ctx = useTestContext({
  isps: { 'demo-fai': stringify(shipped) },
  deployment: { server: { installersDir: 'installers' } },
});

let deps: LicensingDeps;
let app: FastifyInstance;
let base: string;
const installers: Record<string, Buffer> = {};

beforeAll(async () => {
  const c = ctx();
  const dir = join(c.dir, 'installers');
  mkdirSync(dir);
  installers.antivirus = randomBytes(300_000);
  installers.firewall = randomBytes(1_234);
  installers.backup = randomBytes(10);
  writeFileSync(join(dir, 'antivirus.bin'), installers.antivirus);
  writeFileSync(join(dir, 'firewall.exe'), installers.firewall);
  writeFileSync(join(dir, 'backup.bin'), installers.backup);
  writeFileSync(join(c.dir, 'secret.bin'), 'not an installer');
  deps = licensingDepsOf(c);
  app = await buildApi({
    log: silentLogger(),
    metrics: deps.metrics,
    readiness: [],
    bodyLimitBytes: 16_384,
    routes: [async (a) => a.register(downloadRoutes, { deps })],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(() => app?.close());

/**
 * The status of a GET, with the body read: an unread body keeps its connection busy, and the
 * server's close at the end of the file would wait for it.
 */
async function statusOf(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

/** The path of a download URL, asked of the test server (the configured URL is not listening). */
const local = (url: string) => `${base}${new URL(url).pathname}`;

function tokenFor(licenceId: string, generation = 1, expiresAt = Date.now() / 1000 + 3600) {
  return createDownloadToken(deps.keystore.linkSecret, {
    licenceId,
    generation,
    expiresAt: Math.floor(expiresAt),
  });
}

async function seeded(options: SeedOptions = {}) {
  const licence = await seedLicence(ctx().licensingDb, deps.keystore.keyHashSecret, {
    ispId: 'demo-fai',
    ...options,
  });
  return { ...licence, token: tokenFor(licence.licenceId) };
}

async function downloadsOf(subscriberId: string) {
  const rows = await ctx().licensingDb('downloads').where({ subscriber_id: subscriberId });
  const events = await ctx()
    .licensingDb('subscription_events')
    .where({ subscriber_id: subscriberId, type: 'downloaded' })
    .select('licence_id', 'data');
  return { rows, events };
}

describe('a valid download link', () => {
  it('lists and streams the installers of a subscriber provisioned through the API', async () => {
    const subscriberId = newId('sub');
    const { results } = await applyBatch(deps, 'demo-fai', {
      commands: [
        {
          key: `${subscriberId}:v1`,
          kind: 'subscribe',
          subscriberId,
          version: 1,
          modules: ['firewall', 'antivirus'],
          status: 'active',
          effectiveAt: new Date().toISOString(),
        },
      ],
    });
    const issued = results[0]?.licence;
    expect(issued?.downloadUrl).toMatch(/\/v1\/downloads\/[^/]+$/);
    const url = local(issued?.downloadUrl as string);

    const listing = await fetch(url);
    expect(listing.status).toBe(200);
    expect(listing.headers.get('cache-control')).toBe('no-store');
    const body = (await listing.json()) as { modules: unknown[]; expiresAt: string };
    expect(body).toEqual({
      modules: [
        { module: 'antivirus', url: `${issued?.downloadUrl}/antivirus`, bytes: 300_000 },
        { module: 'firewall', url: `${issued?.downloadUrl}/firewall`, bytes: 1_234 },
      ],
      expiresAt: issued?.downloadExpiresAt,
    });

    const file = await fetch(`${url}/antivirus`);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-length')).toBe('300000');
    expect(file.headers.get('content-type')).toBe('application/octet-stream');
    expect(file.headers.get('content-disposition')).toBe('attachment; filename="antivirus.bin"');
    expect(Buffer.from(await file.arrayBuffer()).equals(installers.antivirus as Buffer)).toBe(true);

    const other = await fetch(`${url}/firewall`);
    expect(Buffer.from(await other.arrayBuffer()).equals(installers.firewall as Buffer)).toBe(true);
    expect(other.headers.get('content-disposition')).toBe('attachment; filename="firewall.exe"');

    const { rows, events } = await downloadsOf(subscriberId);
    expect(rows.map((r) => r.module).sort()).toEqual(['antivirus', 'firewall']);
    expect(rows.every((r) => r.licence_id === issued?.licenceId)).toBe(true);
    expect(events.map((e) => e.data.module).sort()).toEqual(['antivirus', 'firewall']);
  });

  it('answers a browser with an HTML page of links', async () => {
    const { token } = await seeded({ modules: ['antivirus', 'backup'] });
    const res = await fetch(`${base}/v1/downloads/${token}`, {
      headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await res.text();
    const server = deps.config.deployment.server.url;
    expect(html).toContain(`<a href="${server}/v1/downloads/${token}/antivirus">antivirus</a>`);
    expect(html).toContain(`<a href="${server}/v1/downloads/${token}/backup">backup</a>`);
  });

  it('records and counts every download, and not a HEAD request', async () => {
    const { token, subscriberId } = await seeded({ modules: ['backup'] });
    const served = async () => {
      const { values } = await downloadCounter(deps.metrics).get();
      const found = values.find((v) => v.labels.isp === 'demo-fai' && v.labels.module === 'backup');
      return found?.value ?? 0;
    };
    const servedBefore = await served();
    for (let i = 0; i < 2; i++) await (await fetch(`${base}/v1/downloads/${token}/backup`)).text();
    const head = await fetch(`${base}/v1/downloads/${token}/backup`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('10');
    const { rows, events } = await downloadsOf(subscriberId);
    expect(rows).toHaveLength(2);
    expect(events).toHaveLength(2);
    expect(await served()).toBe(servedBefore + 2);
  });

  it('follows module changes: a removed module is no longer listed or served', async () => {
    const { token, subscriberId } = await seeded({ modules: ['antivirus', 'firewall'] });
    await ctx()
      .licensingDb('subscriptions')
      .where({ subscriber_id: subscriberId })
      .update({ modules: 'antivirus' });
    const body = (await (await fetch(`${base}/v1/downloads/${token}`)).json()) as {
      modules: { module: string }[];
    };
    expect(body.modules.map((m) => m.module)).toEqual(['antivirus']);
    const res = await fetch(`${base}/v1/downloads/${token}/firewall`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe('DOWNLOAD_MODULE_UNAVAILABLE');
  });
});

describe('modules a link does not cover', () => {
  it('leaves a module with no installer out of the list and answers 404 for it', async () => {
    const { token, subscriberId } = await seeded({ modules: ['antivirus', 'vpn'] });
    const body = (await (await fetch(`${base}/v1/downloads/${token}`)).json()) as {
      modules: { module: string }[];
    };
    expect(body.modules.map((m) => m.module)).toEqual(['antivirus']);
    for (const module of ['vpn', 'backup', 'firewall']) {
      const res = await fetch(`${base}/v1/downloads/${token}/${module}`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({
        code: 'DOWNLOAD_MODULE_UNAVAILABLE',
        message: `module ${module} is not available through this link`,
      });
    }
    expect((await downloadsOf(subscriberId)).rows).toHaveLength(0);
  });

  it('never leaves the installers folder', async () => {
    const { token, subscriberId } = await seeded({ modules: ['antivirus'] });
    for (const path of [
      '..%2Fsecret',
      '..%2Fsecret.bin',
      '%2E%2E%2Fsecret',
      '..%2F..%2Frelais.yaml',
      'antivirus.bin',
      'antivirus%00',
      '%2Fetc%2Fpasswd',
    ]) {
      const res = await fetch(`${base}/v1/downloads/${token}/${path}`);
      expect(res.status, path).toBe(404);
      const text = await res.text();
      expect(text).not.toContain('not an installer');
      expect(JSON.parse(text).code, path).toBe('DOWNLOAD_MODULE_UNAVAILABLE');
    }
    // Unencoded dots are resolved by the client: the request lands on another route.
    const res = await fetch(`${base}/v1/downloads/${token}/../../secret.bin`);
    expect(await res.text()).not.toContain('not an installer');
    expect((await downloadsOf(subscriberId)).rows).toHaveLength(0);
  });
});

describe('links that open nothing', () => {
  async function refusal(url: string) {
    const res = await fetch(url);
    const body = (await res.json()) as { code: string; message: string };
    return { status: res.status, code: body.code, message: body.message };
  }

  it('answers 403 DOWNLOAD_LINK_INVALID, with one body, whatever the reason', async () => {
    const valid = await seeded();
    const revoked = await seeded({ licenceStatus: 'revoked' });
    const erased = await seeded({ erasedAt: new Date(), status: 'cancelled' });
    const cancelled = await seeded({ status: 'cancelled' });
    const [payload, mac] = valid.token.split('.') as [string, string];
    const flipped = `${mac.slice(0, -2)}${mac.endsWith('AA') ? 'AB' : 'AA'}`;
    const tokens = {
      expired: tokenFor(valid.licenceId, 1, Date.now() / 1000 - 1),
      tampered: `${payload}.${flipped}`,
      forged: createDownloadToken(randomBytes(32), {
        licenceId: valid.licenceId,
        generation: 1,
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
      }),
      malformed: 'not-a-token',
      unknown: tokenFor(newId('lic')),
      newerGeneration: tokenFor(valid.licenceId, 2),
      revoked: revoked.token,
      erased: erased.token,
      cancelled: cancelled.token,
    };
    const answers = new Set<string>();
    for (const [reason, token] of Object.entries(tokens)) {
      for (const suffix of ['', '/antivirus']) {
        const answer = await refusal(`${base}/v1/downloads/${token}${suffix}`);
        expect(answer.status, reason).toBe(403);
        expect(answer.code, reason).toBe('DOWNLOAD_LINK_INVALID');
        answers.add(answer.message);
      }
    }
    expect(answers.size).toBe(1);
    expect(await statusOf(`${base}/v1/downloads/${valid.token}`)).toBe(200);
  });

  it('stops the older links once a link is re-issued', async () => {
    const { token, licenceId } = await seeded();
    expect(await statusOf(`${base}/v1/downloads/${token}`)).toBe(200);
    const reissued = await reissueDownloadLink(deps, 'demo-fai', licenceId);
    expect((await refusal(`${base}/v1/downloads/${token}/antivirus`)).status).toBe(403);
    expect((await refusal(`${base}/v1/downloads/${token}`)).code).toBe('DOWNLOAD_LINK_INVALID');
    const fresh = await fetch(`${local(reissued.downloadUrl)}/antivirus`);
    expect(fresh.status).toBe(200);
    expect(Buffer.from(await fresh.arrayBuffer()).equals(installers.antivirus as Buffer)).toBe(
      true,
    );
  });
});

describe('content negotiation', () => {
  it('picks HTML only when the client ranks it above JSON', () => {
    expect(prefersHtml(undefined)).toBe(false);
    expect(prefersHtml('*/*')).toBe(false);
    expect(prefersHtml('application/json')).toBe(false);
    expect(prefersHtml('text/html')).toBe(true);
    expect(prefersHtml('text/html,application/xhtml+xml,*/*;q=0.8')).toBe(true);
    expect(prefersHtml('application/json, text/html')).toBe(false);
    expect(prefersHtml('text/html;q=0.5, application/json')).toBe(false);
    expect(prefersHtml('text/html;q=0, */*')).toBe(false);
  });
});
