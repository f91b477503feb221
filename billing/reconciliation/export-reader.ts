/**
 * Reads the ISP's billing export as a stream, through the intake's format plug-ins, and turns
 * each record into an export line (customer ref, the modules its code bills, the amount) or a
 * reject naming file, line, field and reason. A reject never stops the read; a problem with the
 * whole file (malformed CSV or XML, a missing column, an empty file) is thrown by the format as
 * an `IspDataError` naming the line, and then nothing of the file is reconciled.
 */
import type { Readable } from 'node:stream';
import type { ReconciliationSettings } from '../../config/reconciliation-schema.js';
import type { SourceValue } from '../../connectors/formats/format.js';
import { formatFor } from '../../connectors/formats/registry.js';
import { ConfigError } from '../../platform/errors.js';
import { cachedMicros } from './money.js';

/** One usable line of the export. */
export interface ExportLine {
  kind: 'line';
  ref: string;
  line: number;
  /** Modules the line's code bills, as configured: sorted, joined with `+`. */
  modules: string;
  amountMicros: bigint;
}

/** Why one record of the export was refused. `ref` is kept when it was readable. */
export interface ExportReject {
  kind: 'reject';
  line: number;
  /** Field of `billing.reconciliation.fields` at fault, or the format's source name. */
  field: string | null;
  /** The offending value, never for the customer ref. */
  value: string | null;
  reason: string;
  ref: string | null;
}

export type ExportItem = ExportLine | ExportReject;

/** Lookups compiled once from the settings, so that a record costs no config work. */
export interface ExportRules {
  readonly settings: ReconciliationSettings;
  /** Code (after the case step) to the modules it bills: sorted, joined with `+`. */
  readonly codes: ReadonlyMap<string, string>;
  readonly refPattern: RegExp | undefined;
  readonly period: string;
  readonly periodOf: ((text: string) => string | undefined) | undefined;
}

/**
 * Compiles the reading rules. `offers` and `modules` are the ISP's, for the default code map:
 * an offer code bills its modules and a module code bills itself.
 */
export function compileExportRules(
  settings: ReconciliationSettings,
  period: string,
  defaults: { offers: Readonly<Record<string, readonly string[]>>; modules: readonly string[] },
): ExportRules {
  const entries: [string, readonly string[]][] = settings.codes
    ? Object.entries(settings.codes)
    : [
        ...defaults.modules.map((m): [string, string[]] => [m, [m]]),
        ...Object.entries(defaults.offers),
      ];
  const letterCase = settings.fields.code.case;
  const codes = new Map<string, string>();
  for (const [code, modules] of entries) {
    const key = applyCase(code, letterCase);
    codes.set(key, [...new Set(modules)].sort().join('+'));
  }
  let refPattern: RegExp | undefined;
  const source = settings.fields.customerRef.pattern;
  if (source !== undefined) {
    try {
      refPattern = new RegExp(source, 'u');
    } catch {
      throw new ConfigError(
        'CONFIG_INVALID',
        'billing.reconciliation.fields.customerRef.pattern is not a valid regular expression',
      );
    }
  }
  const periodField = settings.fields.period;
  return {
    settings,
    codes,
    refPattern,
    period,
    periodOf: periodField ? compilePeriodFormat(periodField.format) : undefined,
  };
}

function applyCase(text: string, letterCase: 'upper' | 'lower' | undefined): string {
  if (letterCase === 'upper') return text.toUpperCase();
  if (letterCase === 'lower') return text.toLowerCase();
  return text;
}

/** `MM/yyyy` → a reader of `12/2026` giving `2026-12`, or undefined for another shape. */
export function compilePeriodFormat(format: string): (text: string) => string | undefined {
  const order: string[] = [];
  const source = format.replace(/yyyy|MM|dd|[/.\- ]/g, (token) => {
    if (token === 'yyyy' || token === 'MM') {
      order.push(token);
      return token === 'yyyy' ? '(\\d{4})' : '(0[1-9]|1[0-2])';
    }
    if (token === 'dd') return '(?:0[1-9]|[12]\\d|3[01])';
    return `\\${token === ' ' ? 's' : token}`;
  });
  const pattern = new RegExp(`^${source}$`);
  return (text) => {
    const match = pattern.exec(text);
    if (!match) return undefined;
    const year = match[order.indexOf('yyyy') + 1];
    const month = match[order.indexOf('MM') + 1];
    return `${year}-${month}`;
  };
}

const MAX_SHOWN_VALUE = 40;

/** Control characters have no place in a customer ref (and would break the sort entries). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;

function shown(value: string): string {
  return value.length > MAX_SHOWN_VALUE ? `${value.slice(0, MAX_SHOWN_VALUE)}…` : value;
}

/** One value of a record, or the reason it has none usable. */
function single(
  values: Record<string, SourceValue>,
  from: string | number,
): { text: string } | { problem: string } {
  const value = values[String(from)];
  if (value === undefined) return { text: '' };
  if (typeof value === 'string') return { text: value.trim() };
  if (value.length === 1) return { text: (value[0] as string).trim() };
  return { problem: `expected one value, found ${value.length}` };
}

/** The sources the format must extract, in the format's terms. */
export function wantedSources(settings: ReconciliationSettings): (string | number)[] {
  const { customerRef, code, amount, period } = settings.fields;
  const wanted = [customerRef.from, code.from, amount.from];
  if (period) wanted.push(period.from);
  return [...new Set(wanted)];
}

/**
 * Every record of the export in file order, as a line or a reject.
 *
 * @throws IspDataError for a file that cannot be read at all (see the module comment).
 */
export async function* readExport(
  input: Readable,
  fileName: string,
  rules: ExportRules,
): AsyncGenerator<ExportItem> {
  const { settings } = rules;
  const format = formatFor(settings.format);
  const items = format.read(input, settings.format, {
    fileName,
    wanted: wantedSources(settings),
  });
  try {
    for await (const item of items) {
      if (item.kind === 'reject') {
        const field = item.field ?? null;
        yield {
          kind: 'reject',
          line: item.line,
          field,
          value: null,
          reason: item.reason,
          ref: null,
        };
        continue;
      }
      yield toExportItem(item.line, item.values, rules);
    }
  } finally {
    input.destroy();
  }
}

/** Maps one record; exported for the unit tests of each rule. */
export function toExportItem(
  line: number,
  values: Record<string, SourceValue>,
  rules: ExportRules,
): ExportItem {
  const { fields } = rules.settings;
  const reject = (field: string, value: string | null, reason: string, ref: string | null) =>
    ({ kind: 'reject', line, field, value, reason, ref }) as const;

  const refValue = single(values, fields.customerRef.from);
  if ('problem' in refValue) return reject('customerRef', null, refValue.problem, null);
  const ref = refValue.text;
  if (ref === '') return reject('customerRef', null, 'customer ref is empty', null);
  if (CONTROL.test(ref)) {
    return reject('customerRef', null, 'customer ref holds a control character', null);
  }
  if (rules.refPattern && !rules.refPattern.test(ref)) {
    return reject('customerRef', null, 'customer ref does not match the configured pattern', null);
  }

  const codeValue = single(values, fields.code.from);
  if ('problem' in codeValue) return reject('code', null, codeValue.problem, ref);
  if (codeValue.text === '') return reject('code', null, 'code is empty', ref);
  const code = applyCase(codeValue.text, fields.code.case);
  const modules = rules.codes.get(code);
  if (modules === undefined) {
    return reject('code', shown(code), `code "${shown(code)}" is not in the code map`, ref);
  }

  const amountValue = single(values, fields.amount.from);
  if ('problem' in amountValue) return reject('amount', null, amountValue.problem, ref);
  const amountText = amountValue.text;
  if (amountText === '') return reject('amount', null, 'amount is empty', ref);
  const separator = fields.amount.decimalSeparator;
  const isOtherSeparator = amountText.includes(separator === '.' ? ',' : '.');
  const amountMicros = isOtherSeparator
    ? undefined
    : cachedMicros(separator === ',' ? amountText.replace(',', '.') : amountText);
  if (amountMicros === undefined) {
    const spelled = separator === ',' ? 'such as -12,50' : 'such as -12.50';
    return reject(
      'amount',
      shown(amountText),
      `amount "${shown(amountText)}" is not a decimal ${spelled} (at most 6 decimals, no unit or thousands separator)`,
      ref,
    );
  }

  if (fields.period && rules.periodOf) {
    const periodValue = single(values, fields.period.from);
    if ('problem' in periodValue) return reject('period', null, periodValue.problem, ref);
    const period = rules.periodOf(periodValue.text);
    if (period === undefined) {
      const text = shown(periodValue.text);
      return reject('period', text, `period "${text}" is not written ${fields.period.format}`, ref);
    }
    if (period !== rules.period) {
      return reject(
        'period',
        shown(periodValue.text),
        `line bills ${period}, not ${rules.period}`,
        ref,
      );
    }
  }

  return { kind: 'line', ref, line, modules, amountMicros };
}
