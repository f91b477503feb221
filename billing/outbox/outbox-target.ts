/**
 * What the delivery needs from an ISP outbox, whatever carries the files (a local folder or an
 * SFTP server). The delivery steps (ledger, temporary name, checks, rename, checksum file,
 * done marker) are written once in deliver.ts against this interface; each target only moves
 * bytes and names. Names are plain file names inside the outbox folder, never paths.
 */

/** Size and lowercase hex SHA-256 of some bytes. */
export interface FileDigest {
  sizeBytes: number;
  sha256: string;
}

export interface UploadOptions {
  /** SFTP only: ssh2's parallel-chunk upload instead of one sequential stream. */
  fastPut: boolean;
}

export interface OutboxTarget {
  /** Where the files go, for messages and the ledger: `sftp://host:22/outbox`, `file:///…`. */
  readonly description: string;
  /** Size of a file in the outbox, or undefined when there is none under that name. */
  sizeOf(name: string): Promise<number | undefined>;
  /** Reads a file of the outbox back, hashing it as it streams. */
  digestOf(name: string): Promise<FileDigest>;
  /** Reads a small file of the outbox whole (checksum files, markers). */
  readSmall(name: string): Promise<Buffer>;
  /**
   * Copies the local file to `name` in the outbox (replacing any file of that name) and flushes
   * it to the outbox's disk where the target can. Returns the digest of the bytes it sent, taken
   * as they went (not read back).
   */
  upload(localPath: string, name: string, options: UploadOptions): Promise<FileDigest>;
  /** Writes a small file whole under `name`, replacing any file of that name. */
  writeSmall(name: string, content: Buffer): Promise<void>;
  /**
   * Renames `from` to `to` in one atomic step. The caller has checked that `to` does not exist;
   * a target must refuse (not replace) when it cannot be atomic about an existing `to`.
   */
  rename(from: string, to: string): Promise<void>;
  /** Whether the outbox folder itself is (still) there, to explain a vanished file. */
  folderExists(): Promise<boolean>;
  /** Deletes a file; a missing file is not an error. */
  remove(name: string): Promise<void>;
  close(): Promise<void>;
}
