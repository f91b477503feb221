/**
 * An oracle for the mapping engine, written from the ISP config and the documented field rules,
 * not from `mappings/record-mapper.ts`: the property tests and the fuzz run (issue 7) feed the
 * mapper hostile values and ask this module whether what came out may be applied. A record is
 * accepted only if every field obeys its rules; a reject must name its line, field and reason,
 * and never repeat a personal value (an e-mail).
 *
 * Each check returns the list of what is wrong ("violations"), empty when all is well, so that a
 * failing property prints every broken rule of its counterexample at once.
 */
import {
  DELTA_OPERATIONS,
  type FieldSpec,
  type FieldsSettings,
  SUBSCRIPTION_STATUSES,
} from '../../config/isp-schema.js';
import type {
  CanonicalField,
  CustomerRecord,
  MappingReject,
  MappingResult,
} from '../../mappings/customer-record.js';

/** A source record as the mapper reads it: its line and its values by source key. */
export interface SourceRecordLike {
  line: number;
  values: Readonly<Record<string, string | readonly string[]>>;
}

/** What of an ISP config the mapping reads. */
export interface MappingRules {
  fields: FieldsSettings;
  offers: Readonly<Record<string, readonly string[]>>;
  mode: 'snapshot' | 'delta';
}

const CANONICAL_FIELDS: readonly CanonicalField[] = [
  'customerRef',
  'offer',
  'options',
  'status',
  'effectiveDate',
  'operation',
  'email',
  'language',
];
const MODULE_CODE = /^[a-z][a-z0-9-]{0,31}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const LANGUAGE = /^[a-z]{2}$/;
const MAX_REF_CHARS = 64;
const MODULELESS_OPERATIONS = new Set(['cancel', 'suspend', 'resume']);

/** Why `ref` could not have been accepted as a customer ref under `spec`; empty when it could. */
export function refViolations(ref: unknown, spec: FieldSpec): string[] {
  if (typeof ref !== 'string' || ref.length === 0)
    return ['customer ref is not a non-empty string'];
  const found: string[] = [];
  if (ref.length > MAX_REF_CHARS) found.push(`customer ref is ${ref.length} characters`);
  const codes = [...ref].map((char) => char.codePointAt(0) as number);
  if (codes.some((code) => code < 0x20 || (code >= 0x7f && code <= 0x9f))) {
    found.push('customer ref holds a control character');
  }
  // Iterating by code point, a pair is one code above 0xFFFF; a lone surrogate stays itself.
  if (codes.some((code) => code > 0xffff || (code >= 0xd800 && code <= 0xdfff))) {
    found.push('customer ref holds a character outside the basic multilingual plane');
  }
  if (ref.endsWith(' ')) found.push('customer ref ends with a space');
  // A map may give any text; without one the ref is the trimmed source text.
  if (spec.trim && spec.map === undefined && ref !== ref.trim()) {
    found.push('customer ref is not trimmed');
  }
  found.push(...cleanedViolations('customer ref', ref, spec));
  return found;
}

/** A cleaned word must be cased, mapped and matching as its spec says. */
function cleanedViolations(what: string, value: string, spec: FieldSpec): string[] {
  const found: string[] = [];
  if (spec.map === undefined) {
    if (spec.case === 'upper' && value !== value.toUpperCase()) found.push(`${what} not upper`);
    if (spec.case === 'lower' && value !== value.toLowerCase()) found.push(`${what} not lower`);
  } else {
    const results = new Set(Object.values(spec.map));
    if (spec.mapDefault !== undefined) results.add(spec.mapDefault);
    if (!results.has(value)) found.push(`${what} ${JSON.stringify(value)} is not a map result`);
  }
  if (spec.pattern !== undefined && !new RegExp(spec.pattern, 'u').test(value)) {
    found.push(`${what} ${JSON.stringify(value)} does not match ${spec.pattern}`);
  }
  return found;
}

/** Everything wrong with an accepted record, for the source record on `line`. */
export function recordViolations(
  rules: MappingRules,
  record: CustomerRecord,
  line: number,
): string[] {
  const { fields, offers, mode } = rules;
  const found: string[] = [];
  if (record.line !== line) found.push(`record line ${record.line}, source line ${line}`);
  found.push(...refViolations(record.customerRef, fields.customerRef));

  if (record.offer !== null) {
    if (fields.offer === undefined) found.push('an offer without an offer field');
    else if (!Object.hasOwn(offers, record.offer)) found.push(`unknown offer ${record.offer}`);
    else found.push(...cleanedViolations('offer', record.offer, fields.offer));
  }
  found.push(...moduleViolations(rules, record));

  if (!(SUBSCRIPTION_STATUSES as readonly string[]).includes(record.status)) {
    found.push(`status ${JSON.stringify(record.status)}`);
  } else if (fields.status?.map !== undefined) {
    // A default goes through the map too, so it is one of its results.
    const allowed = new Set<string>([...Object.values(fields.status.map), 'active']);
    if (fields.status.mapDefault !== undefined) allowed.add(fields.status.mapDefault);
    if (!allowed.has(record.status)) found.push(`status ${record.status} is not a map result`);
  }
  if (mode === 'snapshot' && record.operation !== null) found.push('an operation in a snapshot');
  if (
    mode === 'delta' &&
    !(DELTA_OPERATIONS as readonly string[]).includes(`${record.operation}`)
  ) {
    found.push(`operation ${JSON.stringify(record.operation)}`);
  }

  if (record.effectiveAt !== null) {
    if (fields.effectiveDate === undefined) found.push('a date without a date field');
    if (!(record.effectiveAt instanceof Date) || !Number.isFinite(record.effectiveAt.getTime())) {
      found.push('effective date is not a valid date');
    }
  }
  if (record.email !== null && (fields.email === undefined || !EMAIL.test(record.email))) {
    found.push('e-mail is not an address');
  }
  if (
    record.language !== null &&
    (fields.language === undefined || !LANGUAGE.test(record.language))
  ) {
    found.push(`language ${JSON.stringify(record.language)}`);
  }
  return found;
}

/** Modules: sorted, unique, module codes, the offer's all there, none from nowhere. */
function moduleViolations(rules: MappingRules, record: CustomerRecord): string[] {
  const { fields, offers, mode } = rules;
  const { modules } = record;
  const found: string[] = [];
  if (!Array.isArray(modules)) return ['modules is not a list'];
  const sorted = [...new Set(modules)].sort();
  if (sorted.join('\n') !== modules.join('\n')) found.push('modules are not sorted and unique');
  const fromOffer = record.offer === null ? [] : (offers[record.offer] ?? []);
  for (const module of fromOffer) {
    if (!modules.includes(module)) found.push(`offer module ${module} missing`);
  }
  const optionResults = optionResultsOf(fields.options);
  for (const module of modules) {
    if (!MODULE_CODE.test(module)) found.push(`module ${JSON.stringify(module)} is not a code`);
    if (fromOffer.includes(module)) continue;
    if (optionResults !== 'any' && !optionResults.has(module)) {
      found.push(`module ${module} comes from neither the offer nor an option`);
    }
  }
  const mayBeEmpty =
    mode === 'snapshot'
      ? record.status === 'cancelled'
      : MODULELESS_OPERATIONS.has(`${record.operation}`);
  if (modules.length === 0 && !mayBeEmpty) found.push('no module');
  return found;
}

/**
 * The module codes options can give: the map's results (a default goes through the map too),
 * or any code without a map.
 */
function optionResultsOf(spec: FieldsSettings['options']): Set<string> | 'any' {
  if (spec === undefined) return new Set();
  if (spec.map === undefined) return 'any';
  const results = new Set<string>(Object.values(spec.map));
  if (spec.mapDefault !== undefined) results.add(spec.mapDefault);
  return results;
}

/** The text of the source a field reads in `source`, joined when several; undefined if none. */
function sourceTextOf(
  rules: MappingRules,
  field: string | null,
  source: SourceRecordLike,
): string | undefined {
  const spec = field === null ? undefined : rules.fields[field as CanonicalField];
  const raw = spec === undefined ? undefined : source.values[String(spec.from)];
  return raw === undefined ? undefined : typeof raw === 'string' ? raw : raw.join(', ');
}

/**
 * Everything wrong with a reject: it must carry the source line, a canonical field, a reason,
 * a readable ref or none, and neither value nor reason may repeat the record's e-mail, unless
 * the rejected field's own text holds it (the ISP put the address there).
 */
export function rejectViolations(
  rules: MappingRules,
  reject: MappingReject,
  source: SourceRecordLike,
): string[] {
  const found: string[] = [];
  const { line } = source;
  if (reject.line !== line) found.push(`reject line ${reject.line}, source line ${line}`);
  if (!CANONICAL_FIELDS.includes(reject.field as CanonicalField)) {
    found.push(`reject field ${JSON.stringify(reject.field)} is not a canonical field`);
  }
  if (typeof reject.reason !== 'string' || reject.reason.trim().length === 0) {
    found.push('reject without a reason');
  }
  if (reject.field === 'email' && reject.value !== null) found.push('reject repeats an e-mail');
  if (reject.customerRef !== null) {
    const problems = refViolations(reject.customerRef, rules.fields.customerRef);
    if (problems.length > 0) found.push(`reject keeps an unusable ref: ${problems.join('; ')}`);
  }
  const emailText = sourceTextOf(rules, 'email', source);
  const ownText = reject.field === 'email' ? undefined : sourceTextOf(rules, reject.field, source);
  const isOwnText = emailText !== undefined && ownText?.includes(emailText.trim()) === true;
  if (!isOwnText) found.push(...privacyViolations(reject, emailText));
  return found;
}

/** A reject never repeats an e-mail, neither as its value nor inside its reason. */
export function privacyViolations(
  reject: { value?: string | null; reason: string },
  emailText: string | undefined,
): string[] {
  const email = emailText?.trim();
  // A short or address-less text can occur in a reason by chance ("a", "fr").
  if (email === undefined || email.length < 6 || !email.includes('@')) return [];
  const found: string[] = [];
  if (reject.value?.includes(email)) found.push('reject value holds the e-mail');
  if (reject.reason.includes(email)) found.push('reject reason holds the e-mail');
  return found;
}

/** Everything wrong with one mapping result of `source`. */
export function resultViolations(
  rules: MappingRules,
  result: MappingResult,
  source: SourceRecordLike,
): string[] {
  return result.ok
    ? recordViolations(rules, result.record, source.line)
    : rejectViolations(rules, result.reject, source);
}
