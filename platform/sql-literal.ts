/**
 * SQL literals for statements built as text, where a thousand-row insert through knex's
 * builder cost more than MariaDB's own work on the rows. Escapes exactly what MySQL's default
 * SQL mode (backslash escapes on) requires; dates are written as UTC, the session time zone of
 * every connection (platform/db.ts).
 */

export type SqlValue = string | number | Date | Buffer | null;

// biome-ignore lint/suspicious/noControlCharactersInRegex: MySQL escapes NUL and ^Z, so the pattern names them
const SQL_SPECIAL = /[\0\n\r\x1a'\\]/g;
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
  return `'${text.replace(SQL_SPECIAL, (c) => SQL_ESCAPES[c] as string)}'`;
}

/** A value as a MySQL literal. */
export function sqlLiteral(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') return String(value);
  if (value instanceof Date) return `'${value.toISOString().slice(0, 23).replace('T', ' ')}'`;
  if (Buffer.isBuffer(value)) return `X'${value.toString('hex')}'`;
  return sqlText(value);
}
