/**
 * What the intake keeps to reach a new subscriber: for an ISP whose keys go out by e-mail, the
 * address from the feed, sealed with the connector vault under `email:<subscriberId>` before it
 * is written anywhere (the `contacts` row, a change list on disk). For ISPs that deliver keys
 * themselves (return file) or not at all, nothing is kept: the address is checked and dropped.
 */
import type { IspConfig } from '../../config/load.js';
import type { SealEmail } from '../../mappings/subscriber-writes.js';
import { InternalError } from '../../platform/errors.js';
import type { Vault } from '../vault.js';

/** The vault context of a subscriber's sealed address; delivery opens it with the same. */
export function emailContext(subscriberId: string): string {
  return `email:${subscriberId}`;
}

/** Whether the intake keeps the addresses of this ISP's subscribers. */
export function keepsContacts(isp: IspConfig): boolean {
  return isp.delivery.mode === 'email';
}

/**
 * The sealer of an ISP's addresses, or undefined when the ISP's addresses are not kept.
 *
 * @throws InternalError when addresses must be kept but the intake was wired without a vault:
 *   applying the feed would leave new subscribers no way to receive their key.
 */
export function emailSealer(vault: Vault | undefined, isp: IspConfig): SealEmail | undefined {
  if (!keepsContacts(isp)) return undefined;
  if (!vault) {
    throw new InternalError(
      'INTERNAL',
      `isp ${isp.id} delivers keys by e-mail but the intake has no vault to seal addresses`,
    );
  }
  return (subscriberId, address) => vault.seal(address, emailContext(subscriberId));
}
