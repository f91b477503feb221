/**
 * Subscriber erasure for ISPs: `DELETE /v1/subscribers/:id`, authenticated with the ISP's
 * bearer token, answers a signed receipt (the same one on every repeat). What is erased and
 * what is kept is decided in licensing/erasure.ts.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { LicensingDeps } from '../licensing/context.js';
import { eraseSubscriber } from '../licensing/erasure.js';
import { createIspAuthenticator } from '../licensing/isp-auth.js';

export const subscriberRoutes: FastifyPluginAsync<{ deps: LicensingDeps }> = async (
  app,
  { deps },
) => {
  const auth = createIspAuthenticator(deps.config, deps.keystore);

  app.delete('/v1/subscribers/:id', async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const ispId = auth.authenticate(request.headers.authorization);
    const { receipt, claims, repeated } = await eraseSubscriber(deps, ispId, request.params.id);
    return { receipt, erasure: claims, repeated };
  });
};
