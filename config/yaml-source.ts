/**
 * YAML with positions. Parses a config file keeping a line counter, substitutes `${VAR}`
 * references in place, validates against a zod schema and turns every problem (syntax, missing
 * variable, schema) into a {@link ConfigProblem} that points at file, line and column.
 *
 * Substitution happens on the parsed document, not the raw text, so a secret that contains
 * YAML syntax stays a plain string and line numbers never shift.
 */
import { readFileSync } from 'node:fs';
import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
} from 'yaml';
import type { z } from 'zod';

export interface ConfigProblem {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the field, e.g. `intake.format.delimiter`; empty for the whole file. */
  path: string;
  message: string;
}

export type ConfigSource = { [name: string]: string | undefined };

export interface ParsedYaml<T> {
  value?: T;
  problems: ConfigProblem[];
  /** The document as plain data after substitution, valid or not; absent on a syntax error. */
  raw?: unknown;
  /** Where the field at `path` is written, and whether the file sets it at all. */
  locate(path: readonly string[]): FieldPosition;
}

export interface FieldPosition {
  line: number;
  column: number;
  /** False when the file leaves the field out: the position is then its nearest ancestor's. */
  isSet: boolean;
}

/** Reads the value of `${NAME}`: the variable itself, else the content of the file in NAME_FILE. */
function lookupVariable(name: string, env: ConfigSource): { value?: string; error?: string } {
  const direct = env[name];
  if (direct !== undefined) return { value: direct };
  const file = env[`${name}_FILE`];
  if (file === undefined) return {};
  try {
    return { value: readFileSync(file, 'utf8').replace(/\r?\n$/, '') };
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return { error: `${name}_FILE points at ${file}, which cannot be read (${reason})` };
  }
}

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}`, `${VAR:-default}` and `$$` (a literal `$`) in one string. Returns the
 * problems instead of throwing so that a file with three missing variables reports three.
 */
export function substituteVariables(
  text: string,
  env: ConfigSource,
): { value: string; errors: string[] } {
  const errors: string[] = [];
  const value = text.replace(REFERENCE, (whole, name?: string, fallback?: string) => {
    if (whole === '$$') return '$';
    const found = lookupVariable(name as string, env);
    if (found.error) errors.push(found.error);
    else if (found.value !== undefined) return found.value;
    else if (fallback !== undefined) return fallback;
    else errors.push(`environment variable ${name} is not set (nor ${name}_FILE)`);
    return '';
  });
  return { value, errors };
}

/**
 * A plain (unquoted) scalar that was only a reference takes the type its value would have had
 * written literally, as YAML itself would: `port: ${PORT}` is a number. Quote the reference to
 * keep a string: `password: '${DB_PASSWORD}'`.
 */
function retype(value: string): string | number | boolean {
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  return value;
}

/**
 * Line and column of the field at `path`: its key when the field exists, else the nearest
 * ancestor that does (a missing required field points at the map that should hold it).
 */
function positionOf(
  doc: Document,
  lines: LineCounter,
  path: readonly PropertyKey[],
): { line: number; column: number } {
  for (let depth = path.length; depth > 0; depth--) {
    const parent = depth === 1 ? doc.contents : doc.getIn(path.slice(0, depth - 1), true);
    const key = String(path[depth - 1]);
    let start: number | undefined;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
      start = (pair?.key as { range?: [number] } | undefined)?.range?.[0];
    } else if (isSeq(parent)) {
      start = (parent.items[Number(key)] as { range?: [number] } | undefined)?.range?.[0];
    }
    if (start !== undefined) {
      const pos = lines.linePos(start);
      return { line: pos.line, column: pos.col };
    }
  }
  const pos = lines.linePos((doc.contents as { range?: [number] } | null)?.range?.[0] ?? 0);
  return { line: pos.line, column: pos.col };
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/** Dotted path of a node from the ancestors `visit` hands over: pair keys and list indexes. */
function pathOfNode(ancestors: readonly unknown[], node: unknown): string {
  const chain = [...ancestors, node];
  const path: string[] = [];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isPair(parent) && parent.value === child) {
      path.push(String(isScalar(parent.key) ? parent.key.value : parent.key));
    } else if (isSeq(parent)) {
      path.push(String(parent.items.indexOf(child as never)));
    }
  }
  return path.join('.');
}

/** zod's messages start with "Invalid input:"; ours are short and lowercase. */
function tidy(message: string): string {
  const text = message.replace(/^Invalid (input|option): /, '');
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * Parses, substitutes and validates one YAML file. `displayName` is what problems print as the
 * file (usually the path relative to the working directory).
 */
export function parseYamlConfig<S extends z.ZodType>(
  text: string,
  displayName: string,
  schema: S,
  env: ConfigSource,
): ParsedYaml<z.output<S>> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const locate = (path: readonly string[]): FieldPosition => ({
    ...positionOf(doc, lines, path),
    isSet: doc.errors.length === 0 && doc.hasIn(path),
  });

  for (const error of doc.errors) {
    const pos = lines.linePos(error.pos[0]);
    problems.push({
      file: displayName,
      line: pos.line,
      column: pos.col,
      path: '',
      message: `yaml syntax: ${error.message.split('\n')[0]}`,
    });
  }
  if (problems.length > 0) return { problems, locate };

  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const original = node.value;
      const { value, errors } = substituteVariables(original, env);
      const pos = lines.linePos(node.range?.[0] ?? 0);
      const path = errors.length > 0 ? pathOfNode(ancestors, node) : '';
      for (const message of errors) {
        problems.push({ file: displayName, line: pos.line, column: pos.col, path, message });
      }
      const wholeReference = /^\$\{[^}]+\}$/.test(original) && node.type === 'PLAIN';
      node.value = wholeReference ? retype(value) : value;
    },
  });

  const raw = doc.toJS() ?? {};
  const result = schema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const pos = positionOf(doc, lines, [...issue.path, key]);
          problems.push({
            file: displayName,
            ...pos,
            path: dotted([...issue.path, key]),
            message: 'unknown field (check the spelling against the JSON Schema)',
          });
        }
        continue;
      }
      const pos = positionOf(doc, lines, issue.path);
      problems.push({
        file: displayName,
        ...pos,
        path: dotted(issue.path),
        message: tidy(issue.message),
      });
    }
  }
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  if (problems.length > 0) return { problems, raw, locate };
  return { value: result.data as z.output<S>, problems, raw, locate };
}

export function formatProblem(problem: ConfigProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.column}`;
  return problem.path
    ? `${where} ${problem.path}: ${problem.message}`
    : `${where} ${problem.message}`;
}
