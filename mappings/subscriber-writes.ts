/**
 * Writes of the subscriber map: subscriber changes and the provisioning-outbox rows that
 * announce them, rendered into SQL as the changes come and run in one transaction, so that a
 * change and its commands always commit together.
 *
 * The statements are built by hand rather than through the query builder: at a million rows
 * its per-value compiling and escaping cost more than the database's own work. Every value is
 * escaped (by mysql2, or by `sqlText` for long JSON texts), checked to need no escaping (our
 * ids, plain refs), a number, a date or sealed bytes (a hex literal). Rendering each change as
 * it arrives keeps only a short string per change in memory.
 *
 * For an ISP whose keys go out by e-mail, a subscribe also upserts the subscriber's `contacts`
 * row (address sealed by the caller's `sealEmail`, language), in the same statements as the
 * subscribe: a crash never keeps one without the other. For other ISPs no address is written.
 */
import type { Knex } from 'knex';
import mysql from 'mysql2';
import { InternalError } from '../platform/errors.js';
import { sqlText } from '../platform/sql-literal.js';
import {
  CommandBatchEncoder,
  type CommandKind,
  type ProvisioningCommand,
} from './provisioning-command.js';
import type { SubscriberChange, SubscriberContact } from './subscriber-store.js';

/**
 * Seals a subscriber's e-mail address for the `contacts` table (the connector vault, bound to
 * the subscriber id). Passed in because `mappings/` does not reach the vault in `connectors/`.
 */
export type SealEmail = (subscriberId: string, address: string) => Buffer;

/** Literals of recent dates: effective dates repeat (most are midnights) across a feed. */
const dateLiterals = new Map<number, string>();

/** A UTC DATETIME(3) literal, as the connection's `timezone: 'Z'` would write it. */
function sqlDateTime(date: Date): string {
  const ms = date.getTime();
  let literal = dateLiterals.get(ms);
  if (literal === undefined) {
    const iso = date.toISOString();
    literal = `'${iso.slice(0, 10)} ${iso.slice(11, 23)}'`;
    if (dateLiterals.size >= 10_000) dateLiterals.clear();
    dateLiterals.set(ms, literal);
  }
  return literal;
}

/**
 * Escapes values that repeat across rows (statuses, offers, module lists) once per distinct
 * value: a first load of a million customers repeats a handful of them a million times.
 */
const escapedValues = new Map<string, string>();

function repeated(value: string | null): string {
  if (value === null) return 'NULL';
  let sql = escapedValues.get(value);
  if (sql === undefined) {
    sql = mysql.escape(value);
    if (escapedValues.size < 10_000) escapedValues.set(value, sql);
  }
  return sql;
}

/** Strings that need no escaping in a quoted literal: the usual customer refs. */
const PLAIN = /^[\w.:@+-]*$/;

function quote(value: string): string {
  return PLAIN.test(value) ? `'${value}'` : mysql.escape(value);
}

const ID_SHAPE = /^[a-z]+_[0-9a-z]{26}$/;

/** A subscriber id as a literal: ids are ours (`newId`), so their shape needs no escaping. */
function idLiteral(id: string): string {
  if (!ID_SHAPE.test(id)) throw new InternalError('INTERNAL', 'a subscriber id is not one of ours');
  return `'${id}'`;
}

/** The database's clock, in UTC (the session time zone is UTC), for the commit's own time. */
const NOW_SQL = 'UTC_TIMESTAMP(3)';

const UPSERT_HEAD =
  'INSERT INTO subscribers (isp_id, customer_ref, subscriber_id, status, offer, modules, effective_at, version, last_feed_id, created_at, updated_at) VALUES ';
/** `created_at` and `subscriber_id` of a known subscriber are never touched. */
const UPSERT_TAIL =
  ' ON DUPLICATE KEY UPDATE status = VALUES(status), offer = VALUES(offer), modules = VALUES(modules), effective_at = VALUES(effective_at), version = VALUES(version), last_feed_id = VALUES(last_feed_id), updated_at = VALUES(updated_at)';
/** A re-subscribe replaces the address and language of the earlier subscribe. */
const CONTACTS_HEAD =
  'INSERT INTO contacts (subscriber_id, isp_id, email, language, created_at) VALUES ';
const CONTACTS_TAIL =
  ' ON DUPLICATE KEY UPDATE email = VALUES(email), language = VALUES(language), created_at = VALUES(created_at)';
const LANGUAGE_SHAPE = /^[a-z]{2}$/;
const OUTBOX_HEAD =
  'INSERT INTO provisioning_batches (isp_id, feed_id, command_count, subscribes, changes, suspends, resumes, cancels, commands, state, created_at) VALUES ';

const KIND_COLUMNS = {
  subscribe: 'subscribes',
  change: 'changes',
  suspend: 'suspends',
  resume: 'resumes',
  cancel: 'cancels',
} as const;
type KindColumn = (typeof KIND_COLUMNS)[CommandKind];

/**
 * Some changes made ready to write in one transaction: the statements that upsert the
 * subscribers and add their provisioning-outbox rows.
 */
export interface PreparedWrite {
  statements: string[];
  changes: number;
  batches: number;
}

/** One outbox row being filled: its commands, encoded as they come, and their counts. */
class OutboxRow {
  readonly encoder = new CommandBatchEncoder();
  readonly counts: Record<KindColumn, number> = {
    subscribes: 0,
    changes: 0,
    suspends: 0,
    resumes: 0,
    cancels: 0,
  };

  add(command: ProvisioningCommand): void {
    this.encoder.add(command);
    this.counts[KIND_COLUMNS[command.kind]]++;
  }

  sql(isp: string, feed: string): string {
    const k = this.counts;
    return (
      `(${isp},${feed},${this.encoder.size},` +
      `${k.subscribes},${k.changes},${k.suspends},${k.resumes},${k.cancels},` +
      `${sqlText(this.encoder.finish())},'pending',${NOW_SQL})`
    );
  }
}

/**
 * Renders changes into one transaction's statements, a change at a time. The commands of
 * every `changesPerBatch` changes become one outbox row (one future job), so a subscriber's
 * commands always travel in one batch.
 */
export class WriteBuilder {
  private readonly isp: string;
  private readonly feed: string;
  private readonly rows: string[] = [];
  private readonly outboxRows: string[] = [];
  private readonly contactRows: string[] = [];
  private outbox = new OutboxRow();
  private inBatch = 0;

  constructor(
    ispId: string,
    feedId: string,
    private readonly changesPerBatch: number,
    /** Given only for an ISP that delivers keys by e-mail: the contacts are written then. */
    private readonly sealEmail?: SealEmail,
  ) {
    this.isp = mysql.escape(ispId);
    this.feed = mysql.escape(feedId);
  }

  get changes(): number {
    return this.rows.length;
  }

  add(c: SubscriberChange): void {
    const effective = c.effectiveAt === null ? 'NULL' : sqlDateTime(c.effectiveAt);
    this.rows.push(
      `(${this.isp},${quote(c.customerRef)},${idLiteral(c.subscriberId)},` +
        `${repeated(c.status)},${repeated(c.offer)},${repeated(c.modules.join(','))},` +
        `${effective},${Number(c.version)},${this.feed},${NOW_SQL},${NOW_SQL})`,
    );
    for (const command of c.commands) this.outbox.add(command);
    if (this.sealEmail && c.contact) this.addContact(c.subscriberId, c.contact, this.sealEmail);
    if (++this.inBatch === this.changesPerBatch) this.closeBatch();
  }

  build(): PreparedWrite {
    this.closeBatch();
    if (this.rows.length === 0) return { statements: [], changes: 0, batches: 0 };
    const statements = [UPSERT_HEAD + this.rows.join(',') + UPSERT_TAIL];
    if (this.outboxRows.length > 0) statements.push(OUTBOX_HEAD + this.outboxRows.join(','));
    if (this.contactRows.length > 0) {
      statements.push(CONTACTS_HEAD + this.contactRows.join(',') + CONTACTS_TAIL);
    }
    return { statements, changes: this.rows.length, batches: this.outboxRows.length };
  }

  private addContact(subscriberId: string, contact: SubscriberContact, seal: SealEmail): void {
    const email =
      contact.email === null ? 'NULL' : `X'${seal(subscriberId, contact.email).toString('hex')}'`;
    // The mapper admits two lowercase letters only; checked again since it is written as is.
    const { language } = contact;
    if (language !== null && !LANGUAGE_SHAPE.test(language))
      throw new InternalError('INTERNAL', 'a contact language is not a language code');
    const lang = language === null ? 'NULL' : `'${language}'`;
    this.contactRows.push(`(${idLiteral(subscriberId)},${this.isp},${email},${lang},${NOW_SQL})`);
  }

  private closeBatch(): void {
    if (this.outbox.encoder.size > 0) this.outboxRows.push(this.outbox.sql(this.isp, this.feed));
    this.outbox = new OutboxRow();
    this.inBatch = 0;
  }
}

/** Renders some changes at once (see {@link WriteBuilder}). */
export function prepareChanges(
  ispId: string,
  feedId: string,
  changes: readonly SubscriberChange[],
  changesPerBatch = Math.max(1, changes.length),
  sealEmail?: SealEmail,
): PreparedWrite {
  const builder = new WriteBuilder(ispId, feedId, changesPerBatch, sealEmail);
  for (const change of changes) builder.add(change);
  return builder.build();
}

/** Runs a prepared write in the caller's transaction. */
export async function applyPrepared(trx: Knex.Transaction, prepared: PreparedWrite): Promise<void> {
  for (const statement of prepared.statements) await trx.raw(statement);
}
