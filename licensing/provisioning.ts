/**
 * The server side of provisioning: applies one batch of an ISP's commands (subscribe, change,
 * suspend, resume, cancel) and answers one result per command. It is what makes the connector's
 * retries harmless:
 *
 * - the whole batch runs in one transaction, so a failure leaves nothing of it behind (503,
 *   retryable), never half a batch;
 * - each command's idempotency key is remembered with a hash of its body and the answer sent
 *   (without the activation key), so a resend gets the first answer and a reused key with
 *   another body is a conflict;
 * - a subscriber's commands apply in version order: one that arrives early is deferred and
 *   stored nowhere, so its resend applies it.
 *
 * Cost is a handful of statements per batch whatever its size (one locked read of the
 * subscriptions, one of the remembered keys, one of the licences, then multi-row writes). A
 * 1000-subscribe batch takes about 100 ms on a quiet machine, about half of it Node CPU (keys,
 * hashes, statement text), so the 10,000 subscribers/s target rests on batches applied side by
 * side over several connections, not on one batch being fast.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { Counter, Histogram } from 'prom-client';
import type { z } from 'zod';
import type { IspConfig } from '../config/load.js';
import { retryLockConflicts } from '../platform/db.js';
import { isRelaisError, RequestError, TransientError } from '../platform/errors.js';
import type { Metrics } from '../platform/metrics.js';
import { type LicensingDeps, servedIsp } from './context.js';
import { createDownloadToken, downloadUrl } from './download-token.js';
import { appendEvents, type LedgerEvent } from './ledger.js';
import {
  currentValidity,
  deviceLimitFor,
  freshKey,
  issueDownloadLink,
  type LicenceRow,
  newLicence,
} from './licences.js';
import { periodBounds, periodOf } from './periods.js';
import {
  eventsSql,
  inList,
  insertSql,
  LICENCE_COLUMNS,
  LICENCE_MERGE,
  licenceValues,
  literal,
  type ProvisioningEvent,
  SUBSCRIPTION_COLUMNS,
  type SubscriptionRow,
  subscriptionValues,
  upsertSql,
} from './provisioning-sql.js';
import {
  type BatchResponse,
  batchRequestSchema,
  type CommandResult,
  type DeliveryReport,
  deliveryReportSchema,
  type WireCommand,
} from './provisioning-wire.js';

/**
 * Test hooks, inert in production. `beforeCommit` runs inside the batch's transaction after
 * every write and before COMMIT: the fault test kills that very MariaDB connection there.
 */
export interface ProvisioningFaults {
  beforeCommit?(trx: Knex.Transaction): Promise<void>;
}

/** `subscriptions.modules` is VARCHAR(512). */
const MAX_MODULES_TEXT = 512;
/** Problems listed in one PROVISIONING_INVALID message; the rest are counted. */
const MAX_LISTED_PROBLEMS = 50;
/** Whole-batch attempts when a concurrent batch races on the same rows (duplicate, deadlock). */
const RACE_ATTEMPTS = 3;

interface RequestRow {
  isp_id: string;
  idempotency_key: string;
  body_hash: Buffer;
  result: string;
  created_at: Date;
}

/**
 * The answer kept in `provisioning_requests.result`. The download link is kept as its parts
 * (the token is a deterministic MAC of them) rather than its URL, which was most of the bytes
 * a batch wrote; a replay rebuilds the same URL.
 */
interface StoredResult {
  outcome: 'applied' | 'rejected';
  code?: string;
  message?: string;
  licence?: {
    licenceId: string;
    generation: number;
    downloadExpiresAt: string;
    validUntil: string;
  };
}

// ---------------------------------------------------------------------------------------------
// Validation

/** `commands[3].email`: a zod path as the connector's developer would write it. */
function pathText(path: readonly PropertyKey[]): string {
  let text = '';
  for (const part of path) {
    if (typeof part === 'number') text += `[${part}]`;
    else text += text === '' ? String(part) : `.${String(part)}`;
  }
  return text === '' ? 'body' : text;
}

/** A key name as sent, unless it could be data itself (an address used as a key). */
function keyName(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]{0,39}$/.test(key) ? key : '<unnamed key>';
}

function issueLines(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        lines.push(`${pathText([...issue.path, keyName(key)])}: unrecognized key`);
      }
    } else {
      lines.push(`${pathText(issue.path)}: ${issue.message}`);
    }
  }
  return lines;
}

function invalid(problems: readonly string[]): RequestError {
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS);
  const more = problems.length - listed.length;
  const tail = more > 0 ? `; and ${more} more problem${more === 1 ? '' : 's'}` : '';
  return new RequestError(
    'PROVISIONING_INVALID',
    `batch refused, nothing applied: ${listed.join('; ')}${tail}`,
  );
}

/** Sorted, without repeats: the form stored and hashed, so module order never matters. */
function moduleList(modules: readonly string[]): string[] {
  return [...new Set(modules)].sort();
}

/** The schema, then what a schema cannot say: unique keys, keys matching id and version. */
export function parseBatch(body: unknown): WireCommand[] {
  const parsed = batchRequestSchema.safeParse(body);
  if (!parsed.success) throw invalid(issueLines(parsed.error.issues));
  const problems: string[] = [];
  const seen = new Map<string, number>();
  parsed.data.commands.forEach((command, i) => {
    const first = seen.get(command.key);
    if (first !== undefined) problems.push(`commands[${i}].key: repeats commands[${first}].key`);
    else seen.set(command.key, i);
    if (command.key !== `${command.subscriberId}:v${command.version}`) {
      problems.push(`commands[${i}].key: must be <subscriberId>:v<version> of this command`);
    }
    if (moduleList(command.modules).join(',').length > MAX_MODULES_TEXT) {
      problems.push(`commands[${i}].modules: longer than ${MAX_MODULES_TEXT} characters joined`);
    }
  });
  if (problems.length > 0) throw invalid(problems);
  return parsed.data.commands;
}

/** SHA-256 of a fixed field order, so a resend of the same command hashes the same. */
function bodyHash(c: WireCommand): Buffer {
  const canonical = JSON.stringify([
    c.key,
    c.kind,
    c.subscriberId,
    c.version,
    moduleList(c.modules),
    c.status,
    c.effectiveAt,
    c.offer ?? null,
  ]);
  return createHash('sha256').update(canonical).digest();
}

// ---------------------------------------------------------------------------------------------
// Metrics

export interface ProvisioningMetrics {
  commands: Counter<'isp' | 'kind' | 'outcome'>;
  batchSeconds: Histogram<'isp'>;
}

const metricsByRegistry = new WeakMap<Metrics, ProvisioningMetrics>();

/** The subscription server's provisioning metrics of a registry, registered once. */
export function provisioningMetrics(registry: Metrics): ProvisioningMetrics {
  let found = metricsByRegistry.get(registry);
  if (!found) {
    found = {
      commands: new Counter({
        name: 'relais_provisioning_commands_total',
        help: 'Provisioning commands answered by the subscription server, by ISP, kind and outcome.',
        labelNames: ['isp', 'kind', 'outcome'],
        registers: [registry],
      }),
      batchSeconds: new Histogram({
        name: 'relais_provisioning_batch_apply_seconds',
        help: 'Time to apply one provisioning batch, transaction included.',
        labelNames: ['isp'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [registry],
      }),
    };
    metricsByRegistry.set(registry, found);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Applying

/** What one batch will write, gathered in memory and written in a few statements. */
class BatchWrites {
  readonly newSubscriptions: SubscriptionRow[] = [];
  readonly newSubscriptionSet = new Set<SubscriptionRow>();
  readonly changedSubscriptions = new Map<string, SubscriptionRow>();
  readonly newLicences: LicenceRow[] = [];
  readonly newLicenceSet = new Set<LicenceRow>();
  readonly changedLicences = new Map<string, LicenceRow>();
  readonly requests: RequestRow[] = [];
  readonly events: ProvisioningEvent[] = [];
  /** The event each command wrote under its own key, which carries its replay record. */
  readonly eventByKey = new Map<string, ProvisioningEvent>();
}

/** One subscriber's state while its commands of the batch apply, in version order. */
interface SubscriberState {
  /** The subscription of the calling ISP; null when none (another ISP's counts as none). */
  subscription: SubscriptionRow | null;
  /** Its subscription belongs to another ISP: a subscribe cannot take the id. */
  foreign: boolean;
  licence: LicenceRow | null;
}

class BatchApplier {
  readonly writes = new BatchWrites();
  private readonly isp: IspConfig;

  constructor(
    private readonly deps: LicensingDeps,
    private readonly ispId: string,
    private readonly now: Date,
  ) {
    this.isp = servedIsp(deps, ispId);
  }

  /**
   * Keeps the command's replay record: on the event it wrote under its own key when there is
   * one (every applied command but a subscribe that changes nothing), else in its own
   * `provisioning_requests` row. Either way it commits or rolls back with the command.
   */
  private remember(c: WireCommand, hash: Buffer, result: StoredResult): void {
    const event = this.writes.eventByKey.get(c.key);
    if (event) {
      event.commandHash = hash;
      event.commandReply = JSON.stringify(result);
      return;
    }
    this.writes.requests.push({
      isp_id: this.ispId,
      idempotency_key: c.key,
      body_hash: hash,
      result: JSON.stringify(result),
      created_at: this.now,
    });
  }

  private reject(c: WireCommand, hash: Buffer, code: string, message: string): CommandResult {
    this.remember(c, hash, { outcome: 'rejected', code, message });
    return { key: c.key, outcome: 'rejected', code, message };
  }

  private event(
    c: WireCommand,
    type: LedgerEvent['type'],
    licenceId: string | null,
    data: Record<string, unknown>,
    keySuffix = '',
  ): void {
    const event: ProvisioningEvent = {
      ispId: this.ispId,
      subscriberId: c.subscriberId,
      licenceId,
      type,
      data: { ...data, version: c.version },
      idempotencyKey: `${c.key}${keySuffix}`,
      occurredAt: new Date(c.effectiveAt),
    };
    this.writes.events.push(event);
    if (keySuffix === '') this.writes.eventByKey.set(c.key, event);
  }

  private touchSubscription(state: SubscriberState, c: WireCommand, modules: string): void {
    const sub = state.subscription as SubscriptionRow;
    sub.status = c.status;
    sub.modules = modules;
    sub.version = c.version;
    sub.updated_at = this.now;
    if (!this.writes.newSubscriptionSet.has(sub)) {
      this.writes.changedSubscriptions.set(sub.subscriber_id, sub);
    }
  }

  private addNew(sub: SubscriptionRow | null, licence: LicenceRow): void {
    if (sub) {
      this.writes.newSubscriptions.push(sub);
      this.writes.newSubscriptionSet.add(sub);
    }
    this.writes.newLicences.push(licence);
    this.writes.newLicenceSet.add(licence);
  }

  private touchLicence(licence: LicenceRow): void {
    licence.updated_at = this.now;
    if (!this.writes.newLicenceSet.has(licence))
      this.writes.changedLicences.set(licence.id, licence);
  }

  /** The licence's answer: stored without the key, sent with it when there is one. */
  private applied(c: WireCommand, hash: Buffer, licence?: LicenceRow, key?: string): CommandResult {
    if (licence === undefined) {
      this.remember(c, hash, { outcome: 'applied' });
      return { key: c.key, outcome: 'applied' };
    }
    const link = issueDownloadLink(this.deps, {
      licenceId: licence.id,
      generation: licence.link_generation,
      ispId: this.ispId,
    });
    const validUntil = (licence.valid_until ?? this.now).toISOString();
    this.remember(c, hash, {
      outcome: 'applied',
      licence: {
        licenceId: licence.id,
        generation: licence.link_generation,
        downloadExpiresAt: link.downloadExpiresAt,
        validUntil,
      },
    });
    return {
      key: c.key,
      outcome: 'applied',
      licence: {
        licenceId: licence.id,
        ...(key === undefined ? {} : { key }),
        downloadUrl: link.downloadUrl,
        downloadExpiresAt: link.downloadExpiresAt,
        validUntil,
      },
    };
  }

  /** The first answer again, without the key (shown once), its link rebuilt. */
  private replayed(c: WireCommand, first: StoredResult): CommandResult {
    if (first.outcome === 'rejected') {
      return { key: c.key, outcome: 'rejected', code: first.code, message: first.message };
    }
    if (!first.licence) return { key: c.key, outcome: 'replayed' };
    const { licenceId, generation, downloadExpiresAt, validUntil } = first.licence;
    const token = createDownloadToken(this.deps.keystore.linkSecret, {
      licenceId,
      generation,
      expiresAt: Date.parse(downloadExpiresAt) / 1000,
    });
    return {
      key: c.key,
      outcome: 'replayed',
      licence: {
        licenceId,
        downloadUrl: downloadUrl(this.deps.config.deployment.server.url, token),
        downloadExpiresAt,
        validUntil,
      },
    };
  }

  /** One command, given its subscriber's state so far and whatever the ISP sent before. */
  apply(
    c: WireCommand,
    state: SubscriberState,
    prior: { body_hash: Buffer; result: string } | undefined,
  ): CommandResult {
    const hash = bodyHash(c);
    if (prior) {
      if (!prior.body_hash.equals(hash)) {
        return {
          key: c.key,
          outcome: 'rejected',
          code: 'PROVISIONING_KEY_CONFLICT',
          message: `key ${c.key} was first sent with another command body`,
        };
      }
      return this.replayed(c, JSON.parse(prior.result) as StoredResult);
    }
    const sub = state.subscription;
    if (sub?.erased_at) {
      return this.reject(c, hash, 'SUBSCRIBER_ERASED', `subscriber ${c.subscriberId} was erased`);
    }
    const notFound = () =>
      this.reject(c, hash, 'SUBSCRIBER_NOT_FOUND', `no subscriber ${c.subscriberId} for this ISP`);
    const deferred = (): CommandResult => ({
      key: c.key,
      outcome: 'deferred',
      code: 'PROVISIONING_OUT_OF_ORDER',
      message: `an earlier version of ${c.subscriberId} has not been applied yet`,
    });
    if (!sub) {
      if (c.kind === 'subscribe') return state.foreign ? notFound() : this.create(c, hash, state);
      return c.version === 1 ? notFound() : deferred();
    }
    if (c.version > sub.version + 1) return deferred();
    if (c.version <= sub.version) {
      return this.reject(
        c,
        hash,
        'PROVISIONING_STALE_VERSION',
        `version ${c.version} of ${c.subscriberId} is not newer than the applied one`,
      );
    }
    if (c.kind === 'subscribe' && sub.status === 'cancelled')
      return this.reactivate(c, hash, state);
    return this.update(c, hash, state);
  }

  private create(c: WireCommand, hash: Buffer, state: SubscriberState): CommandResult {
    const modules = moduleList(c.modules);
    const sub: SubscriptionRow = {
      subscriber_id: c.subscriberId,
      isp_id: this.ispId,
      status: c.status,
      modules: modules.join(','),
      version: c.version,
      erased_at: null,
      created_at: this.now,
      updated_at: this.now,
    };
    const { row, key } = newLicence(this.deps, this.isp, c.subscriberId, c.offer, this.now);
    state.subscription = sub;
    state.licence = row;
    this.addNew(sub, row);
    this.event(c, 'provisioned', row.id, {
      modules,
      // Rating replays the ledger: a subscribe may leave the subscription suspended.
      status: c.status,
      offer: c.offer ?? null,
      deviceLimit: row.device_limit,
      period: row.period,
    });
    return this.applied(c, hash, row, key);
  }

  /**
   * A cancelled customer subscribes again (same subscriber id): the licence comes back valid
   * for the current period. A licence never activated gets a new key (the first mail is likely
   * lost) and a new link generation, both delivered anew. An activated one keeps its key, its
   * devices and its link generation: the answer carries no key, so the connector delivers
   * nothing, and a new generation would leave the customer with a dead link and no new one.
   */
  private reactivate(c: WireCommand, hash: Buffer, state: SubscriberState): CommandResult {
    const modules = moduleList(c.modules);
    this.touchSubscription(state, c, modules.join(','));
    let licence = state.licence;
    let key: string | undefined;
    if (!licence) {
      const made = newLicence(this.deps, this.isp, c.subscriberId, c.offer, this.now);
      licence = made.row;
      key = made.key;
      state.licence = licence;
      this.addNew(null, licence);
    } else {
      const { period, validUntil } = currentValidity(this.isp, this.now);
      licence.period = period;
      licence.valid_until = validUntil;
      licence.device_limit = deviceLimitFor(this.isp, c.offer);
      if (licence.activated_at === null) {
        const fresh = freshKey(this.deps);
        licence.key_hash = fresh.hash;
        licence.link_generation += 1;
        key = fresh.key;
      }
      this.touchLicence(licence);
    }
    this.event(c, 'provisioned', licence.id, {
      modules,
      status: c.status,
      offer: c.offer ?? null,
      deviceLimit: licence.device_limit,
      period: licence.period,
      reactivated: true,
      newKey: key !== undefined,
    });
    return this.applied(c, hash, licence, key);
  }

  /** change, suspend, resume, cancel, or a subscribe on a live subscription: state as sent. */
  private update(c: WireCommand, hash: Buffer, state: SubscriberState): CommandResult {
    const sub = state.subscription as SubscriptionRow;
    const before = {
      status: sub.status,
      modules: sub.modules === '' ? [] : sub.modules.split(','),
    };
    const modules = moduleList(c.modules);
    this.touchSubscription(state, c, modules.join(','));
    const licence = state.licence;
    const licenceId = licence?.id ?? null;
    if (licence) this.licenceFollows(licence, before.status, c);

    const added = modules.filter((m) => !before.modules.includes(m));
    const removed = before.modules.filter((m) => !modules.includes(m));
    const modulesChanged = added.length > 0 || removed.length > 0;
    const statusEvent = STATUS_EVENTS[c.status];
    if (c.kind === 'change') {
      this.event(c, 'modules-changed', licenceId, { added, removed, modules });
      if (c.status !== before.status) this.event(c, statusEvent, licenceId, {}, ':status');
    } else if (c.kind === 'subscribe') {
      if (modulesChanged) this.event(c, 'modules-changed', licenceId, { added, removed, modules });
      if (c.status !== before.status) this.event(c, statusEvent, licenceId, {}, ':status');
    } else {
      this.event(c, KIND_EVENTS[c.kind], licenceId, {});
      if (modulesChanged) {
        this.event(c, 'modules-changed', licenceId, { added, removed, modules }, ':modules');
      }
    }
    // A subscribe on a live subscription answers its licence (no new key: one was issued).
    return this.applied(c, hash, c.kind === 'subscribe' ? (licence ?? undefined) : undefined);
  }

  /**
   * The licence after a status change: a cancel lapses it at the end of the current period; a
   * return to active makes it valid for the current period at least (a suspension may have let
   * it expire, and renewal only runs at period close).
   */
  private licenceFollows(licence: LicenceRow, was: string, c: WireCommand): void {
    let touched = false;
    if (c.status === 'cancelled' && was !== 'cancelled') {
      licence.valid_until = this.cappedAtPeriodEnd(licence.valid_until);
      touched = true;
    }
    if (c.status === 'active' && was !== 'active') {
      const { period, validUntil } = currentValidity(this.isp, this.now);
      if (licence.valid_until === null || licence.valid_until < validUntil) {
        licence.valid_until = validUntil;
      }
      if (licence.period === null || licence.period < period) licence.period = period;
      touched = true;
    }
    if (c.offer !== undefined) {
      const limit = deviceLimitFor(this.isp, c.offer);
      if (limit !== licence.device_limit) {
        licence.device_limit = limit;
        touched = true;
      }
    }
    if (touched) this.touchLicence(licence);
  }

  private cappedAtPeriodEnd(validUntil: Date | null): Date {
    const end = periodBounds(periodOf(this.now, this.isp.timeZone), this.isp.timeZone).end;
    return validUntil !== null && validUntil < end ? validUntil : end;
  }
}

const KIND_EVENTS = {
  suspend: 'suspended',
  resume: 'resumed',
  cancel: 'cancelled',
} as const satisfies Record<string, LedgerEvent['type']>;

const STATUS_EVENTS = {
  active: 'resumed',
  suspended: 'suspended',
  cancelled: 'cancelled',
} as const satisfies Record<string, LedgerEvent['type']>;

async function applyInTransaction(
  deps: LicensingDeps,
  ispId: string,
  commands: readonly WireCommand[],
  faults: ProvisioningFaults | undefined,
): Promise<CommandResult[]> {
  const now = deps.now();
  const applier = new BatchApplier(deps, ispId, now);
  // READ COMMITTED: locked reads of absent ids take no gap locks, so concurrent batches of new
  // subscribers do not deadlock each other; a real race on one id ends in a duplicate key,
  // which the caller retries as a whole.
  return deps.db.transaction(
    async (trx) => {
      const subscriberIds = [...new Set(commands.map((c) => c.subscriberId))];
      // Ids and keys passed the wire patterns, so the IN lists hold nothing but those.
      const [subscriptions] = (await trx.raw(
        `SELECT * FROM subscriptions WHERE subscriber_id IN (${inList(subscriberIds)}) FOR UPDATE`,
      )) as [SubscriptionRow[]];
      const states = new Map<string, SubscriberState>();
      for (const id of subscriberIds)
        states.set(id, { subscription: null, foreign: false, licence: null });
      const own: string[] = [];
      for (const sub of subscriptions) {
        const state = states.get(sub.subscriber_id) as SubscriberState;
        if (sub.isp_id === ispId) {
          state.subscription = sub;
          own.push(sub.subscriber_id);
        } else {
          state.foreign = true;
        }
      }
      // A command's replay record is on the event written under its key, or in its own row
      // (see BatchApplier.remember): one query reads both places. Such an event is only ever
      // written with its subscription, and a key names its subscriber (parseBatch checks the
      // form <subscriberId>:v<version>), so the ledger is asked only about the keys of
      // subscribers this ISP already has: a first load's keys never probe it.
      const ownSet = new Set(own);
      const keys = inList(commands.map((c) => c.key));
      const ledgerKeys = commands.filter((c) => ownSet.has(c.subscriberId)).map((c) => c.key);
      const ledgerPart =
        ledgerKeys.length === 0
          ? ''
          : ` UNION ALL SELECT idempotency_key, command_hash, command_reply FROM subscription_events WHERE isp_id = ${literal(ispId)} AND idempotency_key IN (${inList(ledgerKeys)}) AND command_hash IS NOT NULL`;
      const [priorRows] = (await trx.raw(
        `SELECT idempotency_key, body_hash, result FROM provisioning_requests WHERE isp_id = ${literal(ispId)} AND idempotency_key IN (${keys})${ledgerPart}`,
      )) as [{ idempotency_key: string; body_hash: Buffer; result: string }[]];
      const priors = new Map(priorRows.map((row) => [row.idempotency_key, row]));
      if (own.length > 0) {
        const [licences] = (await trx.raw(
          `SELECT * FROM licences WHERE subscriber_id IN (${inList(own)}) AND isp_id = ${literal(ispId)} AND status = 'valid' ORDER BY created_at FOR UPDATE`,
        )) as [LicenceRow[]];
        // The newest valid licence is the subscription's (there is one in practice).
        for (const licence of licences) {
          (states.get(licence.subscriber_id) as SubscriberState).licence = licence;
        }
      }

      const results = new Array<CommandResult>(commands.length);
      const order = commands
        .map((_c, i) => i)
        .sort((a, b) => {
          const ca = commands[a] as WireCommand;
          const cb = commands[b] as WireCommand;
          if (ca.subscriberId !== cb.subscriberId)
            return ca.subscriberId < cb.subscriberId ? -1 : 1;
          return ca.version - cb.version;
        });
      for (const i of order) {
        const c = commands[i] as WireCommand;
        results[i] = applier.apply(
          c,
          states.get(c.subscriberId) as SubscriberState,
          priors.get(c.key),
        );
      }

      const w = applier.writes;
      const statements: string[] = [];
      if (w.newSubscriptions.length > 0) {
        statements.push(
          insertSql(
            'subscriptions',
            SUBSCRIPTION_COLUMNS,
            w.newSubscriptions.map(subscriptionValues),
          ),
        );
      }
      if (w.changedSubscriptions.size > 0) {
        statements.push(
          upsertSql(
            'subscriptions',
            SUBSCRIPTION_COLUMNS,
            [...w.changedSubscriptions.values()].map(subscriptionValues),
            ['status', 'modules', 'version', 'updated_at'],
          ),
        );
      }
      if (w.newLicences.length > 0) {
        statements.push(insertSql('licences', LICENCE_COLUMNS, w.newLicences.map(licenceValues)));
      }
      if (w.changedLicences.size > 0) {
        statements.push(
          upsertSql(
            'licences',
            LICENCE_COLUMNS,
            [...w.changedLicences.values()].map(licenceValues),
            LICENCE_MERGE,
          ),
        );
      }
      if (w.requests.length > 0) {
        statements.push(
          insertSql(
            'provisioning_requests',
            ['isp_id', 'idempotency_key', 'body_hash', 'result', 'created_at'],
            w.requests.map((r) => [
              r.isp_id,
              r.idempotency_key,
              r.body_hash,
              r.result,
              r.created_at,
            ]),
          ),
        );
      }
      if (w.events.length > 0) statements.push(eventsSql(w.events, now));
      for (const sql of statements) await trx.raw(sql);
      await faults?.beforeCommit?.(trx);
      return results;
    },
    { isolationLevel: 'read committed' },
  );
}

/**
 * A driver error as a retryable DB_UNAVAILABLE. Its cause keeps the code and first line only:
 * the driver attaches the failed statement, a whole batch of rows the log has no use for.
 */
function databaseFailure(err: unknown, what: string, ispId: string): TransientError {
  const { code, message } = err as { code?: unknown; message?: unknown };
  const line = String(message ?? err).split('\n')[0];
  const cause = { code, message: line };
  return new TransientError('DB_UNAVAILABLE', `${what}: ${line}`, { ispId }, { cause });
}

/** A concurrent batch inserted the same row first; a fresh attempt sees its commit. */
function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ER_DUP_ENTRY';
}

/**
 * `POST /v1/provisioning/batches` for `ispId` (already authenticated). Refuses a body that
 * breaks the wire schema as a whole (PROVISIONING_INVALID, nothing applied); otherwise answers
 * one result per command, in request order. A database failure throws TransientError
 * DB_UNAVAILABLE after rolling the whole batch back.
 */
export async function applyBatch(
  deps: LicensingDeps,
  ispId: string,
  body: unknown,
  faults?: ProvisioningFaults,
): Promise<BatchResponse> {
  servedIsp(deps, ispId);
  const commands = parseBatch(body);
  const metrics = provisioningMetrics(deps.metrics);
  const stopTimer = metrics.batchSeconds.startTimer({ isp: ispId });
  let results: CommandResult[];
  try {
    results = await retryLockConflicts(() => applyInTransaction(deps, ispId, commands, faults), {
      attempts: RACE_ATTEMPTS,
      also: isDuplicateKey,
    });
  } catch (err) {
    if (isRelaisError(err)) throw err;
    throw databaseFailure(
      err,
      `provisioning batch of ${commands.length} commands rolled back`,
      ispId,
    );
  }
  const seconds = stopTimer();
  const tally = { applied: 0, replayed: 0, rejected: 0, deferred: 0 };
  results.forEach((result, i) => {
    tally[result.outcome]++;
    metrics.commands.inc({
      isp: ispId,
      kind: (commands[i] as WireCommand).kind,
      outcome: result.outcome,
    });
  });
  deps.log.info(
    { isp: ispId, commands: commands.length, ...tally, ms: Math.round(seconds * 1000) },
    'provisioning batch applied',
  );
  return { results };
}

// ---------------------------------------------------------------------------------------------
// Delivery reports

/**
 * `POST /v1/provisioning/deliveries`: the connector's word that keys reached customers, as one
 * `delivered` event per delivery: a licence and the instant its key was handed over (a repeated
 * report of that delivery records nothing; a later delivery of a new key records again). Every licence
 * must be the calling ISP's and the named subscriber's, or nothing of the report is recorded.
 */
export async function recordDeliveries(
  deps: LicensingDeps,
  ispId: string,
  body: unknown,
): Promise<{ recorded: number }> {
  servedIsp(deps, ispId);
  const parsed = deliveryReportSchema.safeParse(body);
  if (!parsed.success) {
    const lines = issueLines(parsed.error.issues);
    const listed = lines.slice(0, MAX_LISTED_PROBLEMS).join('; ');
    throw new RequestError('PROVISIONING_INVALID', `delivery report refused: ${listed}`);
  }
  const deliveries: DeliveryReport['deliveries'] = parsed.data.deliveries;
  const now = deps.now();
  const ids = [...new Set(deliveries.map((d) => d.licenceId))];
  let rows: { id: string; subscriber_id: string }[];
  try {
    rows = await deps
      .db('licences')
      .select('id', 'subscriber_id')
      .whereIn('id', ids)
      .andWhere('isp_id', ispId);
  } catch (err) {
    throw databaseFailure(err, 'delivery report not recorded', ispId);
  }
  const owner = new Map(rows.map((r) => [r.id, r.subscriber_id]));
  deliveries.forEach((d, i) => {
    if (owner.get(d.licenceId) !== d.subscriberId) {
      throw new RequestError(
        'SUBSCRIBER_NOT_FOUND',
        `deliveries[${i}]: no licence ${d.licenceId} of subscriber ${d.subscriberId} for this ISP; nothing recorded`,
      );
    }
  });
  try {
    await appendEvents(
      deps.db,
      deliveries.map((d) => ({
        ispId,
        subscriberId: d.subscriberId,
        licenceId: d.licenceId,
        type: 'delivered' as const,
        data: { channel: d.channel },
        // A licence is delivered again after a new key (reactivation, re-issue); the instant
        // tells those deliveries apart, and a report sent twice repeats it exactly.
        idempotencyKey: `delivered:${d.licenceId}:${d.deliveredAt}`,
        occurredAt: new Date(d.deliveredAt),
      })),
      now,
    );
  } catch (err) {
    throw databaseFailure(err, 'delivery report not recorded', ispId);
  }
  return { recorded: deliveries.length };
}
