/**
 * SQL literals for statements built as text, where a thousand-row insert through knex's
 * builder cost more than MariaDB's own work on the rows. Escapes exactly what MySQL's default
 * SQL mode (backslash escapes on) requires; dates are written as UTC, the session time zone of
 * every connection (platform/db.ts).
 */

export type SqlValue = string | number | Date | Buffer | null;

// biome-ignore lint/suspicious/noControlCharactersInRegex: MySQL escapes NUL and ^Z, so the pattern names them
const SQL_SPECIAL = /[\0\n\r\x1a'\\]/g;
/** The same characters, without the global flag: a test that keeps no position between calls. */
const HAS_SQL_SPECIAL = new RegExp(SQL_SPECIAL.source);
const SQL_ESCAPES: Record<string, string> = {
  '\0': '\\0',
  '\n': '\\n',
  '\r': '\\r',
  '\x1a': '\\Z',
  "'": "\\'",
  '\\': '\\\\',
};

/**
 * A text as a quoted literal. Unlike mysql2's escaping it leaves `"` alone, which a JSON text
 * is full of and a single-quoted MySQL string does not need.
 */
export function sqlText(text: string): string {
  // Most texts (ids, codes, JSON of ids) need no escape: test first, replace only when needed.
  if (!HAS_SQL_SPECIAL.test(text)) return `'${text}'`;
  return `'${text.replace(SQL_SPECIAL, (c) => SQL_ESCAPES[c] as string)}'`;
}

/**
 * The last instant written and its literal: a batch writes the same few instants (now, the
 * period's end) on every row, and formatting a date is most of what a row's literals cost.
 */
let lastDateMs = Number.NaN;
let lastDateLiteral = '';

function dateLiteral(value: Date): string {
  const ms = value.getTime();
  if (ms !== lastDateMs) {
    lastDateLiteral = `'${value.toISOString().slice(0, 23).replace('T', ' ')}'`;
    lastDateMs = ms;
  }
  return lastDateLiteral;
}

/** A value as a MySQL literal. */
export function sqlLiteral(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (typeof value === 'string') return sqlText(value);
  if (typeof value === 'number') return String(value);
  if (value instanceof Date) return dateLiteral(value);
  return `X'${value.toString('hex')}'`;
}
