/**
 * A real SMTP relay in the test process (the `smtp-server` package) on 127.0.0.1, keeping what
 * it accepts parsed by `mailparser`. Recipients can be refused for good (550) or for now (451)
 * to play a relay that knows its mailboxes; `stop()` and `start()` play a relay going down.
 * With `quoteRecipient`, refusals quote the address and carry an enhanced status code, as
 * Postfix's do (`550 5.1.1 <a@b>: Recipient address rejected: ...`), for tests that prove
 * such a reply never gets stored or logged.
 */
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  to: string[];
  from: string;
  parsed: ParsedMail;
}

export interface TestRelay {
  readonly port: number;
  readonly received: ReceivedMail[];
  /** Addresses answered 550 at RCPT TO. */
  readonly refused: Set<string>;
  /** Addresses answered 451 at RCPT TO. */
  readonly deferred: Set<string>;
  /** Starts listening (again) on the same port. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

function replyError(message: string, responseCode: number): Error {
  return Object.assign(new Error(message), { responseCode });
}

/** A relay on `port` (0: the OS picks one); started unless `listen` is false. */
export async function createTestRelay(
  options: { port?: number; listen?: boolean; quoteRecipient?: boolean } = {},
): Promise<TestRelay> {
  const received: ReceivedMail[] = [];
  const refused = new Set<string>();
  const deferred = new Set<string>();
  let port = options.port ?? 0;
  let server: SMTPServer | undefined;

  const build = () =>
    new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onRcptTo(address, _session, callback) {
        const to = address.address;
        const quoted = (enhanced: string, text: string) =>
          options.quoteRecipient
            ? `${enhanced} <${to}>: Recipient address rejected: ${text}`
            : text;
        if (refused.has(to)) {
          return callback(replyError(quoted('5.1.1', 'no such mailbox'), 550));
        }
        if (deferred.has(to)) {
          return callback(replyError(quoted('4.7.1', 'try again later'), 451));
        }
        callback();
      },
      onData(stream, session, callback) {
        simpleParser(stream)
          .then((parsed) => {
            received.push({
              to: session.envelope.rcptTo.map((r) => r.address),
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              parsed,
            });
            callback();
          })
          .catch(callback);
      },
    });

  const relay: TestRelay = {
    get port() {
      return port;
    },
    received,
    refused,
    deferred,
    start() {
      server = build();
      const s = server;
      return new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => {
          const address = s.server.address();
          if (typeof address === 'object' && address) port = address.port;
          resolve();
        });
      });
    },
    stop() {
      const s = server;
      server = undefined;
      return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
    },
  };
  if (options.listen ?? true) await relay.start();
  return relay;
}
