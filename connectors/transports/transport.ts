/**
 * The contract of a polled transport: a place where an ISP drops files (a local or mounted
 * folder, an SFTP server) and from which Relais picks them up.
 *
 * @remarks A transport moves bytes and names; it never parses a file and never decides
 * whether a file is complete or already processed. Completeness, ordering and what happens to
 * a file afterwards are shared semantics implemented once in `pickup.ts` on top of this
 * interface; "already processed" is the feed ledger's decision. Connection retries and host-key
 * pinning belong to the transport. One transport instance performs one operation at a time.
 */

/** A file as listed in the inbox. */
export interface InboxFile {
  /** File name inside the inbox (no folder part). */
  name: string;
  sizeBytes: number;
  /** Last modification time, in ms since the epoch (SFTP servers give whole seconds). */
  mtimeMs: number;
}

export interface DownloadResult {
  sizeBytes: number;
  /** Lowercase hex SHA-256 of the bytes written to the local file. */
  sha256: string;
}

export interface PolledTransport {
  /** Human-readable origin for logs and the ledger, e.g. `sftp://host:22/inbox` (no secret). */
  readonly description: string;
  /** Regular files directly in the inbox (no folders, no recursion). */
  list(): Promise<InboxFile[]>;
  /**
   * Current size and mtime of one inbox file, or undefined when it is gone (or is not a
   * regular file). With `folder`, looks in that subfolder of the inbox instead, which is how
   * `pickup.ts` avoids replacing an earlier file in `processed/` or `failed/`.
   */
  stat(name: string, folder?: string): Promise<InboxFile | undefined>;
  /**
   * Streams one inbox file to `localPath` (never whole in memory), hashing as it goes, and
   * checks that the bytes written match the size the server reports.
   */
  download(name: string, localPath: string): Promise<DownloadResult>;
  /**
   * Moves an inbox file into a subfolder of the inbox (created when absent). A file of the same
   * name already there is replaced: callers that must keep it check with `stat` first.
   */
  moveTo(name: string, folder: string, newName?: string): Promise<void>;
  /** Deletes an inbox file; a file that is already gone is not an error. */
  remove(name: string): Promise<void>;
  /** Writes a small text file into a subfolder of the inbox (created when absent). */
  writeText(folder: string, name: string, text: string): Promise<void>;
  close(): Promise<void>;
}
