/**
 * The reference client's calls to the subscription server, over plain HTTP(S) with fetch: the
 * same requests the desktop software makes. A refusal comes back as the server's
 * `{ code, message }` (plus Retry-After when throttled); a server that cannot be reached is a
 * reason to print, never a stack.
 */
import type { PublicSigningKey } from '../../licensing/keystore.js';
import type { SignedDocument } from '../../licensing/signed-document.js';

export type Answer<T> =
  | { ok: true; body: T }
  | { ok: false; code: string; message: string; retryAfterS?: number };

async function call<T>(url: string, init: RequestInit): Promise<Answer<T>> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    return { ok: false, code: 'UNREACHABLE', message: `cannot reach ${url} (${cause})` };
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? {} : JSON.parse(text);
  } catch {
    body = {};
  }
  if (res.ok) return { ok: true, body: body as T };
  const refusal = body as { code?: string; message?: string };
  const retry = res.headers.get('retry-after');
  return {
    ok: false,
    code: refusal.code ?? `HTTP_${res.status}`,
    message: refusal.message ?? `the server answered ${res.status}`,
    ...(retry ? { retryAfterS: Number(retry) } : {}),
  };
}

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

export interface Issued {
  licenceId: string;
  deviceId: string;
  document: SignedDocument;
}

export function requestActivation(server: string, key: string, fingerprint: string) {
  return call<Issued & { outcome: string }>(`${server}/v1/activations`, json({ key, fingerprint }));
}

export function requestCheckIn(server: string, licenceId: string, fingerprint: string) {
  return call<Issued>(
    `${server}/v1/licences/${encodeURIComponent(licenceId)}/check-in`,
    json({ fingerprint }),
  );
}

export function fetchKeys(server: string) {
  return call<{ keys: PublicSigningKey[] }>(`${server}/v1/licensing/keys`, { method: 'GET' });
}
