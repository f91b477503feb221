/**
 * The admin pages of the api, behind one sign-in (api/admin-auth.ts):
 *
 * - `GET /admin`: the operations page, server-rendered from `loadOverview` (the same facts
 *   `relais status` prints), no script and no external asset;
 * - `/admin/queues`: Bull Board over the BullMQ queues of this process. It has no sign-in of its
 *   own, so it is only ever mounted inside this plugin, after the guard.
 *
 * Viewers only read. The guard refuses their PUT/POST/PATCH/DELETE with 403; on top of that the
 * dashboard's queue list is rewritten per request to say "read-only" for a viewer, so its UI
 * hides the buttons instead of offering actions that would be refused.
 *
 * With no user in `admin.users` nothing is mounted but an answer saying how to add one (404),
 * and the api starts as usual.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import type { RelaisConfig } from '../config/load.js';
import type { Db } from '../platform/db.js';
import type { Metrics } from '../platform/metrics.js';
import { renderOperationsPage } from './admin/operations-page.js';
import { loadOverview } from './admin/overview.js';
import {
  type AdminGuard,
  createAdminGuard,
  isLoopbackHost,
  usersWithDemoPasswords,
} from './admin-auth.js';
import type { ErrorBody } from './server.js';

export const ADMIN_PATH = '/admin';
export const QUEUES_PATH = '/admin/queues';

export interface AdminRoutesOptions {
  config: RelaisConfig;
  /** The api's registry: the sign-in failure counter goes there. */
  metrics: Metrics;
  connectorDb: Db;
  licensingDb: Db;
  /** The BullMQ queues this process holds, shown by the dashboard and the page. */
  queues: Queue[];
  now?: () => Date;
}

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, options) => {
  const { users } = options.config.deployment.admin;
  if (users.length === 0) {
    registerNotConfigured(app);
    return;
  }
  warnAboutDemoPasswords(app, options.config);

  const guard = createAdminGuard({ users, metrics: options.metrics });
  app.addHook('onRequest', guard.onRequest);
  // Nothing on these pages may sit in a shared cache or a browser history cache; the
  // dashboard's own scripts and styles are the same for everyone and may.
  app.addHook('onSend', async (request, reply) => {
    if (!request.url.startsWith(`${QUEUES_PATH}/static/`))
      void reply.header('cache-control', 'no-store');
  });

  const page = async (_request: FastifyRequest, reply: FastifyReply) => {
    const overview = await loadOverview({
      config: options.config,
      connectorDb: options.connectorDb,
      licensingDb: options.licensingDb,
      queues: options.queues,
      now: options.now,
    });
    return reply.type('text/html; charset=utf-8').send(renderOperationsPage(overview));
  };
  app.get(ADMIN_PATH, page);
  app.get(`${ADMIN_PATH}/`, page);

  await app.register(queueDashboard(options.queues, guard), { prefix: QUEUES_PATH });
};

/** Bull Board, read-only in its UI for viewers (see the module comment). */
function queueDashboard(queues: Queue[], guard: AdminGuard): FastifyPluginCallback {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUES_PATH);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'Relais queues',
        miscLinks: [{ text: 'Operations', url: ADMIN_PATH }],
      },
      handlerHooks: {
        after: (context, result) => {
          const viewer = guard.principalOf(context.request.headers)?.role !== 'operator';
          if (!viewer || context.route !== '/api/queues') return result;
          return { ...result, body: asReadOnly(result.body) };
        },
      },
    },
  });
  return serverAdapter.registerPlugin();
}

/** The queue list as a read-only board would send it: no action offered on any queue. */
function asReadOnly<Body>(body: Body): Body {
  if (typeof body !== 'object' || body === null || !('queues' in body)) return body;
  const { queues } = body as { queues: unknown };
  if (!Array.isArray(queues)) return body;
  return {
    ...body,
    queues: queues.map((queue: object) => ({
      ...queue,
      readOnlyMode: true,
      allowRetries: false,
      allowCompletedRetries: false,
    })),
  };
}

function registerNotConfigured(app: FastifyInstance): void {
  const answer = async (request: FastifyRequest, reply: FastifyReply) => {
    const body: ErrorBody = {
      code: 'ADMIN_NOT_CONFIGURED',
      message:
        'the admin pages are off: add a user under admin.users in relais.yaml (name, role viewer or operator, password as ${VAR}) and restart the api; see docs/admin.md',
      requestId: request.id,
    };
    return reply.status(404).send(body);
  };
  app.all(ADMIN_PATH, answer);
  app.all(`${ADMIN_PATH}/*`, answer);
}

function warnAboutDemoPasswords(app: FastifyInstance, config: RelaisConfig): void {
  const { host } = config.deployment.http;
  const users = usersWithDemoPasswords(config.deployment.admin.users);
  if (users.length === 0 || isLoopbackHost(host)) return;
  app.log.warn(
    { users, host },
    'admin users keep the demo passwords of the shipped relais.yaml on a non-loopback address: set RELAIS_ADMIN_OPERATOR_PASSWORD and RELAIS_ADMIN_VIEWER_PASSWORD',
  );
}
