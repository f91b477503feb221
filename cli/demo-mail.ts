/**
 * The customers' mailboxes in `relais demo`: a local SMTP server (the `smtp-server` package)
 * that accepts every message the connector sends through an ISP's relay and keeps each one as
 * an `.eml` file, and the reading of a key and download link back out of them, as a customer
 * would read the mail.
 *
 * @remarks Only ISPs whose relay is on this machine (127.0.0.1 or localhost) are pointed at the
 * sink; the demo never mails anyone. Files stay between runs, so a second demo, which sends
 * nothing new, still finds the keys of the first.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { IspConfig, RelaisConfig } from '../config/load.js';

export interface MailSink {
  port: number;
  dir: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** The ISPs that deliver keys by e-mail through a relay on this machine. */
export function localMailIsps(config: RelaisConfig): IspConfig[] {
  return [...config.isps.values()].filter(
    (isp) => isp.delivery.mode === 'email' && LOOPBACK.has(isp.delivery.email?.smtp.host ?? ''),
  );
}

/** Starts the sink on a free loopback port; every accepted message lands in `dir`. */
export async function startMailSink(dir: string): Promise<MailSink> {
  mkdirSync(dir, { recursive: true });
  let sequence = readdirSync(dir).filter((n) => n.endsWith('.eml')).length;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, done) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', done);
      stream.on('end', () => {
        sequence += 1;
        writeFileSync(join(dir, `${String(sequence).padStart(4, '0')}.eml`), Buffer.concat(chunks));
        done();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    port,
    dir,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The config with every local-relay ISP pointed at the sink's port. */
export function withMailSink(config: RelaisConfig, port: number): RelaisConfig {
  const local = new Set(localMailIsps(config).map((isp) => isp.id));
  const isps = new Map(
    [...config.isps].map(([id, isp]): [string, IspConfig] => {
      const email = isp.delivery.email;
      if (!local.has(id) || !email) return [id, isp];
      const smtp = { ...email.smtp, port, secure: false, requireTls: false };
      return [id, { ...isp, delivery: { ...isp.delivery, email: { ...email, smtp } } }];
    }),
  );
  return { ...config, isps };
}

export interface MailedKey {
  key: string;
  link: string;
}

const KEY = /\b[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}-[0-9A-Z*~$=]{5}(?![0-9A-Z*~$=-])/;
const LINK = /https?:\/\/\S+\/v1\/downloads\/\S+/;

/** The key and link of the newest message to `address`, as the customer reads them. */
export async function mailedKey(dir: string, address: string): Promise<MailedKey | undefined> {
  const names = readdirSync(dir)
    .filter((n) => n.endsWith('.eml'))
    .sort()
    .reverse();
  for (const name of names) {
    const mail = await simpleParser(readFileSync(join(dir, name)));
    const to = [mail.to ?? []].flat().flatMap((a) => a.value.map((v) => v.address));
    if (!to.includes(address)) continue;
    const key = KEY.exec(mail.text ?? '')?.[0];
    const link = LINK.exec(mail.text ?? '')?.[0];
    if (key && link) return { key, link };
  }
  return undefined;
}

const ADDRESS = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;

/**
 * The e-mail address the ISP's sample exports give for `ref`: the customer, reading their own
 * mailbox, knows it. Any line naming the ref and an address will do, in any of the formats.
 */
export function addressInSample(
  samplesDir: string,
  ispId: string,
  ref: string,
): string | undefined {
  const dir = join(samplesDir, ispId);
  for (const name of readdirSync(dir).sort()) {
    for (const line of readFileSync(join(dir, name), 'latin1').split('\n')) {
      if (!line.includes(ref)) continue;
      const address = ADDRESS.exec(line)?.[0];
      if (address) return address;
    }
  }
  return undefined;
}
