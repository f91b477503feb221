/**
 * The desktop software's edge of the subscription server:
 *
 * - `POST /v1/activations` `{ key, fingerprint }` → 200 `{ licenceId, deviceId, outcome,
 *   document }`;
 * - `POST /v1/licences/:id/check-in` `{ fingerprint }` → 200 `{ licenceId, deviceId, document }`;
 * - `DELETE /v1/licences/:id/devices/:device` with `X-Relais-Fingerprint` (an active device of
 *   the licence) or `X-Relais-Activation-Key` → 204;
 * - `GET /v1/licensing/keys` → `{ keys }`, the public keys documents are verified with.
 *
 * Every request but the key list passes the guessing guard first (licensing/guard.ts); a
 * refusal carries Retry-After. Whatever proves itself with an activation key (an activation, a
 * device removal by key) is a guess to the guard: it checks the address lockout and the key
 * prefix limit, and a wrong key counts as a failure. Without Redis the guard cannot count, so
 * these endpoints fail closed with 503 REDIS_UNAVAILABLE rather than open the door to guessing.
 * The rules live in licensing/activation.ts; this file only reads requests and shapes answers.
 * The protocol is described in docs/activation-api.md.
 */
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import { z } from 'zod';
import {
  activate,
  checkIn,
  FINGERPRINT_PATTERN,
  InvalidKeyError,
  licenceNotFound,
  type RemovalProof,
  removeDevice,
} from '../licensing/activation.js';
import { readKey } from '../licensing/activation-key.js';
import type { LicensingDeps } from '../licensing/context.js';
import {
  type ActivationGuard,
  createActivationGuard,
  guardMetrics,
  ThrottledError,
} from '../licensing/guard.js';
import { isRelaisError, RequestError, TransientError } from '../platform/errors.js';
import { type Metrics, perRegistry } from '../platform/metrics.js';

/**
 * Activations per ISP: the ones that worked by outcome, the refused ones by error code. A
 * refusal before any licence was found (a wrong key, a throttled address) has no ISP: `isp` is
 * empty. `relais_activation_attempts_total` (guard.ts) counts the same attempts by result.
 */
export const activationMetrics = perRegistry((registry: Metrics) => ({
  activations: new Counter({
    name: 'relais_activations_total',
    help: 'Successful activations by ISP and outcome: activated (first, billable), device-added, reactivated.',
    labelNames: ['isp', 'outcome'] as const,
    registers: [registry],
  }),
  failures: new Counter({
    name: 'relais_activation_failures_total',
    help: 'Refused activations by ISP (empty when no licence was found) and error code.',
    labelNames: ['isp', 'code'] as const,
    registers: [registry],
  }),
}));

/** The ISP an activation error names in its context, or empty. */
function ispOf(err: unknown): string {
  const isp = isRelaisError(err) ? err.context.ispId : undefined;
  return typeof isp === 'string' ? isp : '';
}

/** The code the answer will carry, near enough for a metric (api/server.ts decides it). */
function codeOf(err: FastifyError): string {
  if (isRelaisError(err)) return err.code;
  if (err.statusCode === 413) return 'HTTP_PAYLOAD_TOO_LARGE';
  return err.statusCode && err.statusCode < 500 ? 'HTTP_BAD_REQUEST' : 'INTERNAL';
}

export const FINGERPRINT_HEADER = 'x-relais-fingerprint';
export const KEY_HEADER = 'x-relais-activation-key';

const fingerprint = z
  .string()
  .regex(FINGERPRINT_PATTERN, 'expected 16 to 128 characters of A-Z a-z 0-9 . _ : + / = -');

const activationBody = z.strictObject({
  // Loose on purpose: whatever the text, a wrong key gets the one ACTIVATION_KEY_INVALID.
  key: z.string().max(256),
  fingerprint,
});
const checkInBody = z.strictObject({ fingerprint });
const idParam = z.string().regex(/^[a-z]{2,4}_[0-9a-z]{26}$/);

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.join('.');
    return field ? `${field}: ${issue.message}` : issue.message;
  });
  throw new RequestError('HTTP_BAD_REQUEST', `${what}: ${problems.join('; ')}`);
}

/** An id that cannot exist answers like an unknown one, without touching the database. */
function idOrNotFound(value: string): string {
  if (!idParam.safeParse(value).success) throw licenceNotFound();
  return value;
}

/** The guard's Redis calls, with an outage as a retryable 503 instead of a 500. */
function guardedBy(guard: ActivationGuard): ActivationGuard {
  const unavailable = (cause: unknown) =>
    new TransientError(
      'REDIS_UNAVAILABLE',
      'the guessing guard cannot reach redis; activation is refused until it is back',
      {},
      { cause },
    );
  const wrap =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await call(...args);
      } catch (err) {
        throw isRelaisError(err) ? err : unavailable(err);
      }
    };
  return {
    admit: wrap(guard.admit),
    failed: wrap(guard.failed),
    succeeded: wrap(guard.succeeded),
  };
}

export const activationRoutes: FastifyPluginAsync<{ deps: LicensingDeps }> = async (
  app,
  { deps },
) => {
  const metrics = guardMetrics(deps.metrics);
  const counted = activationMetrics(deps.metrics);
  const guard = guardedBy(
    createActivationGuard(
      deps.redis,
      deps.config.deployment.redis.prefix,
      deps.config.deployment.server.activation,
      metrics,
    ),
  );
  // After the answer is decided, a lost Redis only loses bookkeeping: a committed activation
  // must not read as a failure, and a refused one keeps its own answer.
  const afterwards = async (what: string, call: () => Promise<unknown>) => {
    try {
      await call();
    } catch (err) {
      deps.log.warn({ err }, `activation guard could not record ${what}`);
    }
  };

  // Retry-After travels as a header; the shared error handler shapes the body.
  app.addHook('onError', async (request, reply, err) => {
    if (err instanceof ThrottledError) void reply.header('retry-after', String(err.retryAfterS));
    if (request.routeOptions.url === '/v1/activations') {
      counted.failures.inc({ isp: ispOf(err), code: codeOf(err) });
    }
  });

  const address = (request: FastifyRequest) => request.ip;

  app.post('/v1/activations', async (request, reply: FastifyReply) => {
    const body = parse(activationBody, request.body, 'activation request');
    const reading = readKey(body.key);
    const admission = await guard.admit(address(request), {
      activation: true,
      keyPrefix: reading.ok ? reading.prefix : undefined,
    });
    try {
      const activation = await activate(deps, body);
      metrics.attempts.inc({ result: activation.outcome });
      counted.activations.inc({ isp: activation.ispId, outcome: activation.outcome });
      await afterwards('a success', () => guard.succeeded(address(request), admission));
      return reply.send({
        licenceId: activation.licenceId,
        deviceId: activation.deviceId,
        outcome: activation.outcome,
        document: activation.document,
      });
    } catch (err) {
      if (err instanceof InvalidKeyError) {
        metrics.attempts.inc({ result: err.reason });
        await afterwards('a failure', () => guard.failed(address(request)));
      } else if (isRelaisError(err)) {
        const result = {
          ACTIVATION_SUSPENDED: 'suspended',
          ACTIVATION_CANCELLED: 'cancelled',
          ACTIVATION_SEAT_LIMIT: 'seat-limit',
        }[err.code as string];
        if (result) metrics.attempts.inc({ result });
      }
      throw err;
    }
  });

  app.post<{ Params: { id: string } }>('/v1/licences/:id/check-in', async (request) => {
    const body = parse(checkInBody, request.body, 'check-in request');
    await guard.admit(address(request), { activation: false });
    const licenceId = idOrNotFound(request.params.id);
    const result = await checkIn(deps, licenceId, body.fingerprint);
    return { licenceId, deviceId: result.deviceId, document: result.document };
  });

  app.delete<{ Params: { id: string; device: string } }>(
    '/v1/licences/:id/devices/:device',
    async (request, reply) => {
      const given = request.headers[FINGERPRINT_HEADER];
      const key = request.headers[KEY_HEADER];
      let proof: RemovalProof;
      if (typeof given === 'string') {
        proof = { fingerprint: parse(fingerprint, given, FINGERPRINT_HEADER) };
        await guard.admit(address(request), { activation: false });
      } else if (typeof key === 'string') {
        // Proving with a key is trying a key: the same lockout and prefix limit as activation.
        const reading = readKey(key);
        await guard.admit(address(request), {
          activation: true,
          keyPrefix: reading.ok ? reading.prefix : undefined,
        });
        proof = { key };
      } else {
        throw new RequestError(
          'HTTP_BAD_REQUEST',
          `device removal needs the ${FINGERPRINT_HEADER} header of an active device of the licence, or ${KEY_HEADER}`,
        );
      }
      // A malformed licence id is answered without the database; the device id is left to
      // removeDevice, which judges the proof first, so it cannot tell a guesser anything.
      const licenceId = idOrNotFound(request.params.id);
      try {
        await removeDevice(deps, licenceId, request.params.device, proof);
      } catch (err) {
        // A key that does not match is a guess like any other: it counts towards the lockout.
        if ('key' in proof && isRelaisError(err) && err.code === 'LICENCE_NOT_FOUND') {
          await afterwards('a failure', () => guard.failed(address(request)));
        }
        throw err;
      }
      return reply.status(204).send();
    },
  );

  app.get('/v1/licensing/keys', async (_request, reply) => {
    // Keys change only on rotation, which adds one and keeps the old: an hour's cache is safe.
    void reply.header('cache-control', 'public, max-age=3600');
    return { keys: deps.keystore.publicKeys };
  });
};
