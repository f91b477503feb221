/**
 * Signed documents (licence documents, erasure receipts): a JSON payload, base64url-encoded so
 * the bytes signed are the bytes verified (no canonical JSON to agree on), signed with Ed25519
 * and naming the key id. Anyone holding the public keys of `/v1/licensing/keys` can verify one
 * offline.
 */
import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import type { PublicSigningKey, SigningKey } from './keystore.js';

export interface SignedDocument {
  /** What the payload is, e.g. `relais-licence/1`. */
  type: string;
  alg: 'Ed25519';
  kid: string;
  /** base64url of the payload's JSON. */
  payload: string;
  /** base64url Ed25519 signature of `<type>.<payload>`. */
  signature: string;
}

function signedBytes(type: string, payload: string): Buffer {
  return Buffer.from(`${type}.${payload}`, 'utf8');
}

export function signDocument(key: SigningKey, type: string, claims: object): SignedDocument {
  const payload = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
  const signature = sign(null, signedBytes(type, payload), key.privateKey).toString('base64url');
  return { type, alg: 'Ed25519', kid: key.kid, payload, signature };
}

export type Verification<T> = { ok: true; claims: T } | { ok: false; reason: string };

/**
 * Checks a document's signature against the published keys and returns its claims. Never
 * throws: a forged, altered or foreign document is a reason, not a crash.
 */
export function verifyDocument<T>(
  keys: readonly PublicSigningKey[],
  document: unknown,
  expectedType: string,
): Verification<T> {
  const doc = document as Partial<SignedDocument> | null;
  if (
    typeof doc !== 'object' ||
    doc === null ||
    typeof doc.payload !== 'string' ||
    typeof doc.signature !== 'string' ||
    typeof doc.kid !== 'string'
  ) {
    return { ok: false, reason: 'not a signed document' };
  }
  if (doc.type !== expectedType) return { ok: false, reason: `not a ${expectedType} document` };
  if (doc.alg !== 'Ed25519') return { ok: false, reason: 'unsupported signature algorithm' };
  const key = keys.find((k) => k.kid === doc.kid);
  if (!key) return { ok: false, reason: `signed with unknown key ${doc.kid}` };
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: key.jwk, format: 'jwk' });
  } catch {
    return { ok: false, reason: `public key ${doc.kid} is unusable` };
  }
  const good = verify(
    null,
    signedBytes(doc.type, doc.payload),
    publicKey,
    Buffer.from(doc.signature, 'base64url'),
  );
  if (!good) return { ok: false, reason: 'signature does not match' };
  try {
    return { ok: true, claims: JSON.parse(Buffer.from(doc.payload, 'base64url').toString('utf8')) };
  } catch {
    return { ok: false, reason: 'payload is not JSON' };
  }
}
