/**
 * A recording HTTP proxy on a free loopback port, for proofs about what one process sends
 * another over HTTP when the sender runs in a child process (where wrapping `fetch` is not
 * possible). Point the sender at `url`; every request is forwarded to the target, and the
 * request and its answer (method, path, headers, bodies, status) are kept in `exchanges`.
 *
 * The target may be unknown when the proxy starts (an api on a free port that a child process
 * prints once it listens): requests wait until `setTarget` is called.
 *
 * Bodies are buffered whole, both ways: fine for tests, not for large transfers.
 */
import { createServer, type IncomingHttpHeaders, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Exchange {
  method: string;
  /** Path and query, as the sender asked. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  status: number;
  responseHeaders: IncomingHttpHeaders;
  response: Buffer;
}

export interface RecordingProxy {
  url: string;
  exchanges: Exchange[];
  /** The base URL (`http://host:port`) requests are forwarded to. */
  setTarget(target: string): void;
  close(): Promise<void>;
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

export async function startRecordingProxy(port = 0): Promise<RecordingProxy> {
  const exchanges: Exchange[] = [];
  let setTarget: (target: string) => void = () => {};
  const target = new Promise<URL>((resolve) => {
    setTarget = (t) => resolve(new URL(t));
  });

  const server = createServer(async (incoming, outgoing) => {
    try {
      const body = await readAll(incoming);
      const to = await target;
      const headers = { ...incoming.headers, host: to.host };
      const answer = await new Promise<{
        status: number;
        headers: IncomingHttpHeaders;
        body: Buffer;
      }>((resolve, reject) => {
        const forwarded = request(
          {
            host: to.hostname,
            port: to.port,
            method: incoming.method,
            path: incoming.url,
            headers,
          },
          async (response) => {
            try {
              const bytes = await readAll(response);
              resolve({
                status: response.statusCode ?? 502,
                headers: response.headers,
                body: bytes,
              });
            } catch (err) {
              reject(err);
            }
          },
        );
        forwarded.on('error', reject);
        forwarded.end(body);
      });
      exchanges.push({
        method: incoming.method ?? 'GET',
        path: incoming.url ?? '/',
        headers: incoming.headers,
        body,
        status: answer.status,
        responseHeaders: answer.headers,
        response: answer.body,
      });
      // The body was read whole: its length replaces any chunked framing of the original.
      const { 'transfer-encoding': _chunked, ...rest } = answer.headers;
      outgoing.writeHead(answer.status, { ...rest, 'content-length': answer.body.length });
      outgoing.end(answer.body);
    } catch (err) {
      outgoing.writeHead(502, { 'content-type': 'text/plain' });
      outgoing.end(`recording proxy: ${(err as Error).message}`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    exchanges,
    setTarget: (t) => setTarget(t),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
