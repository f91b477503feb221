/**
 * One canonical field's reading rule, compiled once from its `intake.fields` entry: where the
 * value comes from and its cleaning steps (default, trim, case, split, map, pattern) as plain
 * data, Map lookups and regexes. Reading a value then costs no config work per record, which
 * matters for files of millions of records. Canonical meaning (offers, statuses, dates) is the
 * record mapper's job; this file only turns the ISP's text into clean words.
 */
import type { FieldSpec } from '../config/isp-schema.js';
import { ConfigError } from '../platform/errors.js';
import { type CanonicalField, PERSONAL_FIELDS } from './customer-record.js';

/** A record's values keyed by `String(from)`; a repeated XML element gives a list. */
export type SourceValues = Readonly<Record<string, string | readonly string[]>>;

/** Reasons list at most this many known words, so a long map does not flood a rejects file. */
const MAX_KNOWN_WORDS = 12;
/** Longer words are cut in reasons; the whole value is in the reject's `value`. */
const MAX_QUOTED_LENGTH = 40;

/** Spellings used in reasons, in the words an ISP reads. */
const NOUNS: Readonly<Record<CanonicalField, string>> = {
  customerRef: 'customer ref',
  offer: 'offer',
  options: 'option',
  status: 'status',
  effectiveDate: 'effective date',
  operation: 'operation',
  email: 'e-mail',
  language: 'language',
};

export interface FieldRule {
  readonly name: CanonicalField;
  /** How reasons name the field (`customer ref`, `option`). */
  readonly noun: string;
  readonly from: string | number;
  /** Key of the value in a source record: `String(from)`. */
  readonly key: string;
  /** Personal values (an e-mail) never appear in a reject, neither as value nor in a reason. */
  readonly isPersonal: boolean;
  readonly isRequired: boolean;
  readonly trim: boolean;
  readonly letterCase: 'upper' | 'lower' | undefined;
  readonly lookup: ReadonlyMap<string, string> | undefined;
  readonly mapDefault: string | undefined;
  /** ` (known: ACTIF, SUSPENDU)`, appended to unknown-word reasons; empty for personal fields. */
  readonly knownWords: string;
  readonly pattern: RegExp | undefined;
  /** List fields only: separator of the items of one string (`+` in `SAUV+CTRL`). */
  readonly split: string | undefined;
  /** List fields only: what every item must look like once mapped (module codes). */
  readonly itemShape: ItemShape | undefined;
  /** The cleaned `default`: one word for a scalar field, the items for a list; null if none. */
  readonly fallback: string | null;
  readonly fallbackItems: readonly string[];
}

export interface ItemShape {
  readonly pattern: RegExp;
  /** Completes `option "X" is not …`, e.g. `a module code (lowercase letters, digits, dashes)`. */
  readonly description: string;
}

/** A value that cannot be used, and why; the record mapper turns it into a reject. */
export class FieldProblem {
  constructor(
    readonly rule: FieldRule,
    readonly reason: string,
  ) {}
}

export interface RuleOptions {
  /** Rejects an empty value whatever `required` says (the customer ref, a delta operation). */
  alwaysRequired?: boolean;
  /** Reads the value as a list (options): split, items mapped one by one. */
  isList?: boolean;
  itemShape?: ItemShape;
}

/**
 * Compiles one field's settings.
 *
 * @throws ConfigError when the settings can never work: a pattern that does not compile, a map
 *   key that the case step makes unreachable, or a default that its own rules reject.
 */
export function compileFieldRule(
  name: CanonicalField,
  spec: FieldSpec,
  options: RuleOptions = {},
): FieldRule {
  const path = `intake.fields.${name}`;
  checkMapKeysMatchCase(spec, path);
  const isPersonal = PERSONAL_FIELDS.has(name);
  const rule: FieldRule = {
    name,
    noun: NOUNS[name],
    from: spec.from,
    key: String(spec.from),
    isPersonal,
    isRequired: options.alwaysRequired === true || spec.required === true,
    trim: spec.trim,
    letterCase: spec.case,
    lookup: spec.map === undefined ? undefined : new Map(Object.entries(spec.map)),
    mapDefault: spec.mapDefault,
    knownWords: isPersonal || spec.map === undefined ? '' : knownWordsOf(Object.keys(spec.map)),
    pattern: compilePattern(spec.pattern, path),
    split: options.isList === true ? spec.split : undefined,
    itemShape: options.itemShape,
    fallback: null,
    fallbackItems: [],
  };
  if (spec.default === undefined) return rule;
  return options.isList === true
    ? { ...rule, fallbackItems: listFallback(rule, spec.default, path) }
    : { ...rule, fallback: scalarFallback(rule, spec.default, path) };
}

/** ` (known: A, B, C)` for unknown-word reasons, cut after {@link MAX_KNOWN_WORDS} words. */
export function knownWordsOf(words: readonly string[]): string {
  if (words.length === 0) return '';
  const shown = words.slice(0, MAX_KNOWN_WORDS).join(', ');
  const more = words.length - MAX_KNOWN_WORDS;
  return more > 0 ? ` (known: ${shown} and ${more} more)` : ` (known: ${shown})`;
}

/** A word for a reason: quoted, escaped, cut when long. */
export function quote(word: string): string {
  const cut = word.length > MAX_QUOTED_LENGTH ? `${word.slice(0, MAX_QUOTED_LENGTH)}…` : word;
  return JSON.stringify(cut);
}

/**
 * The cleaned value of a scalar field, in step order: absent or empty (after trim) gives the
 * default or null; then case, map and pattern. A list of several values is refused.
 */
export function readScalar(rule: FieldRule, values: SourceValues): string | null | FieldProblem {
  const raw = values[rule.key];
  let text: string;
  if (raw === undefined) return emptyValue(rule);
  if (typeof raw === 'string') text = raw;
  else if (raw.length > 1) return new FieldProblem(rule, `expected one value, found ${raw.length}`);
  else text = raw[0] ?? '';
  if (rule.trim) text = text.trim();
  return text === '' ? emptyValue(rule) : cleanText(rule, text);
}

/**
 * Adds a list field's cleaned items to `into`, skipping words already there. One string is
 * split on `split`; a repeated XML element is already a list. Empty items are dropped; with
 * none left, the default items are used.
 *
 * @returns how many items the record contributed (0 when absent or empty and no default).
 */
export function readItems(
  rule: FieldRule,
  values: SourceValues,
  into: string[],
): number | FieldProblem {
  const raw = values[rule.key];
  let found: number | FieldProblem = 0;
  if (typeof raw === 'string') found = addSplitItems(rule, raw, into);
  else if (raw !== undefined) found = addEachItem(rule, raw, into);
  if (found !== 0) return found;

  for (const item of rule.fallbackItems) addUnique(into, item);
  if (rule.fallbackItems.length > 0) return rule.fallbackItems.length;
  return rule.isRequired ? new FieldProblem(rule, `missing ${rule.noun}`) : 0;
}

/** The value a reject shows: the field's text as read; null when personal, absent or blank. */
export function sourceText(rule: FieldRule, values: SourceValues): string | null {
  if (rule.isPersonal) return null;
  const raw = values[rule.key];
  if (raw === undefined) return null;
  const text = typeof raw === 'string' ? raw : raw.join(', ');
  return text.trim() === '' ? null : text;
}

function emptyValue(rule: FieldRule): string | null | FieldProblem {
  if (rule.fallback !== null) return rule.fallback;
  return rule.isRequired ? new FieldProblem(rule, `missing ${rule.noun}`) : null;
}

/** Case, map, pattern: the steps after trim, for one non-empty word. */
function cleanText(rule: FieldRule, text: string): string | FieldProblem {
  let value = text;
  if (rule.letterCase === 'upper') value = value.toUpperCase();
  else if (rule.letterCase === 'lower') value = value.toLowerCase();
  if (rule.lookup !== undefined) {
    const mapped = rule.lookup.get(value) ?? rule.mapDefault;
    if (mapped === undefined) return new FieldProblem(rule, unknownWordReason(rule, value));
    value = mapped;
  }
  if (rule.pattern !== undefined && !rule.pattern.test(value)) {
    return new FieldProblem(rule, patternReason(rule, value));
  }
  return value;
}

function addSplitItems(rule: FieldRule, raw: string, into: string[]): number | FieldProblem {
  const separator = rule.split;
  if (separator === undefined) return addItem(rule, raw, into);
  let found = 0;
  let start = 0;
  for (;;) {
    const end = raw.indexOf(separator, start);
    const added = addItem(rule, end === -1 ? raw.slice(start) : raw.slice(start, end), into);
    if (added instanceof FieldProblem) return added;
    found += added;
    if (end === -1) return found;
    start = end + separator.length;
  }
}

function addEachItem(
  rule: FieldRule,
  items: readonly string[],
  into: string[],
): number | FieldProblem {
  let found = 0;
  for (const item of items) {
    const added = addItem(rule, item, into);
    if (added instanceof FieldProblem) return added;
    found += added;
  }
  return found;
}

/** Cleans one item and adds it; 1 when the item held a word, 0 when it was empty. */
function addItem(rule: FieldRule, item: string, into: string[]): number | FieldProblem {
  const text = rule.trim ? item.trim() : item;
  if (text === '') return 0;
  const cleaned = cleanText(rule, text);
  if (cleaned instanceof FieldProblem) return cleaned;
  const shape = rule.itemShape;
  if (shape !== undefined && !shape.pattern.test(cleaned)) {
    return new FieldProblem(rule, `${rule.noun} ${quote(cleaned)} is not ${shape.description}`);
  }
  addUnique(into, cleaned);
  return 1;
}

function addUnique(into: string[], word: string): void {
  if (!into.includes(word)) into.push(word);
}

function unknownWordReason(rule: FieldRule, word: string): string {
  if (rule.isPersonal) return `unknown ${rule.noun}`;
  return `unknown ${rule.noun} ${quote(word)}${rule.knownWords}`;
}

function patternReason(rule: FieldRule, word: string): string {
  const source = rule.pattern?.source ?? '';
  if (rule.isPersonal) return `${rule.noun} does not match ${source}`;
  return `${rule.noun} ${quote(word)} does not match ${source}`;
}

function compilePattern(source: string | undefined, path: string): RegExp | undefined {
  if (source === undefined) return undefined;
  try {
    return new RegExp(source, 'u');
  } catch (err) {
    const message = `${path}.pattern is not a valid regular expression`;
    throw new ConfigError('CONFIG_INVALID', message, { path: `${path}.pattern` }, { cause: err });
  }
}

/** With `case: upper`, a map key written `actif` could never match: refuse it up front. */
function checkMapKeysMatchCase(spec: FieldSpec, path: string): void {
  if (spec.map === undefined || spec.case === undefined) return;
  for (const key of Object.keys(spec.map)) {
    const cased = spec.case === 'upper' ? key.toUpperCase() : key.toLowerCase();
    if (cased === key) continue;
    throw new ConfigError(
      'CONFIG_INVALID',
      `${path}.map key ${quote(key)} can never match: values are ${spec.case}-cased first`,
      { path: `${path}.map` },
    );
  }
}

function scalarFallback(rule: FieldRule, text: string, path: string): string | null {
  const trimmed = rule.trim ? text.trim() : text;
  if (trimmed === '') return null;
  const cleaned = cleanText(rule, trimmed);
  if (cleaned instanceof FieldProblem) throw defaultError(path, cleaned);
  return cleaned;
}

function listFallback(rule: FieldRule, text: string, path: string): string[] {
  const items: string[] = [];
  const found = addSplitItems(rule, text, items);
  if (found instanceof FieldProblem) throw defaultError(path, found);
  return items;
}

function defaultError(path: string, problem: FieldProblem): ConfigError {
  return new ConfigError('CONFIG_INVALID', `${path}.default is refused: ${problem.reason}`, {
    path: `${path}.default`,
  });
}
