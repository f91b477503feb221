/**
 * How a format refuses a whole file. Every refusal names the file and, when it has one, the
 * position, the same way in all formats (`abonnes.csv:12: …`, like the config loader's
 * `fai.yaml:3:5 …`), so that support staff read one shape of message whatever the format.
 */
import type { ErrorCode } from '../../platform/error-codes.js';
import { IspDataError } from '../../platform/errors.js';

/** Where in the file a problem sits; `line` and `column` are 1-based. */
export interface FeedPosition {
  fileName: string;
  line?: number;
  column?: number;
  field?: string;
}

/**
 * An {@link IspDataError} whose message starts with `file:line:column:` and whose context
 * carries the same position. `message` must hold no value read from the file.
 */
export function feedError(code: ErrorCode, at: FeedPosition, message: string): IspDataError {
  const where = [at.fileName, at.line, at.column].filter((part) => part !== undefined).join(':');
  const context: Record<string, unknown> = { fileName: at.fileName };
  if (at.line !== undefined) context.line = at.line;
  if (at.column !== undefined) context.column = at.column;
  if (at.field !== undefined) context.field = at.field;
  return new IspDataError(code, `${where}: ${message}`, context);
}
