/**
 * Hands activation keys to customers by e-mail, through the ISP's own SMTP relay. The address
 * is the one personal value this needs; it sits sealed in `contacts` and is deleted in the same
 * transaction that records the relay's acceptance, so it lives exactly as long as it is needed.
 *
 * What an SMTP reply means for a delivery:
 * - accepted: the row is delivered, its sealed key and link erased, the address deleted;
 * - 5xx to RCPT TO (this recipient refused for good): that row fails, the others go on;
 * - anything else (relay unreachable, timeout, 4xx, a 5xx to the sender or the data): the relay
 *   is at fault, not the customer, so the rest of the batch stays pending and is retried.
 *
 * @remarks One window is at least once: the relay accepted a message and the process died
 * before the commit. The retry sends that message again. SMTP has no idempotent submit; a
 * duplicate e-mail is the lesser harm next to a lost key.
 */
import nodemailer from 'nodemailer';
import type { IspConfig } from '../../config/load.js';
import type { Db } from '../../platform/db.js';
import { ConfigError, InternalError, TransientError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Vault } from '../vault.js';
import type { TemplateSet } from './templates.js';

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export type SendOutcome = { status: 'accepted' } | { status: 'refused'; reason: string };

/** One pooled SMTP transport for one ISP. */
export interface Mailer {
  /**
   * @returns refused when the relay rejected this recipient for good.
   * @throws TransientError DELIVERY_FAILED when the relay did not take the message for now.
   */
  send(email: OutgoingEmail): Promise<SendOutcome>;
  close(): void;
}

/** Connections kept open per ISP relay: enough to pipeline a batch, few enough to be polite. */
const POOL_CONNECTIONS = 2;

export function createMailer(isp: IspConfig, log: Logger): Mailer {
  const settings = isp.delivery.email;
  if (!settings) {
    throw new ConfigError('CONFIG_INVALID', `ISP ${isp.id} has no delivery.email section`);
  }
  const { smtp } = settings;
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: POOL_CONNECTIONS,
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    requireTLS: smtp.requireTls,
    connectionTimeout: smtp.timeoutMs,
    greetingTimeout: smtp.timeoutMs,
    socketTimeout: smtp.timeoutMs,
    ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.password ?? '' } } : {}),
  });
  transport.on('error', (err) => {
    log.warn({ isp: isp.id, smtp: smtpFacts(err) }, 'smtp pool error');
  });
  return {
    async send(email) {
      try {
        await transport.sendMail({
          from: settings.from,
          to: email.to,
          subject: email.subject,
          text: email.text,
          html: email.html,
          // Keeps out-of-office robots from answering a message nobody reads.
          headers: { 'Auto-Submitted': 'auto-generated' },
        });
        return { status: 'accepted' };
      } catch (err) {
        const facts = smtpFacts(err);
        if (facts.command === 'RCPT TO' && facts.permanent) {
          return { status: 'refused', reason: `relay refused the recipient (${facts.reply})` };
        }
        throw new TransientError(
          'DELIVERY_FAILED',
          `smtp relay of ISP ${isp.id} did not take the message (${facts.reply})`,
          { ispId: isp.id, smtp: facts },
        );
      }
    },
    close() {
      transport.close();
    },
  };
}

export interface SmtpFacts {
  /** `550 5.1.1`, `ECONNREFUSED`: what went wrong, with no text from the server. */
  reply: string;
  command: string | undefined;
  permanent: boolean;
}

/**
 * The parts of a nodemailer error that are safe to keep. Its message and the server's reply
 * text may quote the recipient's address, so neither is ever stored or logged.
 */
export function smtpFacts(err: unknown): SmtpFacts {
  const e = (err ?? {}) as {
    code?: string;
    originalCode?: string;
    command?: string;
    responseCode?: number;
    response?: string;
    permanent?: boolean;
  };
  let reply = e.originalCode ?? e.code ?? 'unknown error';
  if (typeof e.responseCode === 'number') {
    const enhanced = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(e.response ?? '')?.[1];
    reply = enhanced ? `${e.responseCode} ${enhanced}` : String(e.responseCode);
  }
  const permanent =
    e.permanent ??
    (typeof e.responseCode === 'number' && e.responseCode >= 500 && e.responseCode !== 503);
  return { reply, command: e.command, permanent };
}

export const NO_ADDRESS = 'no e-mail address in the feed';
const UNREADABLE = 'sealed key, link or address does not open';

export interface EmailDeliveryDeps {
  db: Db;
  vault: Vault;
  log: Logger;
  mailer: Mailer;
  templates: TemplateSet;
  now?: () => Date;
}

export interface DeliveredKey {
  subscriberId: string;
  licenceId: string;
  channel: 'email' | 'return-file';
  deliveredAt: Date;
}

export interface EmailBatchResult {
  delivered: DeliveredKey[];
  failed: number;
  /** Rows left pending because the relay did not take them; the caller retries the batch. */
  deferred: number;
  /** Why the relay did not take them; set when `deferred` > 0. */
  deferredBy?: TransientError;
}

interface PendingRow {
  id: string | number;
  subscriber_id: string;
  licence_id: string;
  secret: Buffer | null;
  link_expires_at: Date | null;
}

/**
 * Sends the pending e-mail deliveries of one batch, one message at a time so a relay that goes
 * down mid-batch stops the run at once. Never throws for a relay failure: the rows sent before
 * it are committed and returned, and `deferredBy` tells the caller to retry the rest.
 */
export async function deliverBatchByEmail(
  deps: EmailDeliveryDeps,
  isp: IspConfig,
  batchId: number,
): Promise<EmailBatchResult> {
  const now = deps.now ?? (() => new Date());
  const rows: PendingRow[] = await deps
    .db('deliveries')
    .select('id', 'subscriber_id', 'licence_id', 'secret', 'link_expires_at')
    .where({ isp_id: isp.id, batch_id: batchId, state: 'pending', channel: 'email' })
    .orderBy('id');
  const result: EmailBatchResult = { delivered: [], failed: 0, deferred: 0 };

  for (const [index, row] of rows.entries()) {
    const prepared = await prepare(deps, isp, row);
    if (typeof prepared === 'string') {
      await failRow(deps.db, row, prepared);
      result.failed++;
      continue;
    }
    let outcome: SendOutcome;
    try {
      outcome = await deps.mailer.send(prepared);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      const left = rows.slice(index).map((r) => r.id);
      await deferRows(deps.db, left, err.message);
      return { ...result, deferred: left.length, deferredBy: err };
    }
    if (outcome.status === 'refused') {
      await failRow(deps.db, row, outcome.reason);
      result.failed++;
      continue;
    }
    const deliveredAt = now();
    await markDelivered(deps.db, row, deliveredAt);
    result.delivered.push({
      subscriberId: row.subscriber_id,
      licenceId: row.licence_id,
      channel: 'email',
      deliveredAt,
    });
  }
  return result;
}

/** The message for one row, or why there cannot be one (a permanent failure of that row). */
async function prepare(
  deps: EmailDeliveryDeps,
  isp: IspConfig,
  row: PendingRow,
): Promise<OutgoingEmail | string> {
  const contact: { email: Buffer | null; language: string | null } | undefined = await deps
    .db('contacts')
    .select('email', 'language')
    .where({ subscriber_id: row.subscriber_id, isp_id: isp.id })
    .first();
  if (!contact?.email) return NO_ADDRESS;
  if (!row.secret) return UNREADABLE;
  let to: string;
  let secret: { key: string; downloadUrl: string };
  try {
    to = deps.vault.open(contact.email, `email:${row.subscriber_id}`);
    secret = JSON.parse(deps.vault.open(row.secret, `delivery:${row.licence_id}`));
  } catch (err) {
    if (!(err instanceof InternalError) && !(err instanceof SyntaxError)) throw err;
    deps.log.error({ err, licenceId: row.licence_id }, 'delivery secret does not open');
    return UNREADABLE;
  }
  const message = deps.templates.render(contact.language, {
    key: secret.key,
    downloadUrl: secret.downloadUrl,
    expiresAt: row.link_expires_at,
    ispName: isp.name,
  });
  return { to, subject: message.subject, text: message.text, html: message.html };
}

async function markDelivered(db: Db, row: PendingRow, deliveredAt: Date): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('deliveries')
      .where({ id: row.id, state: 'pending' })
      .update({
        state: 'delivered',
        delivered_at: deliveredAt,
        secret: null,
        last_error: null,
        attempts: trx.raw('attempts + 1'),
      });
    await trx('contacts').where({ subscriber_id: row.subscriber_id }).delete();
  });
}

/**
 * A permanent failure keeps the sealed key and link (the server cannot show the key again) but
 * deletes the address: it will not be tried again, so there is no reason to hold it.
 */
async function failRow(db: Db, row: PendingRow, reason: string): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('deliveries')
      .where({ id: row.id, state: 'pending' })
      .update({ state: 'failed', last_error: reason, attempts: trx.raw('attempts + 1') });
    await trx('contacts').where({ subscriber_id: row.subscriber_id }).delete();
  });
}

async function deferRows(db: Db, ids: (string | number)[], reason: string): Promise<void> {
  await db('deliveries')
    .whereIn('id', ids)
    .where({ state: 'pending' })
    .update({ last_error: reason.slice(0, 255), attempts: db.raw('attempts + 1') });
}
