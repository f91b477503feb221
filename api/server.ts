/**
 * The HTTP edge. Builds a fastify instance with the health routes and whatever route plugins
 * the composition root passes in (feed push, provisioning, activation, admin). Every error
 * leaves as `{ code, message, requestId }`; stacks and internals stay in the server log.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  LogController,
} from 'fastify';
import { ERROR_CODES, type ErrorCode } from '../platform/error-codes.js';
import { InternalError, isDatabaseError, isRelaisError, isRetryable } from '../platform/errors.js';
import { newId } from '../platform/ids.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { ReadinessCheck } from '../platform/readiness.js';
import { healthRoutes } from './health.routes.js';

export interface ApiOptions {
  log: Logger;
  metrics: Metrics;
  readiness: ReadinessCheck[];
  /** Largest JSON body, in bytes. */
  bodyLimitBytes: number;
  trustProxy?: boolean;
  /** Route plugins added by later capabilities. */
  routes?: FastifyPluginAsync[];
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  requestId: string;
}

/** Maps fastify's own errors (bad JSON, body too large, schema validation) to our codes. */
function classifyFrameworkError(err: FastifyError): { code: ErrorCode; message: string } {
  const status = err.statusCode ?? 500;
  if (status === 413) return { code: 'HTTP_PAYLOAD_TOO_LARGE', message: 'request body too large' };
  if (status >= 400 && status < 500) {
    return { code: 'HTTP_BAD_REQUEST', message: err.message.split('\n')[0] ?? 'bad request' };
  }
  return { code: 'INTERNAL', message: 'internal error' };
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.log as FastifyBaseLogger,
    // Per-request info lines would flood the log at activation rates; failures are logged below.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => newId('req'),
    bodyLimit: options.bodyLimitBytes,
    trustProxy: options.trustProxy ?? false,
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    let code: ErrorCode;
    let message: string;
    if (isRelaisError(err) && !(err instanceof InternalError)) {
      code = err.code;
      message = err.message;
    } else if (!isRelaisError(err) && isDatabaseError(err) && isRetryable(err)) {
      // A database restarting is an outage the client may retry, not a bug of ours.
      code = 'DB_UNAVAILABLE';
      message = 'the database is unavailable; retry later';
    } else if (!isRelaisError(err) && err.statusCode && err.statusCode < 500) {
      ({ code, message } = classifyFrameworkError(err));
    } else {
      code = 'INTERNAL';
      message = 'internal error';
    }
    const status = ERROR_CODES[code].httpStatus;
    if (status >= 500) request.log.error({ err, code }, 'request failed');
    else request.log.info({ code, url: request.routeOptions.url, status }, 'request refused');
    const body: ErrorBody = { code, message, requestId: request.id };
    void reply.status(status).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = {
      code: 'HTTP_NOT_FOUND',
      message: 'no such route',
      requestId: request.id,
    };
    void reply.status(404).send(body);
  });

  // On close, Node closes the keep-alive connections idle at that instant; one whose last
  // answer was still being flushed turns idle a moment later and would hold the close for the
  // whole keep-alive timeout (72 s). Keep closing idle connections until the server is closed.
  app.addHook('preClose', (done) => {
    const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
    sweep.unref();
    app.server.once('close', () => clearInterval(sweep));
    done();
  });

  await app.register(healthRoutes, { metrics: options.metrics, readiness: options.readiness });
  for (const routes of options.routes ?? []) await app.register(routes);
  return app;
}
