/**
 * Maps one record of an ISP export to a canonical {@link CustomerRecord}, or to a reject that
 * tells the ISP the line, the field and why. The ISP's YAML (`intake.fields`, `offers`) is
 * compiled once by {@link createRecordMapper}; `map` then runs for every record of files with
 * millions of them, so it only reads precompiled rules and allocates little beyond its result.
 * A bad record is a value (a reject), never an exception: one bad row never stops a file.
 */
import {
  DELTA_OPERATIONS,
  type DeltaOperation,
  type FieldSpec,
  type FieldsSettings,
  isKnownTimeZone,
  SUBSCRIPTION_STATUSES,
  type SubscriptionStatus,
} from '../config/isp-schema.js';
import { ConfigError } from '../platform/errors.js';
import { compileDatePattern, type DateParser, zonedToUtc } from '../platform/zoned-time.js';
import type { CanonicalField, CustomerRecord, MappingResult } from './customer-record.js';
import {
  compileFieldRule,
  FieldProblem,
  type FieldRule,
  type ItemShape,
  knownWordsOf,
  quote,
  type RuleOptions,
  readItems,
  readScalar,
  type SourceValues,
  sourceText,
} from './field-rule.js';

/** How one ISP's records are read; built from its config (`intake`, `offers`, `timeZone`). */
export interface RecordMapperSpec {
  fields: FieldsSettings;
  /** Offer code as the ISP writes it, to the modules it entitles. */
  offers: Readonly<Record<string, readonly string[]>>;
  /** IANA zone in which dates without an offset are read. */
  timeZone: string;
  mode: 'snapshot' | 'delta';
}

/**
 * What the mapper reads of a source record. The formats' `SourceRecord` fits it; it is
 * restated here because `mappings/` does not import `connectors/`.
 */
export interface MappableRecord {
  /** 1-based line of the record in the file. */
  line: number;
  values: SourceValues;
}

export interface RecordMapper {
  /** Every source (`from`) the fields read, without repeats: the format extracts only these. */
  readonly wanted: readonly (string | number)[];
  map(source: MappableRecord): MappingResult;
}

/**
 * Longest customer ref: the `subscribers.customer_ref` column is VARCHAR(64). Refs hold no
 * character outside the BMP, so UTF-16 length is the character count.
 */
export const MAX_CUSTOMER_REF_LENGTH = 64;

const MODULE_CODE: ItemShape = {
  pattern: /^[a-z][a-z0-9-]{0,31}$/,
  description: 'a module code (lowercase letters, digits and dashes)',
};
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const LANGUAGE_SHAPE = /^[a-z]{2}$/;
const STATUS_WORDS = knownWordsOf(SUBSCRIPTION_STATUSES);
const OPERATION_WORDS = knownWordsOf(DELTA_OPERATIONS);
const LANGUAGE_REASON = 'expected a two-letter lowercase language code such as fr';
const NO_MODULE_REASON = 'no module: the record has neither an offer nor an option';
/** Delta operations that make sense without modules. */
const MODULELESS_OPERATIONS: ReadonlySet<DeltaOperation> = new Set(['cancel', 'suspend', 'resume']);

interface CompiledMapping {
  timeZone: string;
  customerRef: FieldRule;
  offer: FieldRule | undefined;
  options: FieldRule | undefined;
  status: FieldRule | undefined;
  effectiveDate: FieldRule | undefined;
  parseDate: DateParser | undefined;
  /** Compiled in delta mode only: a snapshot ignores the operation field. */
  operation: FieldRule | undefined;
  email: FieldRule | undefined;
  language: FieldRule | undefined;
  /** Offer code to its modules, sorted and unique. */
  offers: ReadonlyMap<string, readonly string[]>;
  offerWords: string;
  /** The field a "no module" reject names: offer when mapped, else options. */
  moduleRule: FieldRule;
}

/**
 * Compiles an ISP's field mapping into a mapper. Call once per feed (or once per ISP).
 *
 * @throws ConfigError for settings no record could satisfy: an unknown time zone, delta mode
 *   without an operation field, neither offer nor options, a bad date pattern, a pattern that
 *   does not compile, a map key the case step hides, a default its own rules reject.
 */
export function createRecordMapper(spec: RecordMapperSpec): RecordMapper {
  const compiled = compileMapping(spec);
  const rules = [
    compiled.customerRef,
    compiled.offer,
    compiled.options,
    compiled.status,
    compiled.effectiveDate,
    compiled.operation,
    compiled.email,
    compiled.language,
  ];
  const wanted: (string | number)[] = [];
  for (const rule of rules) {
    if (rule !== undefined && !wanted.includes(rule.from)) wanted.push(rule.from);
  }
  return { wanted, map: (source) => mapRecord(compiled, source) };
}

function mapRecord(m: CompiledMapping, source: MappableRecord): MappingResult {
  const { values } = source;
  const customerRef = readCustomerRef(m.customerRef, values);
  if (customerRef instanceof FieldProblem) return rejected(source, customerRef, null);
  const offer = readOffer(m, values);
  if (offer instanceof FieldProblem) return rejected(source, offer, customerRef);
  const modules = readModules(m, offer, values);
  if (modules instanceof FieldProblem) return rejected(source, modules, customerRef);
  const status = readStatus(m.status, values);
  if (status instanceof FieldProblem) return rejected(source, status, customerRef);
  const operation = m.operation === undefined ? null : readOperation(m.operation, values);
  if (operation instanceof FieldProblem) return rejected(source, operation, customerRef);
  const effectiveAt = readEffectiveAt(m, values);
  if (effectiveAt instanceof FieldProblem) return rejected(source, effectiveAt, customerRef);
  const email = readChecked(m.email, values, EMAIL_SHAPE, 'not an e-mail address');
  if (email instanceof FieldProblem) return rejected(source, email, customerRef);
  const language = readChecked(m.language, values, LANGUAGE_SHAPE, LANGUAGE_REASON);
  if (language instanceof FieldProblem) return rejected(source, language, customerRef);

  if (modules.length === 0 && !mayLackModules(status, operation)) {
    return rejected(source, new FieldProblem(m.moduleRule, NO_MODULE_REASON), customerRef);
  }
  const record: CustomerRecord = {
    line: source.line,
    customerRef: detach(customerRef),
    offer: offer === null ? null : detach(offer),
    modules,
    status,
    effectiveAt,
    operation,
    email: email === null ? null : detach(email),
    language,
  };
  return { ok: true, record };
}

/**
 * A copy of `value` that shares no memory with the text it was cut from. V8 keeps a slice of
 * 13 characters or more as a view of its parent string, so a value kept for long (a change
 * waiting for its transaction) kept a whole chunk of the file alive: in a million-record XML
 * diff that was 300 MB. Joining forces a flat copy, whose slice views only that copy.
 */
export function detach(value: string): string {
  return value.length < 13 ? value : `${value} `.slice(0, -1);
}

function rejected(
  source: MappableRecord,
  problem: FieldProblem,
  customerRef: string | null,
): MappingResult {
  const { rule, reason } = problem;
  const value = sourceText(rule, source.values);
  return { ok: false, reject: { line: source.line, field: rule.name, value, reason, customerRef } };
}

function readCustomerRef(rule: FieldRule, values: SourceValues): string | FieldProblem {
  const ref = readScalar(rule, values);
  // A map may turn a ref into an empty word (`mapDefault: ""`): that is no ref either.
  if (ref === null || ref === '') return new FieldProblem(rule, 'missing customer ref');
  if (ref instanceof FieldProblem) return ref;
  const reason = customerRefProblem(ref);
  return reason === null ? ref : new FieldProblem(rule, reason);
}

/**
 * Why a cleaned ref cannot be stored, or null. The intake sorts refs with JavaScript string
 * order (UTF-16 code units) and merges them with rows MariaDB returns in `utf8mb4_bin` order
 * (code points, PAD SPACE). The two orders agree only for refs with:
 * - no character outside the Basic Multilingual Plane: a surrogate pair sorts below U+E000 in
 *   UTF-16 but above U+FFFF by code point;
 * - no control character: PAD SPACE compares a shorter ref as if padded with spaces, so `A\t`
 *   sorts before `A` in the database and after it in JavaScript;
 * - no trailing space: PAD SPACE makes `A1` and `A1 ` one key (only possible with trim off).
 * A ref that breaks one of these is rejected rather than silently misordered.
 */
function customerRefProblem(ref: string): string | null {
  if (ref.length > MAX_CUSTOMER_REF_LENGTH) {
    return `customer ref is ${ref.length} characters long, at most ${MAX_CUSTOMER_REF_LENGTH} are allowed`;
  }
  for (let i = 0; i < ref.length; i++) {
    const code = ref.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
      return 'customer ref holds a control character';
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      return 'customer ref holds a character outside the basic multilingual plane (such as an emoji)';
    }
  }
  if (ref.charCodeAt(ref.length - 1) === 0x20) return 'customer ref ends with a space';
  return null;
}

function readOffer(m: CompiledMapping, values: SourceValues): string | null | FieldProblem {
  if (m.offer === undefined) return null;
  const offer = readScalar(m.offer, values);
  if (offer === null || offer instanceof FieldProblem) return offer;
  if (m.offers.has(offer)) return offer;
  return new FieldProblem(m.offer, `unknown offer ${quote(offer)}${m.offerWords}`);
}

/** The offer's modules and the options', sorted and unique. */
function readModules(
  m: CompiledMapping,
  offer: string | null,
  values: SourceValues,
): string[] | FieldProblem {
  const offerModules = offer === null ? undefined : m.offers.get(offer);
  const modules = offerModules === undefined ? [] : offerModules.slice();
  if (m.options === undefined) return modules;
  const found = readItems(m.options, values, modules);
  if (found instanceof FieldProblem) return found;
  if (modules.length > (offerModules?.length ?? 0)) modules.sort();
  return modules;
}

function readStatus(
  rule: FieldRule | undefined,
  values: SourceValues,
): SubscriptionStatus | FieldProblem {
  if (rule === undefined) return 'active';
  const status = readScalar(rule, values);
  if (status === null) return 'active';
  if (status instanceof FieldProblem || isStatus(status)) return status;
  return new FieldProblem(rule, `unknown status ${quote(status)}${STATUS_WORDS}`);
}

function readOperation(rule: FieldRule, values: SourceValues): DeltaOperation | FieldProblem {
  const operation = readScalar(rule, values);
  if (operation === null) return new FieldProblem(rule, 'missing operation');
  if (operation instanceof FieldProblem || isOperation(operation)) return operation;
  return new FieldProblem(rule, `unknown operation ${quote(operation)}${OPERATION_WORDS}`);
}

function readEffectiveAt(m: CompiledMapping, values: SourceValues): Date | null | FieldProblem {
  if (m.effectiveDate === undefined || m.parseDate === undefined) return null;
  const text = readScalar(m.effectiveDate, values);
  if (text === null || text instanceof FieldProblem) return text;
  const parts = m.parseDate(text);
  if (typeof parts === 'string') return new FieldProblem(m.effectiveDate, parts);
  return zonedToUtc(parts, m.timeZone);
}

/** A plain text field whose cleaned value must have a shape (e-mail, language). */
function readChecked(
  rule: FieldRule | undefined,
  values: SourceValues,
  shape: RegExp,
  reason: string,
): string | null | FieldProblem {
  if (rule === undefined) return null;
  const text = readScalar(rule, values);
  if (text === null || text instanceof FieldProblem || shape.test(text)) return text;
  return new FieldProblem(rule, reason);
}

/** A cancelled customer (snapshot) or a cancel, suspend or resume (delta) needs no module. */
function mayLackModules(status: SubscriptionStatus, operation: DeltaOperation | null): boolean {
  if (operation !== null) return MODULELESS_OPERATIONS.has(operation);
  return status === 'cancelled';
}

function isStatus(word: string): word is SubscriptionStatus {
  return (SUBSCRIPTION_STATUSES as readonly string[]).includes(word);
}

function isOperation(word: string): word is DeltaOperation {
  return (DELTA_OPERATIONS as readonly string[]).includes(word);
}

// Compiling

function compileMapping(spec: RecordMapperSpec): CompiledMapping {
  const { fields, mode, timeZone } = spec;
  if (!isKnownTimeZone(timeZone)) throw configError('timeZone', `unknown time zone "${timeZone}"`);
  if (mode === 'delta' && fields.operation === undefined) {
    throw configError('intake.fields.operation', 'delta mode needs an operation field');
  }
  const offer = optionalRule('offer', fields.offer);
  const options = optionalRule('options', fields.options, { isList: true, itemShape: MODULE_CODE });
  const moduleRule = offer ?? options;
  if (moduleRule === undefined) {
    throw configError('intake.fields', 'map at least one of offer or options');
  }
  const effectiveDate = optionalRule('effectiveDate', fields.effectiveDate);
  const parseDate = fields.effectiveDate && compileDatePattern(fields.effectiveDate.date);
  checkDefaultDate(effectiveDate, parseDate);
  const offers = compileOffers(spec.offers);
  return {
    timeZone,
    customerRef: compileFieldRule('customerRef', fields.customerRef, { alwaysRequired: true }),
    offer,
    options,
    status: optionalRule('status', fields.status),
    effectiveDate,
    parseDate,
    operation:
      mode === 'delta'
        ? optionalRule('operation', fields.operation, { alwaysRequired: true })
        : undefined,
    email: optionalRule('email', fields.email),
    language: optionalRule('language', fields.language),
    offers,
    offerWords: knownWordsOf([...offers.keys()]),
    moduleRule,
  };
}

function optionalRule(
  name: CanonicalField,
  spec: FieldSpec | undefined,
  options?: RuleOptions,
): FieldRule | undefined {
  return spec === undefined ? undefined : compileFieldRule(name, spec, options);
}

function compileOffers(
  offers: Readonly<Record<string, readonly string[]>>,
): Map<string, readonly string[]> {
  const compiled = new Map<string, readonly string[]>();
  for (const [code, modules] of Object.entries(offers)) {
    compiled.set(code, [...new Set(modules)].sort());
  }
  return compiled;
}

/** A default effective date must itself be a date, or every empty cell would be rejected. */
function checkDefaultDate(rule: FieldRule | undefined, parseDate: DateParser | undefined): void {
  if (rule === undefined || rule.fallback === null || parseDate === undefined) return;
  const parts = parseDate(rule.fallback);
  if (typeof parts === 'string') {
    throw configError('intake.fields.effectiveDate.default', `default is refused: ${parts}`);
  }
}

function configError(path: string, problem: string): ConfigError {
  return new ConfigError('CONFIG_INVALID', `${path}: ${problem}`, { path });
}
