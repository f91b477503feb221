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
}

export function commandKey(subscriberId: string, version: number): string {
  return `${subscriberId}:v${version}`;
}

/**
 * The stored form of a batch of commands (the outbox's `commands` column): a first load of a
 * million customers writes a million commands, and the readable form (field names and keys
 * spelled out, module lists repeated) was most of what the database had to write. Module lists
 * are kept once per batch and referred to by index; the key is rebuilt from id and version.
 */
interface StoredBatch {
  /** Format version of this encoding. */
  v: 1;
  /** Distinct module lists of the batch, each joined with commas. */
  m: string[];
  /** [subscriberId, version, kind, status, effectiveAt (ISO 8601 UTC), index into `m`] */
  c: [string, number, CommandKind, SubscriptionStatus, string, number][];
}

/**
 * Builds the stored form of one batch command by command, so that a batch being filled holds
 * one short string per command rather than the command objects (which, held while a large
 * feed is read, reach V8's old generation by the hundred thousand).
 */
export class CommandBatchEncoder {
  private readonly moduleLists = new Map<string, number>();
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
    const { subscriberId, version, kind, status, effectiveAt } = command;
    // Kind, status and time are ours (enums, ISO 8601): only the id goes through JSON quoting.
    this.encoded.push(
      `[${JSON.stringify(subscriberId)},${Number(version)},"${kind}","${status}","${effectiveAt}",${index}]`,
    );
  }

  /** The batch's stored text: `{"v":1,"m":[...],"c":[...]}`. */
  finish(): string {
    const m = JSON.stringify([...this.moduleLists.keys()]);
    return `{"v":1,"m":${m},"c":[${this.encoded.join(',')}]}`;
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
  if (stored.v !== 1)
    throw new InternalError('INTERNAL', `stored batch of unknown form v${stored.v}`);
  const moduleLists = stored.m.map((joined) => (joined === '' ? [] : joined.split(',')));
  return stored.c.map(([subscriberId, version, kind, status, effectiveAt, index]) => {
    const modules = moduleLists[index];
    // A lost module list must not read as "no modules": that would revoke the subscription.
    if (modules === undefined)
      throw new InternalError('INTERNAL', 'stored batch refers to a missing module list');
    return {
      key: commandKey(subscriberId, version),
      kind,
      subscriberId,
      modules: [...modules],
      status,
      effectiveAt,
      version,
    };
  });
}
