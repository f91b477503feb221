/**
 * The guard in front of the admin pages (`/admin`, `/admin/queues`): HTTP Basic sign-in against
 * the users of `admin.users` in relais.yaml, then a role check. Basic, because a browser prompts
 * for it with no page of ours and a script can send it too; it needs HTTPS in front of the api
 * when the api is reachable from outside (see docs/admin.md).
 *
 * Passwords are compared as SHA-256 digests with `timingSafeEqual`, over every configured user
 * without stopping at the first match, so the time an answer takes says nothing about which
 * part of a guess was right. A viewer may read (GET, HEAD); changing anything needs an
 * operator, and a few queue-wide destructive actions of the dashboard are refused to everyone.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import type { AdminRole, AdminUser } from '../config/admin-schema.js';
import type { ErrorCode } from '../platform/error-codes.js';
import type { Metrics } from '../platform/metrics.js';
import type { ErrorBody } from './server.js';

export const ADMIN_REALM = 'Relais admin';
export const WWW_AUTHENTICATE = `Basic realm="${ADMIN_REALM}"`;

/** The passwords the shipped relais.yaml falls back to; fine on a laptop, never on a network. */
export const DEMO_PASSWORDS: readonly string[] = ['demo-operator', 'demo-viewer'];

/** Methods that only read; everything else changes something and needs an operator. */
const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Dashboard actions refused even to operators: they wipe a whole queue or put jobs into it by
 * hand (Relais jobs carry ids it derives itself; a hand-made one would skip deduplication).
 * Patterns are fastify route urls under the dashboard's `/api` prefix.
 */
const REFUSED_TO_EVERYONE: readonly RegExp[] = [
  /\/api\/queues\/:queueName\/obliterate$/,
  /\/api\/queues\/:queueName\/empty$/,
  /\/api\/queues\/:queueName\/add$/,
  /\/api\/queues\/:queueName\/:jobId\/update-data$/,
];

export interface AdminPrincipal {
  name: string;
  role: AdminRole;
}

export type SignInFailure = 'missing' | 'malformed' | 'wrong_credentials';
export type SignInResult =
  | { ok: true; principal: AdminPrincipal }
  | { ok: false; reason: SignInFailure };

export interface BasicCredentials {
  name: string;
  password: string;
}

/** Reads `Authorization: Basic base64(name:password)`; null when absent or not Basic. */
export function parseBasicAuthorization(header: string | undefined): BasicCredentials | null {
  const match = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header ?? '');
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

interface StoredUser {
  principal: AdminPrincipal;
  nameDigest: Buffer;
  passwordDigest: Buffer;
}

/** Checks credentials against the configured users; keeps digests only, not the passwords. */
export class AdminAuthenticator {
  private readonly users: StoredUser[];

  constructor(users: readonly AdminUser[]) {
    this.users = users.map((user) => ({
      principal: { name: user.name, role: user.role },
      nameDigest: digest(user.name),
      passwordDigest: digest(user.password),
    }));
  }

  signIn(authorization: string | undefined): SignInResult {
    if (authorization === undefined || authorization === '')
      return { ok: false, reason: 'missing' };
    const credentials = parseBasicAuthorization(authorization);
    if (!credentials) return { ok: false, reason: 'malformed' };
    const name = digest(credentials.name);
    const password = digest(credentials.password);
    let found: AdminPrincipal | undefined;
    for (const user of this.users) {
      // Both comparisons always run, for every user: no early exit to time.
      const nameMatches = timingSafeEqual(name, user.nameDigest);
      const passwordMatches = timingSafeEqual(password, user.passwordDigest);
      if (nameMatches && passwordMatches) found = user.principal;
    }
    return found ? { ok: true, principal: found } : { ok: false, reason: 'wrong_credentials' };
  }
}

export type Permission = { allowed: true } | { allowed: false; message: string };

/** May `role` send `method` to the route `routeUrl` (fastify's pattern, not the raw path)? */
export function permissionFor(role: AdminRole, method: string, routeUrl: string): Permission {
  const upper = method.toUpperCase();
  if (READ_METHODS.has(upper)) return { allowed: true };
  if (REFUSED_TO_EVERYONE.some((pattern) => pattern.test(routeUrl))) {
    return {
      allowed: false,
      message: 'this dashboard action is turned off in Relais: it would wipe or hand-fill a queue',
    };
  }
  if (role === 'operator') return { allowed: true };
  return { allowed: false, message: `a viewer may only look; ${upper} needs the operator role` };
}

/** True when `host` only listens on this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice('::ffff:'.length) : bare;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Names of the users whose password is one of the shipped demo passwords. */
export function usersWithDemoPasswords(users: readonly AdminUser[]): string[] {
  return users.filter((user) => DEMO_PASSWORDS.includes(user.password)).map((user) => user.name);
}

export interface AdminGuardOptions {
  users: readonly AdminUser[];
  metrics: Metrics;
}

/** `onRequest` hook of the admin routes plus the lookup of who a request signed in as. */
export interface AdminGuard {
  /** Answers 401 or 403 itself (and returns the reply, as fastify wants of an async hook). */
  onRequest(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined>;
  /**
   * Who signed in, by the request's headers object: the dashboard's own hooks see only the
   * headers, and a WeakMap keyed by that object cannot be forged by a header a client sends.
   */
  principalOf(headers: object): AdminPrincipal | undefined;
}

function refuse(
  reply: FastifyReply,
  request: FastifyRequest,
  status: 401 | 403,
  code: ErrorCode,
  message: string,
): FastifyReply {
  if (status === 401) void reply.header('www-authenticate', WWW_AUTHENTICATE);
  const body: ErrorBody = { code, message, requestId: request.id };
  return reply.status(status).header('cache-control', 'no-store').send(body);
}

export function createAdminGuard(options: AdminGuardOptions): AdminGuard {
  const authenticator = new AdminAuthenticator(options.users);
  const principals = new WeakMap<object, AdminPrincipal>();
  const failures = new Counter({
    name: 'relais_admin_auth_failures_total',
    help: 'Sign-ins to the admin pages refused, by reason: malformed or wrong_credentials (a request without credentials, as every browser sends first, is not counted).',
    labelNames: ['reason'],
    registers: [options.metrics],
  });

  return {
    async onRequest(request, reply) {
      const result = authenticator.signIn(request.headers.authorization);
      if (!result.ok) {
        if (result.reason !== 'missing') {
          failures.inc({ reason: result.reason });
          request.log.warn({ reason: result.reason, ip: request.ip }, 'admin sign-in refused');
        }
        const message =
          result.reason === 'missing'
            ? 'sign in with an admin user (HTTP Basic)'
            : 'wrong user name or password';
        return refuse(reply, request, 401, 'ADMIN_UNAUTHORIZED', message);
      }
      const { principal } = result;
      const permission = permissionFor(
        principal.role,
        request.method,
        request.routeOptions.url ?? '',
      );
      if (!permission.allowed) {
        request.log.info(
          { user: principal.name, role: principal.role, method: request.method, url: request.url },
          'admin action refused',
        );
        return refuse(reply, request, 403, 'ADMIN_FORBIDDEN', permission.message);
      }
      principals.set(request.headers, principal);
      if (!READ_METHODS.has(request.method)) {
        request.log.info(
          { user: principal.name, method: request.method, url: request.url },
          'admin action',
        );
      }
      return undefined;
    },
    principalOf(headers) {
      return principals.get(headers);
    },
  };
}
