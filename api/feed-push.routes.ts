/**
 * `POST /v1/isps/:isp/feeds`: an ISP billing system pushes an export over HTTPS.
 *
 * Authentication is per ISP: the request carries `X-Relais-Timestamp` (unix seconds) and
 * `X-Relais-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<body>` under the ISP's
 * own secret, so one ISP's credentials can never push into another's feeds. The timestamp must
 * be within the replay window and each signature is accepted once. The body is streamed to
 * disk while being hashed and signed, capped at the ISP's `maxBodyBytes` (413 beyond it,
 * without reading the rest). Answers 202 with the new feed id, or 200 with the existing one
 * when the same content was already received. The protocol for ISPs is in docs/push-api.md.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { IspConfig, RelaisConfig } from '../config/load.js';
import { HashingCounter } from '../connectors/intake/feed-files.js';
import type { IntakeDeps } from '../connectors/intake/intake-service.js';
import { type Received, receiveFeed } from '../connectors/intake/receive.js';
import type { HttpPushOptions } from '../connectors/transports/http-push.options.js';
import { isRelaisError, RequestError, TransientError } from '../platform/errors.js';
import { ingestJobId, JOB_NAMES, type Queues } from '../queue/queues.js';

export const TIMESTAMP_HEADER = 'x-relais-timestamp';
export const SIGNATURE_HEADER = 'x-relais-signature';
export const FILENAME_HEADER = 'x-relais-filename';

export interface FeedPushOptions {
  config: RelaisConfig;
  intake: IntakeDeps;
  queues: Pick<Queues, 'feeds'>;
  redis: Redis;
  /** Redis key prefix of the deployment (replay keys live under it), not a URL prefix. */
  prefix: string;
  now?: () => number;
}

type RouteOptions = Omit<FeedPushOptions, 'prefix'> & { redisPrefix: string };

/** Signs a push the way an ISP must: for clients, tests and docs. */
export function signPush(secret: string, timestampS: number, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampS}.`).update(body).digest('hex')}`;
}

function unauthorized(reason: string): RequestError {
  return new RequestError('FEED_PUSH_UNAUTHORIZED', `push refused: ${reason}`);
}

function pushSettings(
  config: RelaisConfig,
  ispId: string,
): { isp: IspConfig; push: HttpPushOptions } {
  const isp = config.isps.get(ispId);
  const transport = isp?.intake.transport;
  if (!isp?.enabled || transport?.type !== 'http') {
    throw new RequestError('ISP_UNKNOWN', 'no ISP accepts pushes at this address');
  }
  return { isp, push: transport };
}

/** Counts bytes and feeds the HMAC; fails the stream past the cap. */
class SignedCap extends Transform {
  private seen = 0;
  constructor(
    private readonly hmac: ReturnType<typeof createHmac>,
    private readonly maxBytes: number,
  ) {
    super();
  }

  override _transform(
    chunk: Buffer,
    _e: BufferEncoding,
    done: (err?: Error | null, data?: Buffer) => void,
  ): void {
    this.seen += chunk.length;
    if (this.seen > this.maxBytes) {
      done(
        new RequestError(
          'FEED_TOO_LARGE',
          `push larger than the ${this.maxBytes} bytes this ISP may send`,
        ),
      );
      return;
    }
    this.hmac.update(chunk);
    done(null, chunk);
  }
}

/** A body that stopped before its end (client gone, short Content-Length) is the sender's fault. */
function asBodyError(err: unknown, body: Readable): unknown {
  if (isRelaisError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const cutShort =
    code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || body.readableAborted;
  if (!cutShort) return err;
  const message = 'push body ended before it was complete';
  return new RequestError('HTTP_BAD_REQUEST', message, {}, { cause: err });
}

function readHeaders(request: FastifyRequest, push: HttpPushOptions, nowS: number) {
  const timestamp = String(request.headers[TIMESTAMP_HEADER] ?? '');
  const signature = String(request.headers[SIGNATURE_HEADER] ?? '');
  if (!/^\d{1,12}$/.test(timestamp)) throw unauthorized(`missing or malformed ${TIMESTAMP_HEADER}`);
  if (!/^sha256=[0-9a-f]{64}$/.test(signature))
    throw unauthorized(`missing or malformed ${SIGNATURE_HEADER}`);
  if (Math.abs(nowS - Number(timestamp)) > push.replayWindowS) {
    throw unauthorized(
      `timestamp outside the ${push.replayWindowS} s window (check the sender clock)`,
    );
  }
  const length = Number(request.headers['content-length'] ?? Number.NaN);
  if (length > push.maxBodyBytes) {
    throw new RequestError(
      'FEED_TOO_LARGE',
      `push of ${length} bytes, larger than the ${push.maxBodyBytes} bytes this ISP may send`,
    );
  }
  return { timestamp: Number(timestamp), signature };
}

function pushName(request: FastifyRequest, nowMs: number): string {
  const given = String(request.headers[FILENAME_HEADER] ?? '').replace(/[^\w.-]+/g, '_');
  return given.length > 0
    ? given.slice(0, 200)
    : `push-${new Date(nowMs).toISOString().replace(/[:.]/g, '-')}`;
}

/**
 * Refusals worth a warning: a wrong signature, a replay or an oversized body may be a sender
 * misconfigured or someone probing. None of them reaches the ledger (no feed exists), so the
 * log line is their record. It holds the code and our own message, never headers or body.
 */
const WARNED_REFUSALS = new Set<string>([
  'FEED_PUSH_UNAUTHORIZED',
  'FEED_PUSH_REPLAYED',
  'FEED_TOO_LARGE',
]);

function redisDown(cause?: unknown): TransientError {
  const message = 'cannot accept pushes while redis is down';
  return new TransientError('REDIS_UNAVAILABLE', message, {}, { cause });
}

/** A Redis call of the route, with an outage (even one starting mid-body) as a retryable 503. */
async function redisCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw redisDown(err);
  }
}

const pushRoute: FastifyPluginAsync<RouteOptions> = async (app, options) => {
  const now = options.now ?? Date.now;
  app.addHook('onError', async (request, _reply, err) => {
    if (!isRelaisError(err) || !WARNED_REFUSALS.has(err.code)) return;
    const { isp } = request.params as { isp?: string };
    request.log.warn({ isp, code: err.code, reason: err.message }, 'push refused');
    if (isp && options.config.isps.has(isp)) options.intake.metrics?.deliveryRefused(isp, err.code);
  });
  // Every body is the raw stream, whatever its content type: without this, fastify's own
  // parsers would take `application/json` and `text/plain` bodies (and their JSON body limit).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  app.post<{ Params: { isp: string } }>('/v1/isps/:isp/feeds', async (request, reply) => {
    const { isp, push } = pushSettings(options.config, request.params.isp);
    const { timestamp, signature } = readHeaders(request, push, Math.floor(now() / 1000));
    if (options.redis.status !== 'ready') throw redisDown();
    const replayKey = `${options.redisPrefix}:push-signature:${isp.id}:${signature.slice(7)}`;
    if ((await redisCall(() => options.redis.exists(replayKey))) === 1)
      throw new RequestError('FEED_PUSH_REPLAYED', 'this signed request was already received');

    const body = request.body as Readable;
    let isReplayKeyOurs = false;
    let received: Received;
    try {
      received = await receiveFeed(options.intake, {
        ispId: isp.id,
        source: 'http',
        name: pushName(request, now()),
        async fill(path) {
          const hmac = createHmac('sha256', push.secret).update(`${timestamp}.`);
          const counter = new HashingCounter();
          const file = createWriteStream(path);
          try {
            await pipeline(body, new SignedCap(hmac, push.maxBodyBytes), counter, file);
          } catch (err) {
            // The pipeline may fail before the file is even open: removing it before it is
            // closed would leave it behind.
            if (!file.closed)
              await new Promise<void>((closed) => file.once('close', () => closed()));
            rmSync(path, { force: true });
            throw asBodyError(err, body);
          }
          const expected = Buffer.from(`sha256=${hmac.digest('hex')}`);
          const given = Buffer.from(signature);
          if (expected.length !== given.length || !timingSafeEqual(expected, given))
            throw unauthorized('signature does not match');
          const fresh = await redisCall(() =>
            options.redis.set(replayKey, '1', 'EX', push.replayWindowS * 2, 'NX'),
          );
          if (fresh !== 'OK')
            throw new RequestError(
              'FEED_PUSH_REPLAYED',
              'this signed request was already received',
            );
          isReplayKeyOurs = true;
          return { sizeBytes: counter.sizeBytes, sha256: counter.digest() };
        },
      });
    } catch (err) {
      // Nothing was recorded: the ISP may send this very request again.
      if (isReplayKeyOurs) await options.redis.del(replayKey).catch(() => undefined);
      throw err;
    }

    options.intake.metrics?.feedReceived(isp.id, 'http', received.original !== undefined);
    if (received.original) {
      return reply
        .status(200)
        .send({ feedId: received.original.id, status: received.original.status, duplicate: true });
    }
    if (received.feed.status === 'failed') {
      // Recorded (the ledger shows the ISP's mistake) but refused: the sender must hear it.
      throw new RequestError(
        'FEED_ZERO_BYTES',
        `push is empty (0 bytes); recorded as failed feed ${received.feed.id}`,
      );
    }
    try {
      await options.queues.feeds.add(
        JOB_NAMES.ingestIsp,
        { ispId: isp.id, feedId: received.feed.id },
        { jobId: ingestJobId(isp.id, received.feed.id) },
      );
    } catch (err) {
      // Redis went down after the feed was recorded. The feed is safe in the ledger, and the
      // scheduler's sweep asks for the drain of every feed still received (every minute), so
      // the push is accepted: refusing it now would ask the ISP to resend what is kept.
      request.log.warn(
        { err, isp: isp.id, feedId: received.feed.id },
        'feed recorded, its drain left to the scheduler sweep',
      );
    }
    return reply
      .status(202)
      .send({ feedId: received.feed.id, status: received.feed.status, duplicate: false });
  });
};

/**
 * The push route plugin. Fastify reads a `prefix` plugin option as a URL prefix, and this
 * plugin's `prefix` is the Redis key prefix; so this outer plugin is not encapsulated (fastify
 * then ignores `prefix`) and registers the encapsulated route without a URL prefix.
 */
export const feedPushRoutes: FastifyPluginAsync<FeedPushOptions> = Object.assign(
  async (app: FastifyInstance, { prefix, ...rest }: FeedPushOptions) => {
    await app.register(pushRoute, { ...rest, redisPrefix: prefix });
  },
  { [Symbol.for('skip-override')]: true },
);
