/**
 * Host-key pinning. ssh2 accepts any host key unless a verifier says otherwise, so the SFTP
 * transport always installs {@link pinHostKey}: the server's raw key is fingerprinted the way
 * `ssh-keygen -l -E sha256` prints it and compared in constant time with the pinned value.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** OpenSSH fingerprint of a raw host key blob: `SHA256:` + unpadded base64 of its SHA-256. */
export function fingerprintOf(key: Buffer): string {
  const digest = createHash('sha256').update(key).digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** Whether two fingerprints are equal, in time that does not depend on where they differ. */
export function sameFingerprint(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/** What a verifier saw: nothing yet, the pinned key, or another key (with its fingerprint). */
export type HostKeyCheck =
  | { state: 'pending' }
  | { state: 'accepted' }
  | { state: 'refused'; presented: string };

/**
 * A `hostVerifier` for ssh2 (without `hostHash`, so it receives the raw key) that accepts only
 * the pinned fingerprint, plus the record of what it saw so a failed connect can tell a
 * host-key mismatch from any other failure.
 */
export function pinHostKey(expected: string): {
  verify: (key: Buffer) => boolean;
  check: () => HostKeyCheck;
} {
  let seen: HostKeyCheck = { state: 'pending' };
  return {
    verify(key) {
      const presented = fingerprintOf(key);
      seen = sameFingerprint(presented, expected)
        ? { state: 'accepted' }
        : { state: 'refused', presented };
      return seen.state === 'accepted';
    },
    check: () => seen,
  };
}
