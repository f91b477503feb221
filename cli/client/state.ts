/**
 * What the reference client keeps on disk, in its state folder (default `~/.relais-client`):
 * `licence.json`, the last signed licence document the server handed out, and `keys.json`,
 * the server's public keys it is verified with. Both are public material (a document names
 * ids, module codes and dates), so nothing here is secret; files are still written owner-only
 * through a temporary name and a rename, so a crash never leaves half a document.
 *
 * The device fingerprint is derived, not stored: a hash of /etc/machine-id (or the host name),
 * so the same machine always presents the same fingerprint and the raw id never leaves it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import type { PublicSigningKey } from '../../licensing/keystore.js';
import type { SignedDocument } from '../../licensing/signed-document.js';

export const DEFAULT_STATE_DIR = join(homedir(), '.relais-client');

export interface ClientState {
  document: SignedDocument;
  keys: PublicSigningKey[];
}

/** A stable fingerprint of this machine: sha256 of its machine id, base64url (43 characters). */
export function machineFingerprint(): string {
  let source: string;
  try {
    source = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    source = '';
  }
  if (source === '') source = `host:${hostname()}`;
  return createHash('sha256').update(`relais-client:${source}`).digest('base64url');
}

function writeJson(file: string, value: unknown): void {
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

export function saveState(dir: string, state: ClientState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Keys first: a crash between the two leaves a new key list and the old document, which the
  // new list still verifies (rotation keeps old keys).
  writeJson(join(dir, 'keys.json'), { keys: state.keys });
  writeJson(join(dir, 'licence.json'), state.document);
}

export type LoadedState = { ok: true; state: ClientState } | { ok: false; reason: string };

export function loadState(dir: string): LoadedState {
  const read = (name: string): unknown => JSON.parse(readFileSync(join(dir, name), 'utf8'));
  try {
    const document = read('licence.json') as SignedDocument;
    const { keys } = read('keys.json') as { keys?: PublicSigningKey[] };
    if (!Array.isArray(keys)) return { ok: false, reason: `${dir}/keys.json holds no key list` };
    return { ok: true, state: { document, keys } };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return { ok: false, reason: `no licence in ${dir}: run \`relais client activate\` first` };
    }
    return { ok: false, reason: `the state in ${dir} is unreadable (${(err as Error).message})` };
  }
}
