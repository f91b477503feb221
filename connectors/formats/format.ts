/**
 * The file-format plug-in contract. A format turns a byte stream into source records, one at
 * a time, in bounded memory whatever the file size.
 *
 * @remarks Formats never touch the network or the database. Where the bytes come from is the
 * transport's job; what the fields mean is the mapping's (`mappings/`). A format reports
 * two kinds of problem:
 * - a problem with one record (a short row, a value that cannot be decoded) is yielded as a
 *   {@link RecordReject} and reading goes on;
 * - a problem with the whole file (malformed XML, a DOCTYPE, a trailer count that does not
 *   match, a required column missing from the header) is thrown as an `IspDataError` whose
 *   context names the line. Nothing of such a file is ever applied: the pipeline reads the
 *   whole file before it applies anything.
 */
import type { Readable } from 'node:stream';
import type { z } from 'zod';

/** A value read from a record: one string, or several for a repeated XML element. */
export type SourceValue = string | string[];

export interface SourceRecord {
  kind: 'record';
  /** 1-based line where the record starts in the file (for XML: the line of its start tag). */
  line: number;
  /**
   * The values of the requested sources (see {@link ReadContext.wanted}), keyed by
   * `String(source)`. A source absent from this record is absent from the object.
   */
  values: Record<string, SourceValue>;
}

export interface RecordReject {
  kind: 'reject';
  line: number;
  /** The source (column, path, field) at fault, when one is. */
  field?: string;
  /** Lowercase, specific, no personal data: `expected 7 columns, found 5`. */
  reason: string;
}

export type FormatItem = SourceRecord | RecordReject;

export interface ReadContext {
  /** File name for messages (never a full path with a customer's data in it). */
  fileName: string;
  /**
   * The sources the mapping reads: CSV column names (or 1-based positions as numbers), XML
   * paths relative to the record element (`Contract/Offer`, `@id`), fixed-width field names.
   * A format checks up front that each can exist (a CSV header without a wanted column throws
   * FEED_COLUMNS_MISSING) and extracts only these.
   */
  wanted: readonly (string | number)[];
}

export interface FeedFormat<Options extends { type: string }> {
  readonly type: Options['type'];
  /** zod schema of this format's options, composed into the ISP config schema. */
  readonly optionsSchema: z.ZodType<Options>;
  read(input: Readable, options: Options, context: ReadContext): AsyncIterable<FormatItem>;
}
