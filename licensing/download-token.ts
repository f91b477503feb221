/**
 * Download link tokens: `<payload>.<mac>`, both base64url. The payload names the licence, the
 * link generation (re-issuing a link bumps it, so older links stop working) and the expiry in
 * unix seconds; the MAC is HMAC-SHA256 under the link secret, compared in constant time. The
 * token names no subscriber and nothing personal: it ends up in mail logs and browser history.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface DownloadClaims {
  licenceId: string;
  generation: number;
  /** Expiry, unix seconds. */
  expiresAt: number;
}

function mac(secret: Buffer, payload: string): Buffer {
  return createHmac('sha256', secret).update(`dl.${payload}`).digest();
}

export function createDownloadToken(secret: Buffer, claims: DownloadClaims): string {
  const payload = Buffer.from(
    JSON.stringify([claims.licenceId, claims.generation, claims.expiresAt]),
  ).toString('base64url');
  return `${payload}.${mac(secret, payload).toString('base64url')}`;
}

export type TokenReading =
  | { ok: true; claims: DownloadClaims }
  | { ok: false; reason: 'malformed' | 'tampered' | 'expired' };

/** Reads a token; `nowS` is the current unix time in seconds. Never throws. */
export function readDownloadToken(secret: Buffer, token: string, nowS: number): TokenReading {
  const parts = token.split('.');
  if (parts.length !== 2 || token.length > 512) return { ok: false, reason: 'malformed' };
  const [payload, given] = parts as [string, string];
  const expected = mac(secret, payload);
  const actual = Buffer.from(given, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    return { ok: false, reason: 'tampered' };
  }
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (
    !Array.isArray(fields) ||
    typeof fields[0] !== 'string' ||
    !Number.isInteger(fields[1]) ||
    !Number.isInteger(fields[2])
  ) {
    return { ok: false, reason: 'malformed' };
  }
  const claims = { licenceId: fields[0], generation: fields[1], expiresAt: fields[2] };
  if (claims.expiresAt <= nowS) return { ok: false, reason: 'expired' };
  return { ok: true, claims };
}

/** The public URL of a download link. */
export function downloadUrl(serverUrl: string, token: string): string {
  return `${serverUrl}/v1/downloads/${token}`;
}
