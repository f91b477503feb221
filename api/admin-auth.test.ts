import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminUser } from '../config/admin-schema.js';
import { createMetrics, type Metrics } from '../platform/metrics.js';
import {
  AdminAuthenticator,
  createAdminGuard,
  isLoopbackHost,
  parseBasicAuthorization,
  permissionFor,
  usersWithDemoPasswords,
  WWW_AUTHENTICATE,
} from './admin-auth.js';

const USERS: AdminUser[] = [
  { name: 'olga', role: 'operator', password: 'olga-password-1' },
  { name: 'victor', role: 'viewer', password: 'victor-password-2' },
];

function basic(name: string, password: string): string {
  return `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;
}

describe('parseBasicAuthorization', () => {
  it.each([
    ['Basic b2xnYTpzZWNyZXQ=', { name: 'olga', password: 'secret' }],
    ['basic   b2xnYTpzZWNyZXQ=', { name: 'olga', password: 'secret' }],
    [basic('olga', 'a:b:c'), { name: 'olga', password: 'a:b:c' }],
    [basic('olga', ''), { name: 'olga', password: '' }],
    [basic('élodie', 'mot de passé'), { name: 'élodie', password: 'mot de passé' }],
  ])('reads %s', (header, expected) => {
    expect(parseBasicAuthorization(header)).toEqual(expected);
  });

  it.each([
    [undefined],
    [''],
    ['Bearer abc.def'],
    ['Basic'],
    ['Basic not base64!'],
    [`Basic ${Buffer.from('no-colon').toString('base64')}`],
    [`Basic ${Buffer.from(':password-without-name').toString('base64')}`],
  ])('refuses %s', (header) => {
    expect(parseBasicAuthorization(header)).toBeNull();
  });
});

describe('AdminAuthenticator', () => {
  const auth = new AdminAuthenticator(USERS);

  it('signs in each user with its own password and role', () => {
    expect(auth.signIn(basic('olga', 'olga-password-1'))).toEqual({
      ok: true,
      principal: { name: 'olga', role: 'operator' },
    });
    expect(auth.signIn(basic('victor', 'victor-password-2'))).toEqual({
      ok: true,
      principal: { name: 'victor', role: 'viewer' },
    });
  });

  it.each([
    ['a wrong password', basic('olga', 'olga-password-2'), 'wrong_credentials'],
    ["another user's password", basic('victor', 'olga-password-1'), 'wrong_credentials'],
    ['an unknown user', basic('mallory', 'olga-password-1'), 'wrong_credentials'],
    ['a password differing in case', basic('olga', 'OLGA-PASSWORD-1'), 'wrong_credentials'],
    ['no header', undefined, 'missing'],
    ['a bearer token', 'Bearer olga-password-1', 'malformed'],
  ])('refuses %s', (_case, header, reason) => {
    expect(auth.signIn(header)).toEqual({ ok: false, reason });
  });

  it('refuses everyone when no user is configured', () => {
    expect(new AdminAuthenticator([]).signIn(basic('olga', 'olga-password-1'))).toEqual({
      ok: false,
      reason: 'wrong_credentials',
    });
  });
});

describe('permissionFor', () => {
  const retry = '/admin/queues/api/queues/:queueName/retry/:queueStatus';
  it.each([
    ['viewer', 'GET', '/admin', true],
    ['viewer', 'HEAD', '/admin/queues/api/queues', true],
    ['viewer', 'PUT', retry, false],
    ['viewer', 'POST', '/admin/queues/api/queues/:queueName/add', false],
    ['viewer', 'PATCH', '/admin/queues/api/queues/:queueName/:jobId/delay', false],
    ['viewer', 'DELETE', '/admin', false],
    ['operator', 'GET', '/admin', true],
    ['operator', 'PUT', retry, true],
    ['operator', 'PUT', '/admin/queues/api/queues/:queueName/clean/:queueStatus', true],
    ['operator', 'PUT', '/admin/queues/api/queues/:queueName/:jobId/promote', true],
    ['operator', 'PUT', '/admin/queues/api/queues/:queueName/pause', true],
    ['operator', 'PUT', '/admin/queues/api/queues/:queueName/obliterate', false],
    ['operator', 'PUT', '/admin/queues/api/queues/:queueName/empty', false],
    ['operator', 'POST', '/admin/queues/api/queues/:queueName/add', false],
    ['operator', 'PATCH', '/admin/queues/api/queues/:queueName/:jobId/update-data', false],
  ] as const)('%s %s %s → %s', (role, method, url, allowed) => {
    expect(permissionFor(role, method, url).allowed).toBe(allowed);
  });

  it('tells a viewer which role it lacks', () => {
    expect(permissionFor('viewer', 'put', retry)).toEqual({
      allowed: false,
      message: 'a viewer may only look; PUT needs the operator role',
    });
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.5', false],
    ['relais.example.net', false],
    ['127.example.net', false],
  ])('%s → %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('usersWithDemoPasswords', () => {
  it('names the users still on a shipped demo password', () => {
    const users: AdminUser[] = [
      ...USERS,
      { name: 'operator', role: 'operator', password: 'demo-operator' },
      { name: 'viewer', role: 'viewer', password: 'demo-viewer' },
    ];
    expect(usersWithDemoPasswords(users)).toEqual(['operator', 'viewer']);
    expect(usersWithDemoPasswords(USERS)).toEqual([]);
  });
});

describe('createAdminGuard', () => {
  let app: FastifyInstance | undefined;
  afterEach(() => app?.close());

  async function guarded(metrics: Metrics): Promise<FastifyInstance> {
    app = Fastify();
    const guard = createAdminGuard({ users: USERS, metrics });
    app.addHook('onRequest', guard.onRequest);
    app.get('/admin', async (request) => ({ user: guard.principalOf(request.headers) }));
    app.put('/admin/thing', async () => ({ done: true }));
    await app.ready();
    return app;
  }

  async function failures(metrics: Metrics): Promise<Record<string, number>> {
    const metric = await metrics.getSingleMetric('relais_admin_auth_failures_total')?.get();
    return Object.fromEntries(
      (metric?.values ?? []).map((v) => [String(v.labels.reason), Number(v.value)]),
    );
  }

  it('answers 401 with a Basic challenge and counts only attempts that sent credentials', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const api = await guarded(metrics);

    const none = await api.inject('/admin');
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe(WWW_AUTHENTICATE);
    expect(none.json()).toMatchObject({ code: 'ADMIN_UNAUTHORIZED' });
    expect(await failures(metrics)).toEqual({});

    const wrong = await api.inject({
      url: '/admin',
      headers: { authorization: basic('olga', 'guess') },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ message: 'wrong user name or password' });
    await api.inject({ url: '/admin', headers: { authorization: 'Basic %%%' } });
    expect(await failures(metrics)).toEqual({ wrong_credentials: 1, malformed: 1 });
  });

  it('lets a viewer read, refuses its changes with 403, and lets an operator change', async () => {
    const api = await guarded(createMetrics({ defaultMetrics: false }));
    const viewer = { authorization: basic('victor', 'victor-password-2') };
    const operator = { authorization: basic('olga', 'olga-password-1') };

    const read = await api.inject({ url: '/admin', headers: viewer });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual({ user: { name: 'victor', role: 'viewer' } });

    const refused = await api.inject({ method: 'PUT', url: '/admin/thing', headers: viewer });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'ADMIN_FORBIDDEN' });

    const done = await api.inject({ method: 'PUT', url: '/admin/thing', headers: operator });
    expect(done.statusCode).toBe(200);
  });

  it('ignores a role header a client makes up', async () => {
    const api = await guarded(createMetrics({ defaultMetrics: false }));
    const res = await api.inject({
      url: '/admin',
      headers: { 'x-relais-admin-role': 'operator', role: 'operator' },
    });
    expect(res.statusCode).toBe(401);
  });
});
