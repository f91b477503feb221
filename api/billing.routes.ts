/**
 * The subscription server's billing routes for ISP connectors:
 *
 * - `GET /v1/billing/periods/:period`: the close summary (closed at, line count, totals per
 *   module and kind, currency);
 * - `GET /v1/billing/periods/:period/lines`: the frozen rated lines, `application/x-ndjson`,
 *   one `RatedLine` per line in `lineId` order, streamed from the database page by page.
 *
 * Authenticated like provisioning, by the ISP's bearer token, before anything is read: an ISP
 * only ever sees its own lines. A period not closed yet is 409 BILLING_PERIOD_NOT_CLOSED.
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { closedPeriod, ratedLinesNdjson } from '../licensing/billing/lines.js';
import type { LicensingDeps } from '../licensing/context.js';
import { createIspAuthenticator } from '../licensing/isp-auth.js';
import { RequestError } from '../platform/errors.js';

export interface BillingRoutesOptions {
  deps: LicensingDeps;
}

export const billingRoutes: FastifyPluginAsync<BillingRoutesOptions> = async (app, { deps }) => {
  const auth = createIspAuthenticator(deps.config, deps.keystore);
  const callers = new WeakMap<FastifyRequest, string>();

  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/v1/billing/')) {
      callers.set(request, auth.authenticate(request.headers.authorization));
    }
  });

  const ispOf = (request: FastifyRequest): string => {
    const ispId = callers.get(request);
    if (ispId === undefined) {
      throw new RequestError('PROVISIONING_UNAUTHORIZED', 'missing or malformed bearer token');
    }
    return ispId;
  };

  app.get<{ Params: { period: string } }>('/v1/billing/periods/:period', async (request) => {
    const ispId = ispOf(request);
    const close = await closedPeriod(deps.db, ispId, request.params.period);
    return {
      ispId,
      period: close.period,
      closedAt: close.closedAt.toISOString(),
      ...close.summary,
    };
  });

  app.get<{ Params: { period: string } }>(
    '/v1/billing/periods/:period/lines',
    async (request, reply) => {
      const ispId = ispOf(request);
      // Checked before the first byte: once streaming has begun no status can be sent.
      await closedPeriod(deps.db, ispId, request.params.period);
      const body = Readable.from(ratedLinesNdjson(deps.db, ispId, request.params.period));
      body.on('error', (err) =>
        request.log.error({ err, isp: ispId }, 'rated lines stream failed mid-way'),
      );
      return reply.type('application/x-ndjson; charset=utf-8').send(body);
    },
  );
};
