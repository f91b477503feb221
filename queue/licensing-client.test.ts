/**
 * How the client sorts the server's answers. The faults here (a 503 with Retry-After, a 429, an
 * answer that never comes, a short result list) are ones the real server cannot be made to
 * produce on demand, so a small local HTTP server plays them; the real server's answers are
 * covered by test/provisioning-worker.int.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestError, TransientError } from '../platform/errors.js';
import { createLicensingClient, retryAfterMs } from './licensing-client.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let handler: Handler = (_req, _body, res) => res.end();
const seen: { method?: string; url?: string; authorization?: string; body: string }[] = [];
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      seen.push({
        method: req.method,
        url: req.url,
        authorization: req.headers.authorization,
        body,
      });
      handler(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const client = () =>
  createLicensingClient({
    baseUrl,
    tokenOf: (isp) => `token-of-${isp}-0123456789`,
    timeoutMs: 300,
  });

const command = {
  key: 'sub_0000000000000000000000000a:v1',
  kind: 'subscribe' as const,
  subscriberId: 'sub_0000000000000000000000000a',
  version: 1,
  modules: ['antivirus'],
  status: 'active' as const,
  effectiveAt: '2026-12-01T00:00:00.000Z',
};

function answer(status: number, body: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, _body, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err,
  );
}

describe('createLicensingClient', () => {
  it('posts the batch with the ISP token and returns the results', async () => {
    const results = [{ key: command.key, outcome: 'applied' }];
    handler = answer(200, { results });
    seen.length = 0;
    const response = await client().sendBatch('demo', [command]);
    expect(response.results).toEqual(results);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: '/v1/provisioning/batches',
      authorization: 'Bearer token-of-demo-0123456789',
    });
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual({ commands: [command] });
  });

  it.each([
    [500, {}],
    [502, {}],
    [503, { code: 'DB_UNAVAILABLE', message: 'database restarting' }],
    [429, { code: 'RATE_LIMITED', message: 'slow down' }],
  ])('turns a %i into a retryable LICENSING_SERVER_UNAVAILABLE', async (status, body) => {
    handler = answer(status, body);
    const err = await failure(client().sendBatch('demo', [command]));
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).code).toBe('LICENSING_SERVER_UNAVAILABLE');
    expect((err as TransientError).context.status).toBe(status);
  });

  it('carries Retry-After as a minimum delay', async () => {
    handler = answer(503, {}, { 'retry-after': '7' });
    const err = (await failure(client().sendBatch('demo', [command]))) as TransientError;
    expect(err.context.retryAfterMs).toBe(7000);
  });

  it.each([
    [400, 'PROVISIONING_INVALID', 'commands[0].email: unrecognized key'],
    [401, 'PROVISIONING_UNAUTHORIZED', 'unknown bearer token'],
    [409, 'PROVISIONING_KEY_CONFLICT', 'key sent again with another body'],
    [404, 'LICENCE_NOT_FOUND', 'no licence lic_x'],
  ])('turns a %i into a permanent error with the server code', async (status, code, message) => {
    handler = answer(status, { code, message, requestId: 'req_1' });
    const err = await failure(client().sendBatch('demo', [command]));
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ code, message, retryable: false });
  });

  it('names a code by status when the server names none we know', async () => {
    handler = answer(409, { code: 'SOMETHING_NEW', message: 'x' });
    const err = await failure(client().sendBatch('demo', [command]));
    expect(err).toMatchObject({ code: 'PROVISIONING_KEY_CONFLICT', retryable: false });
  });

  it('treats an answer that does not come in time as transient', async () => {
    handler = () => {}; // never answers
    const err = await failure(client().sendBatch('demo', [command]));
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).message).toMatch(/did not answer/);
  });

  it('treats a closed port as transient', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const down = createLicensingClient({ baseUrl: `http://127.0.0.1:${port}`, tokenOf: () => 't' });
    const err = await failure(down.sendBatch('demo', [command]));
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).message).toMatch(/ECONNREFUSED/);
  });

  it('refuses a result list that does not match the commands', async () => {
    handler = answer(200, { results: [] });
    const err = await failure(client().sendBatch('demo', [command]));
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).message).toMatch(/1 commands with 0 results/);
  });

  it('re-issues a key through POST /v1/licences/:id/key', async () => {
    const licence = {
      licenceId: 'lic_0000000000000000000000000a',
      key: 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE',
      downloadUrl: 'http://server/v1/downloads/t',
      downloadExpiresAt: '2027-01-01T00:00:00.000Z',
      validUntil: '2027-01-08T00:00:00.000Z',
    };
    handler = answer(200, { licence });
    seen.length = 0;
    await expect(client().reissueKey('demo', licence.licenceId)).resolves.toEqual(licence);
    expect(seen[0]?.url).toBe(`/v1/licences/${licence.licenceId}/key`);
  });

  it('reports deliveries and accepts an empty answer', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(204);
      res.end();
    };
    seen.length = 0;
    const report = {
      deliveries: [
        {
          subscriberId: command.subscriberId,
          licenceId: 'lic_0000000000000000000000000a',
          channel: 'email' as const,
          deliveredAt: '2026-12-01T10:00:00.000Z',
        },
      ],
    };
    await client().reportDeliveries('demo', report);
    expect(seen[0]?.url).toBe('/v1/provisioning/deliveries');
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual(report);
  });
});

describe('retryAfterMs', () => {
  it.each([
    ['3', 3000],
    ['0', undefined],
    ['', undefined],
    ['soon', undefined],
    ['86400', 600_000],
  ])('reads %j as %s', (header, ms) => {
    expect(retryAfterMs(header)).toBe(ms);
  });

  it('reads an HTTP date', () => {
    const now = Date.parse('2026-12-01T10:00:00Z');
    expect(retryAfterMs('Tue, 01 Dec 2026 10:00:30 GMT', now)).toBe(30_000);
  });
});
