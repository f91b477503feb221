/**
 * A TCP proxy on a free loopback port in front of a real server (the shared MariaDB), that a
 * test can cut: every open connection is reset at once and new ones are reset as they arrive,
 * until `restore()`. It plays a database becoming unreachable mid-transaction, which the real
 * MariaDB cannot do on demand without stopping it for every other test file (so this is the
 * documented fake of issue 7: the server behind it and the clients in front are real).
 *
 * `cutAfter(bytes)` cuts once that many more bytes went from clients to the server, in the
 * middle of whatever statement they belong to: a seeded byte count is a moment of the run that
 * does not depend on how fast the machine is.
 */
import { createServer, type Server, Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Bytes sent from clients to the server since the proxy started. */
  readonly bytesUp: number;
  readonly isCut: boolean;
  /**
   * Local ports of the server-side connections the last cut reset: the server still holds
   * their sessions until it notices, and lists them by these ports (`127.0.0.1:<port>`).
   */
  readonly lastCutPorts: number[];
  /** Resets every connection now and every new one until `restore()`. */
  cut(): void;
  /** Cuts once `bytes` more bytes went upstream; resolves when it did. */
  cutAfter(bytes: number): Promise<void>;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let bytesUp = 0;
  let isCut = false;
  let armed: { at: number; resolve: () => void } | undefined;
  let lastCutPorts: number[] = [];

  const cut = () => {
    isCut = true;
    lastCutPorts = [...pairs].map(([, upstream]) => upstream.localPort as number);
    for (const [client, upstream] of pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    pairs.clear();
  };

  /** Forwards `chunk` upstream, cutting in the middle of it when the armed count is reached. */
  const forward = (chunk: Buffer, upstream: Socket) => {
    if (armed && bytesUp + chunk.length >= armed.at) {
      const { at, resolve } = armed;
      armed = undefined;
      upstream.write(chunk.subarray(0, at - bytesUp));
      bytesUp = at;
      cut();
      resolve();
      return;
    }
    bytesUp += chunk.length;
    upstream.write(chunk);
  };

  const server: Server = createServer((client) => {
    if (isCut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => forward(chunk, upstream));
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    upstream.connect(target.port, target.host);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    port,
    get bytesUp() {
      return bytesUp;
    },
    get isCut() {
      return isCut;
    },
    get lastCutPorts() {
      return lastCutPorts;
    },
    cut,
    cutAfter(bytes) {
      return new Promise((resolve) => {
        armed = { at: bytesUp + Math.max(1, bytes), resolve };
      });
    },
    restore() {
      isCut = false;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
