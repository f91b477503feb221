/**
 * What the reference client keeps on disk, in its state folder (default `~/.relais-client`):
 *
 * - `licence.json`, the last signed licence document the server handed out;
 * - `trusted-keys.json`, the server keys the client trusts: its trust anchor. Documents are
 *   verified against these only, never against keys fetched with them, so whoever answers in
 *   the server's place (or writes a key list next to the document) cannot vouch for their own
 *   document. The set is pinned at the first activation and only grows when asked
 *   (`relais client trust --refresh`, or a key file given with `--trust-keys`).
 *
 * Both are public material (a document names ids, module codes and dates), so nothing here is
 * secret; files are still written owner-only through a temporary name and a rename, so a crash
 * never leaves half a document. A `keys.json` left by earlier versions is never read.
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
export const TRUSTED_KEYS_FILE = 'trusted-keys.json';
const LICENCE_FILE = 'licence.json';

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

function writeJson(dir: string, name: string, value: unknown): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

export type Loaded<T> = { ok: true; value: T } | { ok: false; missing: boolean; reason: string };

function readJson(file: string): Loaded<unknown> {
  try {
    return { ok: true, value: JSON.parse(readFileSync(file, 'utf8')) };
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return { ok: false, missing, reason: `${file} is unreadable (${(err as Error).message})` };
  }
}

function isPublicKey(value: unknown): value is PublicSigningKey {
  const key = value as PublicSigningKey | null;
  return (
    typeof key?.kid === 'string' &&
    key.alg === 'Ed25519' &&
    key.jwk?.kty === 'OKP' &&
    key.jwk.crv === 'Ed25519' &&
    typeof key.jwk.x === 'string'
  );
}

/**
 * A key list file: `{ "keys": [...] }` as `GET /v1/licensing/keys` serves it (what an
 * integrator ships with the software), or the bare list.
 */
export function readKeysFile(file: string): Loaded<PublicSigningKey[]> {
  const read = readJson(file);
  if (!read.ok) return read;
  const list = Array.isArray(read.value) ? read.value : (read.value as { keys?: unknown })?.keys;
  if (!Array.isArray(list) || list.length === 0 || !list.every(isPublicKey)) {
    return { ok: false, missing: false, reason: `${file} holds no list of Ed25519 public keys` };
  }
  return { ok: true, value: list };
}

export function loadTrustedKeys(dir: string): Loaded<PublicSigningKey[]> {
  return readKeysFile(join(dir, TRUSTED_KEYS_FILE));
}

export interface Pinning {
  /** Keys that were not pinned before. */
  added: PublicSigningKey[];
  /** Keys with a pinned kid but other key material: never pinned, a sign of an impostor. */
  conflicting: PublicSigningKey[];
}

/** Adds keys to the pinned set; never removes or replaces one. */
export function pinKeys(dir: string, keys: readonly PublicSigningKey[]): Pinning {
  const pinned = loadTrustedKeys(dir);
  const current = pinned.ok ? pinned.value : [];
  const byKid = new Map(current.map((k) => [k.kid, k.jwk.x]));
  const added: PublicSigningKey[] = [];
  const conflicting: PublicSigningKey[] = [];
  for (const key of keys) {
    const x = byKid.get(key.kid);
    if (x === undefined) {
      added.push(key);
      byKid.set(key.kid, key.jwk.x);
    } else if (x !== key.jwk.x) {
      conflicting.push(key);
    }
  }
  if (added.length > 0) writeJson(dir, TRUSTED_KEYS_FILE, { keys: [...current, ...added] });
  return { added, conflicting };
}

export function saveDocument(dir: string, document: SignedDocument): void {
  writeJson(dir, LICENCE_FILE, document);
}

export function loadDocument(dir: string): Loaded<unknown> {
  const read = readJson(join(dir, LICENCE_FILE));
  if (!read.ok && read.missing) {
    return { ...read, reason: `no licence in ${dir}: run \`relais client activate\` first` };
  }
  return read;
}
