/**
 * What the connector asks the subscription server to do. A command names a subscriber by its
 * anonymous id only: no customer ref, no e-mail, no name ever goes into one (the privacy test
 * of the intake reads every queued command to prove it).
 */
import type { SubscriptionStatus } from '../config/isp-schema.js';

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
