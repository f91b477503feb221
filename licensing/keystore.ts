/**
 * The server's secrets, kept as files in the keys folder (`signing.keysDir`, default
 * `<dataDir>/keys`) and generated on first use:
 *
 * - `licence-signing/<kid>.pem`: Ed25519 private keys that sign licence documents and erasure
 *   receipts. The newest (highest kid) signs; every one is published at `/v1/licensing/keys`,
 *   so a key rotation (add a newer file) keeps older documents verifiable.
 * - `key-hash.secret`: the HMAC secret activation keys and device fingerprints are hashed with.
 *   Losing it makes every issued key unusable: back it up with the database.
 * - `link.secret`: the HMAC secret of download link tokens.
 * - `isp-token.secret`: derives each ISP's API token when its config names none.
 *
 * Files are created with mode 0600 through a temporary name and an exclusive link, so two
 * processes starting together agree on one secret.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../platform/errors.js';
import { createSecretFileOnce, randomSecret, readSecretFile } from '../platform/secret-files.js';

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface PublicSigningKey {
  kid: string;
  alg: 'Ed25519';
  /** JWK (OKP, Ed25519) of the public key. */
  jwk: { kty: 'OKP'; crv: 'Ed25519'; x: string };
}

export interface Keystore {
  /** The key new documents are signed with. */
  readonly signing: SigningKey;
  /** Every signing key's public half, newest first. */
  readonly publicKeys: readonly PublicSigningKey[];
  readonly keyHashSecret: Buffer;
  readonly linkSecret: Buffer;
  /** The API token of an ISP whose config names none (both sides in one deployment). */
  derivedIspToken(ispId: string): string;
}

function toPublic(key: SigningKey): PublicSigningKey {
  const jwk = key.publicKey.export({ format: 'jwk' }) as { x: string };
  return { kid: key.kid, alg: 'Ed25519', jwk: { kty: 'OKP', crv: 'Ed25519', x: jwk.x } };
}

function signingKeys(dir: string, now: Date): SigningKey[] {
  const folder = join(dir, 'licence-signing');
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  let names = readdirSync(folder).filter((n) => /^k[0-9a-z-]+\.pem$/.test(n));
  if (names.length === 0) {
    const { privateKey } = generateKeyPairSync('ed25519');
    const kid = `k${now.toISOString().slice(0, 10).replace(/-/g, '')}`;
    createSecretFileOnce(
      join(folder, `${kid}.pem`),
      privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    names = readdirSync(folder).filter((n) => /^k[0-9a-z-]+\.pem$/.test(n));
  }
  return names
    .sort()
    .reverse()
    .map((name) => {
      const file = join(folder, name);
      let privateKey: KeyObject;
      try {
        privateKey = createPrivateKey(readSecretFile(file));
      } catch (err) {
        throw new ConfigError(
          'SECRET_UNREADABLE',
          `${file} is not a PEM private key`,
          {},
          {
            cause: err,
          },
        );
      }
      if (privateKey.asymmetricKeyType !== 'ed25519') {
        throw new ConfigError('SECRET_UNREADABLE', `${file} is not an Ed25519 key`);
      }
      return { kid: name.slice(0, -4), privateKey, publicKey: createPublicKey(privateKey) };
    });
}

/** Opens the keys folder, creating whatever is missing. */
export function openKeystore(keysDir: string, now = new Date()): Keystore {
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  const keys = signingKeys(keysDir, now);
  const ispTokenSecret = randomSecret(join(keysDir, 'isp-token.secret'));
  return {
    signing: keys[0] as SigningKey,
    publicKeys: keys.map(toPublic),
    keyHashSecret: randomSecret(join(keysDir, 'key-hash.secret')),
    linkSecret: randomSecret(join(keysDir, 'link.secret')),
    derivedIspToken: (ispId) =>
      `rlt_${createHmac('sha256', ispTokenSecret).update(`isp-token:${ispId}`).digest('base64url')}`,
  };
}
