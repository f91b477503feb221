/**
 * The invoice-line push against a real HTTP server on 127.0.0.1 that dedups lines by their
 * idempotency key, as the ISP billing system is expected to: chunking, retries after a dropped
 * connection (once the body was read), 5xx, 429 and timeouts, no retry on other 4xx, and never
 * a line billed twice.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { XMLParser } from 'fast-xml-parser';
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpInvoiceLines, invoiceLinesSchema } from '../../config/invoice-lines-schema.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { chunkKey, pushInvoiceLines } from './http-push.js';
import { GOLDEN_PERIOD, goldenLines, streamOf } from './test-lines.js';
import { lineHashKey } from './values.js';

const CTX = { ispId: 'test-isp', period: GOLDEN_PERIOD, timeZone: 'Europe/Paris', currency: 'EUR' };
const LINES = goldenLines('test-isp');

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

/** What the handler decides for one request: answer, drop the connection, or never answer. */
type Reaction = { status: number; headers?: Record<string, string> } | 'drop' | 'hang';

/** An ISP billing endpoint: bills each line key once, whatever is re-sent. */
class BillingEndpoint {
  readonly requests: Received[] = [];
  /** Line key → times billed. */
  readonly billed = new Map<string, number>();
  private server?: Server;
  url = '';

  constructor(
    private readonly react: (n: number, body: string) => Reaction = () => ({ status: 200 }),
  ) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/v1/lines`;
    return this;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      this.requests.push({ headers: req.headers, body });
      const reaction = this.react(this.requests.length, body);
      const ok = reaction !== 'drop' && reaction !== 'hang' && reaction.status < 300;
      // The body was read and, as a real system might, committed before the answer is lost.
      if (ok || reaction === 'drop' || reaction === 'hang') this.bill(body);
      if (reaction === 'drop') req.socket.destroy();
      else if (reaction !== 'hang') {
        res.writeHead(reaction.status, reaction.headers).end('{}');
      }
    });
  }

  private bill(body: string): void {
    const keys = body.startsWith('{')
      ? (JSON.parse(body).lines as { key: string }[]).map((l) => l.key)
      : [...body.matchAll(/<Cle>([0-9a-f]+)<\/Cle>/g)].map((m) => m[1] as string);
    for (const key of keys) if (!this.billed.has(key)) this.billed.set(key, 1);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

let endpoint: BillingEndpoint | undefined;
afterEach(async () => {
  await endpoint?.stop();
  endpoint = undefined;
});

async function start(react?: (n: number, body: string) => Reaction): Promise<BillingEndpoint> {
  endpoint = await new BillingEndpoint(react).start();
  return endpoint;
}

function push(url: string, extra: Record<string, unknown> = {}): HttpInvoiceLines {
  return invoiceLinesSchema.parse({
    type: 'http',
    url,
    auth: { value: 'Bearer s3cret-token' },
    headers: { 'X-Api-Version': '2' },
    linesPerChunk: 2,
    timeoutMs: 2_000,
    retry: { retries: 3, initialDelayMs: 5, maxDelayMs: 20 },
    body: {
      type: 'json',
      envelope: [
        { name: 'periode', field: 'period' },
        { name: 'lignes', field: 'count', as: 'number' },
        { name: 'total', field: 'total', as: 'number' },
      ],
      fields: [
        { name: 'key', field: 'idempotencyKey' },
        { name: 'client', field: 'customerRef' },
        { name: 'article', field: 'module' },
        { name: 'montant', field: 'amount', as: 'number' },
        { name: 'libelle', field: 'amount' },
      ],
      decimalSeparator: ',',
    },
    ...extra,
  }) as HttpInvoiceLines;
}

const allKeys = (lines: IspInvoiceLine[]) => lines.map((l) => lineHashKey(l.ispId, l.lineId));

describe('pushInvoiceLines', () => {
  it('sends chunks with per-line and per-chunk keys, the credential and exact numbers', async () => {
    const isp = await start();
    const result = await pushInvoiceLines(push(isp.url), streamOf(LINES), CTX);

    expect(result).toEqual({
      lines: 6,
      charges: 4,
      adjustments: 2,
      totalAmount: '2.24',
      chunks: 3,
      requests: 3,
    });
    const bodies = isp.requests.map((r) => JSON.parse(r.body));
    expect(bodies.map((b) => b.lines.length)).toEqual([2, 2, 2]);
    expect(isp.requests[0]?.body).toBe(
      `{"periode":"2026-03","lignes":2,"total":-0.30,"lines":[{"key":"${allKeys(LINES)[0]}","client":"00012345","article":"backup","montant":-1.50,"libelle":"-1,50"},{"key":"${allKeys(LINES)[1]}","client":"00000042","article":"antivirus","montant":1.20,"libelle":"1,20"}]}`,
    );
    const first = isp.requests[0]?.headers;
    expect(first?.authorization).toBe('Bearer s3cret-token');
    expect(first?.['x-api-version']).toBe('2');
    expect(first?.['content-type']).toBe('application/json; charset=utf-8');
    expect(first?.['idempotency-key']).toBe(chunkKey(CTX, LINES.slice(0, 2)));
    expect(new Set(isp.requests.map((r) => r.headers['idempotency-key'])).size).toBe(3);
    expect([...isp.billed.keys()]).toEqual(allKeys(LINES));
  });

  it('retries a chunk whose connection dropped after the body was read, billing nothing twice', async () => {
    const isp = await start((n) => (n === 1 ? 'drop' : { status: 201 }));
    const result = await pushInvoiceLines(push(isp.url), streamOf(LINES), CTX);

    expect(result.requests).toBe(4);
    const [lost, retried] = isp.requests;
    expect(retried?.body).toBe(lost?.body);
    expect(retried?.headers['idempotency-key']).toBe(lost?.headers['idempotency-key']);
    expect([...isp.billed.entries()]).toEqual(allKeys(LINES).map((k) => [k, 1]));
  });

  it('retries 5xx and 429 (honouring Retry-After) with capped backoff', async () => {
    const answers: Reaction[] = [
      { status: 503 },
      { status: 429, headers: { 'retry-after': '0' } },
      { status: 200 },
    ];
    const isp = await start((n) => answers[n - 1] ?? { status: 200 });
    const result = await pushInvoiceLines(push(isp.url), streamOf(LINES), CTX);
    expect(result.requests).toBe(5);
    expect(isp.requests.slice(0, 3).map((r) => r.headers['idempotency-key'])).toEqual(
      Array(3).fill(chunkKey(CTX, LINES.slice(0, 2))),
    );
    expect(isp.billed.size).toBe(6);
  });

  it('retries a request that timed out, with the same keys', async () => {
    const isp = await start((n) => (n === 1 ? 'hang' : { status: 200 }));
    const result = await pushInvoiceLines(push(isp.url, { timeoutMs: 200 }), streamOf(LINES), CTX);
    expect(result.requests).toBe(4);
    expect([...isp.billed.values()]).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('stops on a 422 without retrying, naming the lines of the chunk', async () => {
    const isp = await start((n) => (n === 2 ? { status: 422 } : { status: 200 }));
    const error = await pushInvoiceLines(push(isp.url), streamOf(LINES), CTX).catch((e) => e);

    const host = new URL(isp.url).host;
    const [a, b] = [LINES[2]?.lineId, LINES[3]?.lineId];
    expect(error).toMatchObject({
      name: 'IspDataError',
      code: 'BILLING_PUSH_REJECTED',
      retryable: false,
      message: `the ISP billing system at ${host} refused chunk 2 (2 lines: ${a}, ${b}) with HTTP 422; nothing after it was sent`,
      context: { status: 422, chunk: 2, lineIds: [a, b] },
    });
    expect(isp.requests).toHaveLength(2);
  });

  it('reports a 401 as a config error, not retried', async () => {
    const isp = await start(() => ({ status: 401 }));
    await expect(pushInvoiceLines(push(isp.url), streamOf(LINES), CTX)).rejects.toMatchObject({
      name: 'ConfigError',
      code: 'BILLING_PUSH_REJECTED',
    });
    expect(isp.requests).toHaveLength(1);
  });

  it('gives up after every retry with a retryable error', async () => {
    const isp = await start(() => ({ status: 500 }));
    const error = await pushInvoiceLines(push(isp.url), streamOf(LINES), CTX).catch((e) => e);
    expect(error).toMatchObject({
      name: 'TransientError',
      code: 'BILLING_PUSH_UNAVAILABLE',
      retryable: true,
      message: `the ISP billing system at ${new URL(isp.url).host} did not take chunk 1 (2 lines: ${LINES[0]?.lineId}, ${LINES[1]?.lineId}) after 4 attempts (last: HTTP 500); retry the push, its keys make it safe`,
    });
    expect(isp.requests).toHaveLength(4);
  });

  it('retries on a refused connection, then gives up', async () => {
    const isp = await start();
    const { url } = isp;
    await isp.stop();
    endpoint = undefined;
    const settings = push(url, { retry: { retries: 1, initialDelayMs: 1, maxDelayMs: 1 } });
    await expect(pushInvoiceLines(settings, streamOf(LINES), CTX)).rejects.toMatchObject({
      code: 'BILLING_PUSH_UNAVAILABLE',
      message: expect.stringMatching(/after 2 attempts \(last: ECONNREFUSED\)/),
    });
  });

  it('bills nothing twice when a whole push is run again after a crash', async () => {
    const isp = await start((n) => (n === 3 ? { status: 503 } : { status: 200 }));
    const settings = push(isp.url, { retry: { retries: 0, initialDelayMs: 0, maxDelayMs: 0 } });
    await expect(pushInvoiceLines(settings, streamOf(LINES), CTX)).rejects.toMatchObject({
      code: 'BILLING_PUSH_UNAVAILABLE',
    });
    expect(isp.billed.size).toBe(4);
    await pushInvoiceLines(settings, streamOf(LINES), CTX);
    expect([...isp.billed.entries()]).toEqual(allKeys(LINES).map((k) => [k, 1]));
    expect(isp.requests.slice(3).map((r) => r.headers['idempotency-key'])).toEqual(
      isp.requests.slice(0, 3).map((r) => r.headers['idempotency-key']),
    );
  });

  it('counts the declared duplicate status as delivered', async () => {
    const isp = await start(() => ({ status: 409 }));
    const result = await pushInvoiceLines(
      push(isp.url, { duplicateStatus: 409 }),
      streamOf(LINES),
      CTX,
    );
    expect(result).toMatchObject({ lines: 6, chunks: 3, requests: 3 });
  });

  it('pushes an XML body with line ids as keys when lineKey is line-id', async () => {
    const isp = await start();
    const settings = push(isp.url, {
      lineKey: 'line-id',
      linesPerChunk: 500,
      body: {
        type: 'xml',
        root: {
          element: 'Import',
          fields: [
            { path: '@lignes', field: 'count' },
            { path: '@total', field: 'total' },
          ],
        },
        line: {
          element: 'Ligne',
          fields: [
            { path: '@id', field: 'idempotencyKey' },
            { path: 'Montant', field: 'amount' },
          ],
        },
      },
    });
    const result = await pushInvoiceLines(settings, streamOf(LINES), CTX);
    expect(result.requests).toBe(1);
    const [request] = isp.requests;
    expect(request?.headers['content-type']).toBe('application/xml; charset=utf-8');
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(
      request?.body as string,
    );
    expect(doc.Import['@lignes']).toBe('6');
    expect(doc.Import['@total']).toBe('2.24');
    expect(doc.Import.Ligne.map((l: Record<string, string>) => l['@id'])).toEqual(
      LINES.map((l) => l.lineId),
    );
  });

  it('holds one chunk at a time: a refused chunk stops the stream being read', async () => {
    const isp = await start((n) => (n === 1 ? { status: 400 } : { status: 200 }));
    let pulled = 0;
    async function* counted() {
      for (const line of LINES) {
        pulled++;
        yield line;
      }
    }
    await expect(pushInvoiceLines(push(isp.url), counted(), CTX)).rejects.toMatchObject({
      code: 'BILLING_PUSH_REJECTED',
    });
    expect(pulled).toBe(2);
  });
});
