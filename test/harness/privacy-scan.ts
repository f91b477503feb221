/**
 * The search behind the privacy proofs (`test/privacy-boundary.int.test.ts`,
 * `test/chaos/privacy-month.chaos.test.ts`): given the personal values a test fed in, finds
 * any of them in any text, in every form it could leak in (as is, upper and lower case, hex,
 * base64, URL-encoded), and reads whole stores into texts to search: every cell of every table
 * of a database, every key of a Redis prefix.
 *
 * Each place searched is a "haystack" named by where it is (`licences.key_hash row 3`, `log
 * line 17`, `request 4 POST /v1/provisioning/batches`), so a failing test says where the value
 * went. The values are chosen by the tests so they cannot occur by chance: a hit is a leak.
 *
 * The search runs in one pass per text whatever the number of needles (thousands for a month
 * of three ISPs): needles are indexed by their first few characters and only the candidates
 * starting at a position are compared.
 */
import type { Redis } from 'ioredis';
import type { Db } from '../../platform/db.js';

/** One form of one personal value, lower case; `label` says which value and which form. */
export interface Needle {
  label: string;
  lower: string;
}

/** A personal value the test fed in: `kind` names the field (`e-mail`, `customer ref`). */
export interface PersonalValue {
  kind: string;
  value: string;
}

/** Where a personal value was found, and which ones (labels of their needles). */
export interface Finding {
  where: string;
  found: string[];
}

/**
 * What `value` looks like inside a longer base64 (or base64url) text, wherever it starts: for
 * each of the three offsets it may have against the 3-byte groups, the characters of the whole
 * groups it fills, when there are enough of them to be distinctive.
 */
function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const forms = new Set<string>();
  for (let skip = 0; skip < 3; skip++) {
    const rest = bytes.subarray(skip);
    const whole = rest.subarray(0, rest.length - (rest.length % 3));
    if (whole.length < 9) continue;
    forms.add(whole.toString('base64'));
    forms.add(whole.toString('base64url'));
  }
  return [...forms];
}

/** Every form of `value` a leak could take: case variants, their hex and base64(url). */
export function needlesOf(kind: string, value: string): Needle[] {
  const needles: Needle[] = [];
  for (const form of new Set([value, value.toLowerCase(), value.toUpperCase()])) {
    needles.push({ label: `${kind} ${value}`, lower: form.toLowerCase() });
    needles.push({ label: `${kind} ${value} (hex)`, lower: Buffer.from(form).toString('hex') });
    for (const b64 of base64Forms(form)) {
      needles.push({ label: `${kind} ${value} (base64)`, lower: b64.toLowerCase() });
    }
  }
  return needles;
}

/** `text` as it is and with its URL encoding undone (`%40`, and `+` for a space). */
export function decodedForms(text: string): string[] {
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      // A stray % elsewhere in the text: decode the well-formed escapes one by one.
      return s.replace(/(%[0-9a-f]{2})+/gi, (run) => {
        try {
          return decodeURIComponent(run);
        } catch {
          return run;
        }
      });
    }
  };
  if (!text.includes('%') && !text.includes('+')) return [text]; // the common case, fast
  return [...new Set([text, decode(text), decode(text.replace(/\+/g, ' '))])];
}

/** The longest index prefix: every needle must be at least this long. */
const MAX_PREFIX = 8;

/** A set of personal values and the search for them. */
export class PersonalValues {
  readonly needles: readonly Needle[];
  private readonly prefix: number;
  private readonly byPrefix = new Map<string, Needle[]>();

  constructor(values: Iterable<PersonalValue>) {
    const unique = new Map<string, Needle>();
    for (const { kind, value } of values) {
      for (const needle of needlesOf(kind, value)) {
        if (!unique.has(needle.lower)) unique.set(needle.lower, needle);
      }
    }
    this.needles = [...unique.values()];
    const shortest = Math.min(...this.needles.map((n) => n.lower.length));
    if (shortest < 4) throw new Error(`a personal value is too short to search for (${shortest})`);
    this.prefix = Math.min(MAX_PREFIX, shortest);
    for (const needle of this.needles) {
      const key = needle.lower.slice(0, this.prefix);
      const list = this.byPrefix.get(key) ?? [];
      list.push(needle);
      this.byPrefix.set(key, list);
    }
  }

  /** The labels of the personal values in `text`, case-insensitively, in any decoded form. */
  in(text: string): string[] {
    const found = new Set<string>();
    for (const form of decodedForms(text)) {
      const lower = form.toLowerCase();
      for (let i = 0; i + this.prefix <= lower.length; i++) {
        const candidates = this.byPrefix.get(lower.slice(i, i + this.prefix));
        if (!candidates) continue;
        for (const needle of candidates) {
          if (lower.startsWith(needle.lower, i)) found.add(needle.label);
        }
      }
    }
    return [...found];
  }

  /** Every haystack holding a personal value, with the values found there. */
  scan(haystacks: Iterable<[where: string, text: string]>): Finding[] {
    const findings: Finding[] = [];
    for (const [where, text] of haystacks) {
      const found = this.in(text);
      if (found.length > 0) findings.push({ where, found });
    }
    return findings;
  }
}

/**
 * A short account of findings for an assertion message: the first few places and what was
 * found there, then how many more. Empty when nothing was found, so `toEqual([])` passes.
 */
export function firstFindings(findings: readonly Finding[], shown = 5): string[] {
  const lines = findings.slice(0, shown).map((f) => `${f.where}: ${f.found.join(', ')}`);
  if (findings.length > shown) lines.push(`... and ${findings.length - shown} more places`);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Reading whole stores into haystacks

/** A cell as text: buffers both as hex and as UTF-8, dates in ISO form, JSON as JSON. */
export function cellText(value: unknown): string {
  if (Buffer.isBuffer(value)) return `hex:${value.toString('hex')} utf8:${value.toString('utf8')}`;
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** The tables of `database`, in name order. */
export async function tablesOf(db: Db, database: string): Promise<string[]> {
  const tables = (await db('information_schema.tables')
    .where({ table_schema: database })
    .orderBy('table_name')
    .select({ name: 'table_name' })) as { name: string }[];
  return tables.map((t) => t.name);
}

/** Every row of every table of `database` as one text per table (`column=value | ...` lines). */
export async function dumpDatabase(db: Db, database: string): Promise<Map<string, string>> {
  const dump = new Map<string, string>();
  for (const name of await tablesOf(db, database)) {
    const rows = (await db(name).select('*')) as Record<string, unknown>[];
    const text = rows.map((row) =>
      Object.entries(row)
        .map(([column, value]) => `${column}=${cellText(value)}`)
        .join(' | '),
    );
    dump.set(name, text.join('\n'));
  }
  return dump;
}

/**
 * Every cell of every table of `database` as its own haystack, named `table.column row N
 * (first column value)`, so a finding names the exact column and row. Rows are numbered from 1
 * in the order of the table's first column.
 */
export async function databaseCells(db: Db, database: string): Promise<[string, string][]> {
  const cells: [string, string][] = [];
  for (const table of await tablesOf(db, database)) {
    const rows = (await db(table).select('*')) as Record<string, unknown>[];
    const first = rows[0] ? Object.keys(rows[0])[0] : undefined;
    if (first) rows.sort((a, b) => cellText(a[first]).localeCompare(cellText(b[first])));
    rows.forEach((row, i) => {
      const id = first ? `${first}=${cellText(row[first])}` : '';
      for (const [column, value] of Object.entries(row)) {
        if (value === null) continue;
        cells.push([`${table}.${column} row ${i + 1} (${id})`, cellText(value)]);
      }
    });
  }
  return cells;
}

/** Every key under `prefix` with everything it holds, one text per key. */
export async function dumpRedis(redis: Redis, prefix: string): Promise<Map<string, string>> {
  const dump = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      let value: unknown;
      if (type === 'string') value = await redis.get(key);
      else if (type === 'hash') value = await redis.hgetall(key);
      else if (type === 'list') value = await redis.lrange(key, 0, -1);
      else if (type === 'set') value = await redis.smembers(key);
      else if (type === 'zset') value = await redis.zrange(key, 0, -1, 'WITHSCORES');
      else if (type === 'stream') value = await redis.xrange(key, '-', '+');
      else if (type === 'none')
        continue; // expired between SCAN and TYPE
      else throw new Error(`privacy scan cannot read redis key ${key} of type ${type}`);
      dump.set(key, `${key} ${type} ${JSON.stringify(value)}`);
    }
  } while (cursor !== '0');
  return dump;
}
