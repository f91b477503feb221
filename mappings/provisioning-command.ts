/**
 * What the connector asks the subscription server to do. A command names a subscriber by its
 * anonymous id only: no customer ref, no e-mail, no name ever goes into one (the privacy test
 * of the intake reads every queued command to prove it).
 */
import type { SubscriptionStatus } from '../config/isp-schema.js';
import { InternalError } from '../platform/errors.js';

export const COMMAND_KINDS = ['subscribe', 'change', 'suspend', 'resume', 'cancel'] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

export interface ProvisioningCommand {
  /**
   * Idempotency key, `<subscriberId>:v<version>`: one per applied change of one subscriber, the
   * same on every replay, so the server applies a command once however often it is sent.
   */
  key: string;
  kind: CommandKind;
  subscriberId: string;
  /** The subscription's modules after the command, sorted. */
  modules: string[];
  /** The subscription's status after the command. */
  status: SubscriptionStatus;
  /** When the change takes effect, ISO 8601 UTC. */
  effectiveAt: string;
  /**
   * The subscriber's change counter after this command (1 for the first subscribe). The server
   * applies a subscriber's commands in version order and holds back one that arrives early.
   */
  version: number;
  /**
   * The subscriber's offer code, so the server can apply the ISP's per-offer device limit.
   * Absent when the subscriber has none, or when its code does not fit {@link OFFER_CODE}.
   */
  offer?: string;
}

/**
 * Offer codes the provisioning protocol carries (the wire schema's pattern). An ISP's offer
 * codes are free keys of its config; one outside this shape is left out of its commands, so
 * the server falls back to the ISP's device limit rather than refuse the whole batch.
 */
export const OFFER_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

/** The offer codes of `offers` that commands cannot carry (see {@link OFFER_CODE}). */
export function offersNotSent(offers: Iterable<string>): string[] {
  return [...offers].filter((offer) => !OFFER_CODE.test(offer));
}

export function commandKey(subscriberId: string, version: number): string {
  return `${subscriberId}:v${version}`;
}

/**
 * The stored form of a batch of commands (the outbox's `commands` column): a first load of a
 * million customers writes a million commands, and the readable form (field names and keys
 * spelled out, module lists repeated) was most of what the database had to write. Module lists
 * and offer codes are kept once per batch and referred to by index; the key is rebuilt from id
 * and version.
 *
 * Form 2 added the offers (`o`, and a 7th tuple element, left out when a command has no offer).
 * Rows of form 1 are still read, as commands without an offer. A new form gets a new number
 * rather than optional fields, so that an older process meeting one refuses it loudly instead
 * of sending commands that silently lost their offer.
 */
interface StoredBatch {
  /** Format version of this encoding. */
  v: 1 | 2;
  /** Distinct module lists of the batch, each joined with commas. */
  m: string[];
  /** Distinct offer codes of the batch (form 2). */
  o?: string[];
  /**
   * [subscriberId, version, kind, status, effectiveAt (ISO 8601 UTC), index into `m`,
   * index into `o` (form 2, when the command has an offer)]
   */
  c: [string, number, CommandKind, SubscriptionStatus, string, number, number?][];
}

/** Index of an offer the batch leaves out. */
const NOT_SENT = -1;

/**
 * Builds the stored form of one batch command by command, so that a batch being filled holds
 * one short string per command rather than the command objects (which, held while a large
 * feed is read, reach V8's old generation by the hundred thousand).
 */
export class CommandBatchEncoder {
  private readonly moduleLists = new Map<string, number>();
  /** Offer code to its index in `o`, or {@link NOT_SENT} for a code the wire refuses. */
  private readonly offers = new Map<string, number>();
  private offerCount = 0;
  private readonly encoded: string[] = [];

  get size(): number {
    return this.encoded.length;
  }

  add(command: ProvisioningCommand): void {
    const joined = command.modules.join(',');
    let index = this.moduleLists.get(joined);
    if (index === undefined) {
      index = this.moduleLists.size;
      this.moduleLists.set(joined, index);
    }
    const { subscriberId, version, kind, status, effectiveAt, offer } = command;
    const offerIndex = offer === undefined ? NOT_SENT : this.offerIndex(offer);
    const tail = offerIndex === NOT_SENT ? '' : `,${offerIndex}`;
    // Kind, status and time are ours (enums, ISO 8601): only the id goes through JSON quoting.
    this.encoded.push(
      `[${JSON.stringify(subscriberId)},${Number(version)},"${kind}","${status}","${effectiveAt}",${index}${tail}]`,
    );
  }

  /** The batch's stored text: `{"v":2,"m":[...],"o":[...],"c":[...]}`. */
  finish(): string {
    const m = JSON.stringify([...this.moduleLists.keys()]);
    const o = JSON.stringify([...this.offers].filter(([, i]) => i !== NOT_SENT).map(([k]) => k));
    return `{"v":2,"m":${m},"o":${o},"c":[${this.encoded.join(',')}]}`;
  }

  private offerIndex(offer: string): number {
    let index = this.offers.get(offer);
    if (index === undefined) {
      index = OFFER_CODE.test(offer) ? this.offerCount++ : NOT_SENT;
      this.offers.set(offer, index);
    }
    return index;
  }
}

export function encodeCommands(commands: readonly ProvisioningCommand[]): string {
  const encoder = new CommandBatchEncoder();
  for (const command of commands) encoder.add(command);
  return encoder.finish();
}

/** The commands of a stored batch; throws on a form it cannot read rather than guess. */
export function decodeCommands(text: string): ProvisioningCommand[] {
  const stored = JSON.parse(text) as StoredBatch;
  if (stored.v !== 1 && stored.v !== 2)
    throw new InternalError('INTERNAL', `stored batch of unknown form v${stored.v}`);
  const moduleLists = stored.m.map((joined) => (joined === '' ? [] : joined.split(',')));
  const offers = stored.v === 2 ? (stored.o ?? []) : [];
  return stored.c.map(([subscriberId, version, kind, status, effectiveAt, index, offerIndex]) => {
    const modules = moduleLists[index];
    // A lost module list must not read as "no modules": that would revoke the subscription.
    if (modules === undefined)
      throw new InternalError('INTERNAL', 'stored batch refers to a missing module list');
    const command: ProvisioningCommand = {
      key: commandKey(subscriberId, version),
      kind,
      subscriberId,
      modules: [...modules],
      status,
      effectiveAt,
      version,
    };
    if (offerIndex !== undefined && stored.v === 2) {
      const offer = offers[offerIndex];
      if (offer === undefined)
        throw new InternalError('INTERNAL', 'stored batch refers to a missing offer');
      command.offer = offer;
    }
    return command;
  });
}
