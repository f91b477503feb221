/**
 * The subscription server's routes for ISP connectors (protocol in docs/provisioning-api.md):
 *
 * - `POST /v1/provisioning/batches`: apply up to 1000 commands, one result each;
 * - `POST /v1/provisioning/deliveries`: record that keys reached customers;
 * - `POST /v1/licences/:id/key`: a new key for a licence never activated;
 * - `POST /v1/licences/:id/download-link`: a new download link (older ones stop working).
 *
 * Every route authenticates the ISP by its bearer token before reading the body, and only ever
 * reaches that ISP's subscribers. Bodies are parsed here and validated with zod in the service,
 * not by fastify's schema validator, whose defaults would silently drop unknown fields instead
 * of refusing them.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { LicensingDeps } from '../licensing/context.js';
import { createIspAuthenticator } from '../licensing/isp-auth.js';
import { reissueDownloadLink, reissueKey } from '../licensing/licences.js';
import {
  applyBatch,
  type ProvisioningFaults,
  recordDeliveries,
} from '../licensing/provisioning.js';
import { RequestError } from '../platform/errors.js';

export interface ProvisioningRoutesOptions {
  deps: LicensingDeps;
  /** Test hooks only (see ProvisioningFaults); absent in production. */
  faults?: ProvisioningFaults;
}

export const provisioningRoutes: FastifyPluginAsync<ProvisioningRoutesOptions> = async (
  app,
  { deps, faults },
) => {
  const auth = createIspAuthenticator(deps.config, deps.keystore);
  const callers = new WeakMap<FastifyRequest, string>();

  // Before the body is read: a caller without a valid token learns nothing about its body.
  app.addHook('onRequest', async (request) => {
    callers.set(request, auth.authenticate(request.headers.authorization));
  });

  // Our own JSON reading, so a broken body is PROVISIONING_INVALID like any other refusal, and
  // the message never quotes the body back (V8's parse errors include a piece of it).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    if (text === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text as string));
    } catch {
      done(new RequestError('PROVISIONING_INVALID', 'the body is not valid JSON'), undefined);
    }
  });

  const ispOf = (request: FastifyRequest): string => {
    const ispId = callers.get(request);
    if (ispId === undefined) {
      throw new RequestError('PROVISIONING_UNAUTHORIZED', 'missing or malformed bearer token');
    }
    return ispId;
  };

  app.post('/v1/provisioning/batches', async (request) =>
    applyBatch(deps, ispOf(request), request.body, faults),
  );

  app.post('/v1/provisioning/deliveries', async (request) =>
    recordDeliveries(deps, ispOf(request), request.body),
  );

  app.post<{ Params: { id: string } }>('/v1/licences/:id/key', async (request) =>
    reissueKey(deps, ispOf(request), request.params.id),
  );

  app.post<{ Params: { id: string } }>('/v1/licences/:id/download-link', async (request) =>
    reissueDownloadLink(deps, ispOf(request), request.params.id),
  );
};
