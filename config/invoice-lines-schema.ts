/**
 * How invoice lines reach an ISP (`billing.invoiceLines`): a file in its own format (CSV, XML or
 * fixed width) or a push to its billing system's HTTP endpoint. Everything is declared here, no
 * code per ISP. The words mirror the intake formats (`delimiter`, `quote`, `header`, `encoding`,
 * `recordType`, `start`/`length`, XML paths such as `Client/@id`), so an integrator meets the
 * same vocabulary in both directions.
 *
 * Every written value is a "value": one line field (`field: amount`), a constant (`value:
 * "FAC"`) or a template (`template: "Sécurité {module}"`), optionally translated (`map`) and
 * formatted (`date`, `decimals`). Header, root and trailer records take file values instead
 * (period, count, total). Contradictions are refused here, at config check, with the path and
 * the reason, never on the first month-end run. The writers are in `billing/invoice-lines/`.
 */
import { z } from 'zod';
import { encoding, secretString, singleChar } from './fields.js';

/** How each line field is formatted; the writers switch on these. */
export const LINE_FIELD_KINDS = {
  lineId: 'text',
  kind: 'text',
  period: 'period',
  servicePeriod: 'period',
  servicePeriodStart: 'date',
  servicePeriodEnd: 'date',
  ispId: 'text',
  customerRef: 'text',
  subscriberId: 'text',
  licenceId: 'text',
  module: 'text',
  days: 'integer',
  daysInPeriod: 'integer',
  quantity: 'decimal',
  unitPrice: 'decimal',
  amount: 'decimal',
  currency: 'text',
  activationEventId: 'text',
  activatedAt: 'instant',
  idempotencyKey: 'text',
} as const;

/** Values of the whole file (or, for a push, of one chunk): headers, roots, trailers. */
export const FILE_FIELD_KINDS = {
  period: 'period',
  periodStart: 'date',
  periodEnd: 'date',
  ispId: 'text',
  currency: 'text',
  count: 'integer',
  total: 'decimal',
} as const;

export type LineField = keyof typeof LINE_FIELD_KINDS;
export type FileField = keyof typeof FILE_FIELD_KINDS;
export type FieldKind = (typeof LINE_FIELD_KINDS)[LineField];

/** File values known only once the last line is written. */
export const TRAILING_FILE_FIELDS: readonly FileField[] = ['count', 'total'];

const LINE_FIELD_NAMES = Object.keys(LINE_FIELD_KINDS) as [LineField, ...LineField[]];
const FILE_FIELD_NAMES = Object.keys(FILE_FIELD_KINDS) as [FileField, ...FileField[]];

/** yyyy, MM, dd, HH, mm, ss and separators, or `iso`. */
export const OUTPUT_DATE_PATTERN = /^(iso|(yyyy|MM|dd|HH|mm|ss|[/.\-: T_])+)$/;

const datePattern = z
  .string()
  .regex(
    OUTPUT_DATE_PATTERN,
    'expected iso or a pattern of yyyy, MM, dd, HH, mm, ss and separators, e.g. dd/MM/yyyy',
  );

const decimalSeparator = z
  .enum(['.', ','])
  .default('.')
  .describe('Decimal mark of amounts, quantities and prices: "." or "," (decimal comma).');

const dateFormat = datePattern
  .default('yyyy-MM-dd')
  .describe(
    'How dates are written unless a value says otherwise: iso, or a pattern such as dd/MM/yyyy. activatedAt is written in the ISP time zone.',
  );

const fileName = z
  .string()
  .min(1)
  .regex(/^[^/\\]+$/, 'a file name, without folders')
  .refine((name) => !/\{(?!isp\}|period\})/.test(name), 'placeholders are {isp} and {period}');

/** The fields shared by every value: what it holds and how it is formatted. */
function valueShape<F extends readonly [string, ...string[]]>(fields: F, scope: string) {
  return {
    field: z
      .enum(fields)
      .optional()
      .describe(`The ${scope} field written here: ${fields.join(', ')}.`),
    value: z
      .union([z.string(), z.number().transform(String)])
      .optional()
      .describe('A constant written as it is, e.g. "FAC".'),
    template: z
      .string()
      .optional()
      .describe(
        `Text with {name} placeholders of ${scope} fields, each formatted as a field would be, e.g. "Licence {module} {servicePeriod}".`,
      ),
    map: z
      .record(z.string(), z.string())
      .optional()
      .describe(
        'Translates the field value, e.g. { charge: FAC, adjustment: REG }; a value not in the map stops the write.',
      ),
    date: datePattern
      .optional()
      .describe(
        'Overrides dateFormat for this date value; a period (YYYY-MM by default) takes yyyy and MM only.',
      ),
    decimals: z
      .int()
      .min(0)
      .max(6)
      .optional()
      .describe(
        'Exact number of decimals of an amount, quantity or price; pads with zeros, never rounds (a value with more decimals stops the write).',
      ),
  };
}

interface ValueSpec {
  field?: string | undefined;
  value?: string | undefined;
  template?: string | undefined;
  map?: Record<string, string> | undefined;
  date?: string | undefined;
  decimals?: number | undefined;
}

type Issue = { path: PropertyKey[]; message: string };

/**
 * What is wrong with one value, relative to its own path. `kinds` are the fields it may name;
 * `trailing` says whether count and total are known where it is written.
 */
export function valueIssues(
  spec: ValueSpec,
  kinds: Readonly<Record<string, FieldKind>>,
  options: { trailing: boolean; where: string },
): Issue[] {
  const issues: Issue[] = [];
  const given = (['field', 'value', 'template'] as const).filter((k) => spec[k] !== undefined);
  if (given.length !== 1) {
    const message =
      given.length === 0
        ? 'give one of field, value or template'
        : `give only one of field, value or template (found ${given.join(' and ')})`;
    return [{ path: [], message }];
  }
  const named: string[] = [];
  if (spec.field !== undefined) named.push(spec.field);
  if (spec.template !== undefined) {
    const problem = templateProblem(spec.template, kinds);
    if (typeof problem === 'string') issues.push({ path: ['template'], message: problem });
    else named.push(...problem);
  }
  for (const name of named) {
    if (!options.trailing && TRAILING_FILE_FIELDS.includes(name as FileField)) {
      const message = `${name} is only known after the last line: ${options.where}`;
      issues.push({ path: [spec.field !== undefined ? 'field' : 'template'], message });
    }
  }
  const kind = spec.field === undefined ? undefined : kinds[spec.field];
  if (spec.map !== undefined) {
    if (kind !== 'text') {
      issues.push({ path: ['map'], message: 'map translates a text field only' });
    } else if (spec.field === 'kind') {
      const missing = ['charge', 'adjustment'].filter((k) => !Object.hasOwn(spec.map ?? {}, k));
      if (missing.length > 0) {
        issues.push({ path: ['map'], message: `map of kind needs ${missing.join(' and ')}` });
      }
    }
  }
  if (spec.date !== undefined) {
    if (kind !== 'date' && kind !== 'period' && kind !== 'instant') {
      issues.push({ path: ['date'], message: 'date formats a date or period field only' });
    } else {
      const problem = datePatternProblem(spec.date, kind);
      if (problem) issues.push({ path: ['date'], message: problem });
    }
  }
  if (spec.decimals !== undefined && kind !== 'decimal') {
    const message = 'decimals formats an amount, quantity, price or total only';
    issues.push({ path: ['decimals'], message });
  }
  return issues;
}

/** The field names a template uses, or why it cannot be written. */
export function templateProblem(
  template: string,
  kinds: Readonly<Record<string, FieldKind>>,
): string | string[] {
  const names: string[] = [];
  const rest = template.replace(/\{([^{}]*)\}/g, (_, name: string) => {
    names.push(name);
    return '';
  });
  if (/[{}]/.test(rest)) return 'unbalanced { or } in template';
  const unknown = names.filter((n) => !Object.hasOwn(kinds, n));
  if (unknown.length > 0) {
    return `unknown placeholder {${unknown[0]}}; known: ${Object.keys(kinds).join(', ')}`;
  }
  return names;
}

/** Why a date pattern does not suit a kind of value, if it does not. */
export function datePatternProblem(pattern: string, kind: FieldKind): string | undefined {
  if (pattern === 'iso') return undefined;
  const has = (token: string) => pattern.includes(token);
  if (kind === 'period') {
    if (has('dd') || has('HH') || has('mm') || has('ss')) {
      return 'a period is a month: its pattern takes yyyy and MM only';
    }
    return has('yyyy') && has('MM') ? undefined : 'a period pattern needs yyyy and MM';
  }
  if (!(has('yyyy') && has('MM') && has('dd'))) return 'a date pattern needs yyyy, MM and dd';
  if (kind === 'date' && (has('HH') || has('mm') || has('ss'))) {
    return 'this value is a day: its pattern cannot hold HH, mm or ss';
  }
  return undefined;
}

function addIssues(ctx: z.RefinementCtx, base: PropertyKey[], issues: Issue[]): void {
  for (const issue of issues) {
    ctx.addIssue({ code: 'custom', path: [...base, ...issue.path], message: issue.message });
  }
}

const lineValueShape = valueShape(LINE_FIELD_NAMES, 'line');
const fileValueShape = valueShape(FILE_FIELD_NAMES, 'file');

// ---------------------------------------------------------------------------------------------
// CSV

const csvColumnSchema = z
  .strictObject({
    header: z
      .string()
      .min(1)
      .optional()
      .describe('Column name in the header row; defaults to the field name.'),
    ...lineValueShape,
  })
  .describe('One column of the CSV, in order.');

export const csvInvoiceLinesSchema = z
  .strictObject({
    type: z.literal('csv'),
    fileName: fileName
      .default('invoice-lines-{isp}-{period}.csv')
      .describe('Name of the file; {isp} and {period} (YYYY-MM) are replaced.'),
    encoding: encoding.default('utf-8'),
    bom: z
      .boolean()
      .default(false)
      .describe('Start a utf-8 file with a byte-order mark (some spreadsheet imports want one).'),
    delimiter: singleChar.default(',').describe('Separates the fields of a row, e.g. ";".'),
    quote: singleChar
      .default('"')
      .describe(
        'Encloses a field that holds the delimiter, a quote or a line break; doubled inside.',
      ),
    quoting: z
      .enum(['needed', 'all'])
      .default('needed')
      .describe('needed: quote only the fields that must be; all: quote every field.'),
    header: z.boolean().default(true).describe('Write a first row with the column names.'),
    lineEnding: z
      .enum(['crlf', 'lf'])
      .default('crlf')
      .describe('End of each row: crlf (RFC 4180, the default) or lf.'),
    decimalSeparator,
    dateFormat,
    columns: z.array(csvColumnSchema).min(1).describe('The columns, in order.'),
  })
  .superRefine((csv, ctx) => {
    if (csv.quote === csv.delimiter) {
      ctx.addIssue({
        code: 'custom',
        path: ['quote'],
        message: 'quote and delimiter are the same',
      });
    }
    if (/[\r\n]/.test(csv.delimiter) || /[\r\n]/.test(csv.quote)) {
      const message = 'a line break cannot be the delimiter or the quote';
      ctx.addIssue({ code: 'custom', path: ['delimiter'], message });
    }
    if (csv.delimiter === csv.decimalSeparator) {
      const message = `the delimiter and the decimal separator are both "${csv.delimiter}": every amount would need quotes; pick another delimiter`;
      ctx.addIssue({ code: 'custom', path: ['decimalSeparator'], message });
    }
    if (csv.bom && csv.encoding !== 'utf-8') {
      const message = `a byte-order mark is for utf-8 files, not ${csv.encoding}`;
      ctx.addIssue({ code: 'custom', path: ['bom'], message });
    }
    const seen = new Map<string, number>();
    csv.columns.forEach((column, i) => {
      const where = 'a CSV row has no trailer';
      addIssues(
        ctx,
        ['columns', i],
        valueIssues(column, LINE_FIELD_KINDS, { trailing: false, where }),
      );
      if (!csv.header) return;
      const name = column.header ?? column.field;
      if (name === undefined) {
        const message = 'a column with a value or template needs a header name';
        ctx.addIssue({ code: 'custom', path: ['columns', i, 'header'], message });
        return;
      }
      const first = seen.get(name);
      if (first !== undefined) {
        const message = `header "${name}" is already the name of column ${first + 1}`;
        ctx.addIssue({ code: 'custom', path: ['columns', i, 'header'], message });
      } else seen.set(name, i);
    });
  })
  .describe('Invoice lines as delimited text, one row per line.');

// ---------------------------------------------------------------------------------------------
// XML

const XML_NAME = /^([A-Za-z_][\w.-]*:)?[A-Za-z_][\w.-]*$/;
const XML_PATH =
  /^(([A-Za-z_][\w.-]*:)?[A-Za-z_][\w.-]*\/)*(@?([A-Za-z_][\w.-]*:)?[A-Za-z_][\w.-]*)$/;

const xmlName = z
  .string()
  .regex(XML_NAME, 'expected an element name, with an optional prefix: Ligne or at:Ligne');

function xmlFieldSchema<S extends Record<string, z.ZodType>>(shape: S) {
  return z.strictObject({
    path: z
      .string()
      .regex(XML_PATH, 'expected a path such as Montant, @id or Client/@ref')
      .describe(
        'Where the value goes, below the element: a child (Montant), an attribute (@id) or deeper (Client/@ref); prefixes allowed.',
      ),
    ...shape,
  });
}

const xmlLineFieldSchema = xmlFieldSchema(lineValueShape).describe('One value of each line.');
const xmlFileFieldSchema = xmlFieldSchema(fileValueShape).describe('One value of the file.');

const xmlElementSchema = <F extends z.ZodType>(field: F, what: string) =>
  z.strictObject({
    element: xmlName.describe(`Name of the ${what} element, e.g. at:Ligne.`),
    fields: z.array(field).default([]).describe('Attributes and child elements, in order.'),
  });

/** The XML vocabulary shared by the file and by an XML push body. */
function xmlShape(rootWhere: string) {
  return {
    namespaces: z
      .record(
        z.string().regex(/^[A-Za-z_][\w.-]*$/, 'expected a prefix such as at'),
        z.string().min(1),
      )
      .default({})
      .describe('Prefix to namespace URI, declared on the root element, e.g. { at: "urn:..." }.'),
    defaultNamespace: z
      .string()
      .min(1)
      .optional()
      .describe('Namespace of the names written without a prefix.'),
    root: xmlElementSchema(xmlFileFieldSchema, 'root').describe(
      `The root element and its own values (${rootWhere}).`,
    ),
    line: xmlElementSchema(xmlLineFieldSchema, 'line').describe('The element written per line.'),
    trailer: xmlElementSchema(xmlFileFieldSchema, 'trailer')
      .optional()
      .describe('An element after the last line, inside the root: count and total go here.'),
    indent: z
      .int()
      .min(0)
      .max(8)
      .default(2)
      .describe('Spaces per nesting level; 0 writes no line breaks between elements.'),
    decimalSeparator,
    dateFormat,
  };
}

type XmlElement = { element: string; fields: (ValueSpec & { path: string })[] };
type XmlShape = {
  namespaces: Record<string, string>;
  root: XmlElement;
  line: XmlElement;
  trailer?: XmlElement | undefined;
};

function prefixOf(name: string): string | undefined {
  const at = name.indexOf(':');
  return at === -1 ? undefined : name.slice(0, at).replace(/^@/, '');
}

function checkXmlElement(
  element: XmlElement,
  base: PropertyKey[],
  kinds: Readonly<Record<string, FieldKind>>,
  trailing: boolean,
  namespaces: Record<string, string>,
  ctx: z.RefinementCtx,
): void {
  const undeclared = (name: string) => {
    const prefix = prefixOf(name);
    return prefix !== undefined && prefix !== 'xml' && !Object.hasOwn(namespaces, prefix);
  };
  if (undeclared(element.element)) {
    const message = `prefix ${prefixOf(element.element)} is not declared in namespaces`;
    ctx.addIssue({ code: 'custom', path: [...base, 'element'], message });
  }
  const texts = new Set<string>();
  const parents = new Set<string>();
  const paths = new Set<string>();
  element.fields.forEach((field, i) => {
    const at = [...base, 'fields', i];
    const where = 'put it in the trailer';
    addIssues(ctx, at, valueIssues(field, kinds, { trailing, where }));
    const steps = field.path.split('/');
    const bad = steps.find(undeclared);
    if (bad !== undefined) {
      const message = `prefix ${prefixOf(bad)} is not declared in namespaces`;
      ctx.addIssue({ code: 'custom', path: [...at, 'path'], message });
    }
    if (paths.has(field.path)) {
      const message = `${field.path} is written twice`;
      ctx.addIssue({ code: 'custom', path: [...at, 'path'], message });
    }
    paths.add(field.path);
    const last = steps[steps.length - 1] as string;
    const elementSteps = last.startsWith('@') ? steps.slice(0, -1) : steps;
    for (let n = 1; n < elementSteps.length; n++) parents.add(elementSteps.slice(0, n).join('/'));
    if (!last.startsWith('@')) texts.add(field.path);
  });
  for (const path of texts) {
    if (parents.has(path)) {
      const index = element.fields.findIndex((f) => f.path === path);
      const message = `${path} holds a value and child elements; XML mixed content is not written`;
      ctx.addIssue({ code: 'custom', path: [...base, 'fields', index, 'path'], message });
    }
  }
}

function checkXml(xml: XmlShape, ctx: z.RefinementCtx, rootTrailing: boolean): void {
  const { namespaces } = xml;
  checkXmlElement(xml.root, ['root'], FILE_FIELD_KINDS, rootTrailing, namespaces, ctx);
  checkXmlElement(xml.line, ['line'], LINE_FIELD_KINDS, false, namespaces, ctx);
  if (xml.trailer) {
    checkXmlElement(xml.trailer, ['trailer'], FILE_FIELD_KINDS, true, namespaces, ctx);
    if (xml.trailer.element === xml.line.element) {
      const message = 'the trailer element must differ from the line element';
      ctx.addIssue({ code: 'custom', path: ['trailer', 'element'], message });
    }
  }
}

export const xmlInvoiceLinesSchema = z
  .strictObject({
    type: z.literal('xml'),
    fileName: fileName
      .default('invoice-lines-{isp}-{period}.xml')
      .describe('Name of the file; {isp} and {period} (YYYY-MM) are replaced.'),
    encoding: encoding.default('utf-8'),
    ...xmlShape('written before the lines: no count or total'),
  })
  .superRefine((xml, ctx) => checkXml(xml, ctx, false))
  .describe('Invoice lines as XML: a root element, one element per line, an optional trailer.');

// ---------------------------------------------------------------------------------------------
// Fixed width

const position = {
  start: z.int().min(1).describe('1-based position of the first character.'),
  length: z.int().min(1).max(1_000).describe('Number of characters.'),
};

const numberLayout = {
  align: z
    .enum(['left', 'right'])
    .optional()
    .describe('Where the value sits in its width; right for numbers, left for text by default.'),
  pad: singleChar
    .optional()
    .describe('Fills the rest of the width; "0" for numbers, a space for text by default.'),
  impliedDecimals: z
    .boolean()
    .default(false)
    .describe(
      'Write the digits without a decimal mark (1.20 with decimals 2 is 120); needs decimals.',
    ),
  sign: z
    .enum(['leading', 'leading-always', 'trailing-always'])
    .default('leading')
    .describe(
      'leading: "-" before a negative number only; leading-always: "+" or "-" first; trailing-always: "+" or "-" last.',
    ),
  truncate: z
    .boolean()
    .default(false)
    .describe(
      'Cut a text longer than the width; by default a value that does not fit stops the write.',
    ),
};

const fixedLineFieldSchema = z
  .strictObject({ ...position, ...lineValueShape, ...numberLayout })
  .describe('One field of the detail record.');
const fixedFileFieldSchema = z
  .strictObject({ ...position, ...fileValueShape, ...numberLayout })
  .describe('One field of the header or trailer record.');

const fieldName = z.string().regex(/^[A-Za-z_][\w-]*$/, 'expected a name such as montant');

const recordSchema = <F extends z.ZodType>(field: F, what: string) =>
  z.strictObject({
    code: z
      .string()
      .min(1)
      .optional()
      .describe(`Record-type code of the ${what}, written at recordType.`),
    fields: z.record(fieldName, field).describe('Field name to its position and value.'),
  });

type FixedField = ValueSpec & {
  start: number;
  length: number;
  impliedDecimals: boolean;
  truncate: boolean;
};
type FixedRecord = { code?: string | undefined; fields: Record<string, FixedField> };

export const fixedWidthInvoiceLinesSchema = z
  .strictObject({
    type: z.literal('fixed-width'),
    fileName: fileName
      .default('invoice-lines-{isp}-{period}.txt')
      .describe('Name of the file; {isp} and {period} (YYYY-MM) are replaced.'),
    encoding: encoding.default('utf-8'),
    lineEnding: z
      .enum(['crlf', 'lf'])
      .default('crlf')
      .describe('End of each record: crlf (the default) or lf.'),
    recordLength: z
      .int()
      .min(1)
      .max(10_000)
      .optional()
      .describe('Width of every record, padded with spaces; by default the end of the last field.'),
    recordType: z
      .strictObject(position)
      .optional()
      .describe('Where the record-type code sits; needed when a record has a code.'),
    decimalSeparator,
    dateFormat,
    header: recordSchema(fixedFileFieldSchema, 'header')
      .optional()
      .describe('A first record; written before the lines, so it cannot hold count or total.'),
    detail: recordSchema(fixedLineFieldSchema, 'details').describe('The record written per line.'),
    trailer: recordSchema(fixedFileFieldSchema, 'trailer')
      .optional()
      .describe('A last record: count (number of detail records) and total (sum of amounts).'),
  })
  .superRefine((fixed, ctx) => {
    const records: [string, FixedRecord | undefined, Record<string, FieldKind>, boolean][] = [
      ['header', fixed.header, FILE_FIELD_KINDS, false],
      ['detail', fixed.detail, LINE_FIELD_KINDS, false],
      ['trailer', fixed.trailer, FILE_FIELD_KINDS, true],
    ];
    const codes = new Map<string, string>();
    for (const [name, record, kinds, trailing] of records) {
      if (!record) continue;
      checkFixedRecord(fixed, name, record, kinds, trailing, ctx);
      if (record.code === undefined) continue;
      const other = codes.get(record.code);
      if (other !== undefined) {
        const message = `code ${record.code} is already the ${other}'s`;
        ctx.addIssue({ code: 'custom', path: [name, 'code'], message });
      }
      codes.set(record.code, name);
    }
    const coded = records.filter(([, r]) => r?.code !== undefined).map(([n]) => n);
    if (fixed.recordType && coded.length < records.filter(([, r]) => r).length) {
      const uncoded = records.find(([, r]) => r && r.code === undefined)?.[0] as string;
      const message = 'every record needs a code when recordType is set';
      ctx.addIssue({ code: 'custom', path: [uncoded, 'code'], message });
    }
    if (!fixed.recordType && coded.length > 0) {
      const message = 'a record code needs recordType (where the code is written)';
      ctx.addIssue({ code: 'custom', path: [coded[0] as string, 'code'], message });
    }
  })
  .describe(
    'Invoice lines as fixed-width records: an optional header, one detail per line, an optional trailer.',
  );

function checkFixedRecord(
  fixed: {
    recordType?: { start: number; length: number } | undefined;
    recordLength?: number | undefined;
  },
  name: string,
  record: FixedRecord,
  kinds: Readonly<Record<string, FieldKind>>,
  trailing: boolean,
  ctx: z.RefinementCtx,
): void {
  const spans: { label: string; start: number; end: number }[] = [];
  if (fixed.recordType) {
    const { start, length } = fixed.recordType;
    spans.push({ label: 'recordType', start, end: start + length - 1 });
    if (record.code !== undefined && record.code.length !== length) {
      const message = `code ${record.code} is ${record.code.length} characters; recordType.length is ${length}`;
      ctx.addIssue({ code: 'custom', path: [name, 'code'], message });
    }
  }
  for (const [label, field] of Object.entries(record.fields)) {
    const at = [name, 'fields', label];
    const where = 'put it in the trailer';
    addIssues(ctx, at, valueIssues(field, kinds, { trailing, where }));
    const end = field.start + field.length - 1;
    const clash = spans.find((s) => field.start <= s.end && s.start <= end);
    if (clash) {
      const message = `positions ${field.start}-${end} overlap ${clash.label} (${clash.start}-${clash.end})`;
      ctx.addIssue({ code: 'custom', path: [...at, 'start'], message });
    }
    spans.push({ label: `${name}.fields.${label}`, start: field.start, end });
    if (fixed.recordLength !== undefined && end > fixed.recordLength) {
      const message = `ends at ${end}, past recordLength ${fixed.recordLength}`;
      ctx.addIssue({ code: 'custom', path: [...at, 'length'], message });
    }
    const kind = field.field === undefined ? undefined : kinds[field.field];
    const numeric = kind === 'decimal' || kind === 'integer';
    if (field.impliedDecimals && (kind !== 'decimal' || field.decimals === undefined)) {
      const message = 'impliedDecimals needs a decimal field and decimals (how many are implied)';
      ctx.addIssue({ code: 'custom', path: [...at, 'impliedDecimals'], message });
    }
    if (field.truncate && numeric) {
      const message = 'a number is never cut: widen the field instead';
      ctx.addIssue({ code: 'custom', path: [...at, 'truncate'], message });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP push

const jsonFieldSchema = <S extends Record<string, z.ZodType>>(shape: S, what: string) =>
  z
    .strictObject({
      name: z.string().min(1).describe('JSON property name.'),
      ...shape,
      as: z
        .enum(['string', 'number'])
        .default('string')
        .describe(
          'number writes a JSON number (exact digits, "." as decimal mark); string by default.',
        ),
    })
    .describe(`One property of ${what}.`);

type JsonField = ValueSpec & { name: string; as: 'string' | 'number' };

function checkJsonFields(
  fields: JsonField[],
  base: PropertyKey[],
  kinds: Readonly<Record<string, FieldKind>>,
  ctx: z.RefinementCtx,
): void {
  const names = new Set<string>();
  fields.forEach((field, i) => {
    const at = [...base, i];
    addIssues(ctx, at, valueIssues(field, kinds, { trailing: true, where: '' }));
    if (names.has(field.name)) {
      ctx.addIssue({
        code: 'custom',
        path: [...at, 'name'],
        message: `${field.name} is written twice`,
      });
    }
    names.add(field.name);
    const kind = field.field === undefined ? undefined : kinds[field.field];
    if (field.as === 'number' && kind !== 'decimal' && kind !== 'integer') {
      const message = 'as: number needs a number field (amount, quantity, days, count, ...)';
      ctx.addIssue({ code: 'custom', path: [...at, 'as'], message });
    }
  });
}

const jsonBodySchema = z
  .strictObject({
    type: z.literal('json'),
    linesKey: z.string().min(1).default('lines').describe('Property holding the array of lines.'),
    fields: z
      .array(jsonFieldSchema(lineValueShape, 'each line object'))
      .min(1)
      .describe('Properties of each line object, in order.'),
    envelope: z
      .array(jsonFieldSchema(fileValueShape, 'the body object'))
      .default([])
      .describe("Properties of the body beside the lines; count and total are the chunk's."),
    decimalSeparator,
    dateFormat,
  })
  .describe('A JSON object per chunk: { <envelope fields>, <linesKey>: [ { <fields> }, ... ] }.');

const xmlBodySchema = z
  .strictObject({
    type: z.literal('xml'),
    ...xmlShape("count and total are the chunk's"),
  })
  .describe('An XML document per chunk, declared as for an XML file (always utf-8).');

const bodySchema = z
  .discriminatedUnion('type', [jsonBodySchema, xmlBodySchema])
  .describe('What each request carries: json or xml.');

function bodyCarriesKey(body: z.output<typeof bodySchema>): boolean {
  const fields: ValueSpec[] = body.type === 'json' ? body.fields : body.line.fields;
  return fields.some(
    (f) => f.field === 'idempotencyKey' || (f.template ?? '').includes('{idempotencyKey}'),
  );
}

export const httpInvoiceLinesSchema = z
  .strictObject({
    type: z.literal('http'),
    url: z
      .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
      .describe('Endpoint of the ISP billing system that imports line items.'),
    method: z.enum(['POST', 'PUT']).default('POST').describe('HTTP method of each request.'),
    auth: z
      .strictObject({
        header: z
          .string()
          .regex(/^[A-Za-z0-9-]+$/, 'expected a header name such as Authorization')
          .default('Authorization')
          .describe('Header that carries the credential.'),
        value: secretString
          .pipe(z.string().min(1, 'the credential is empty'))
          .describe(
            "The credential, as '${VAR}' (e.g. 'Bearer ${ALPHA_TOKEN}'); never written in the file.",
          ),
      })
      .optional()
      .describe('The credential sent with every request.'),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9-]+$/, 'expected a header name'), z.string())
      .default({})
      .describe('More request headers, not secret (e.g. an API version).'),
    body: bodySchema,
    lineKey: z
      .enum(['hash', 'line-id'])
      .default('hash')
      .describe(
        'What idempotencyKey holds: hash (sha256 of ISP id and line id, 32 hex characters) or line-id (the line id itself).',
      ),
    duplicateStatus: z
      .int()
      .min(400)
      .max(499)
      .optional()
      .describe(
        'Status the endpoint answers for keys it already holds (e.g. 409): counted as delivered.',
      ),
    linesPerChunk: z
      .int()
      .min(1)
      .max(10_000)
      .default(500)
      .describe('Lines per request; a request is one chunk with its own Idempotency-Key header.'),
    timeoutMs: z
      .int()
      .min(100)
      .max(600_000)
      .default(30_000)
      .describe('Time allowed for one request, in milliseconds; a timeout is retried.'),
    retry: z
      .strictObject({
        retries: z
          .int()
          .min(0)
          .max(20)
          .default(5)
          .describe('Attempts after the first, on network errors, timeouts, 408, 429 and 5xx.'),
        initialDelayMs: z
          .int()
          .min(0)
          .default(1_000)
          .describe('Wait before the first retry, in milliseconds; doubled at each retry.'),
        maxDelayMs: z
          .int()
          .min(0)
          .default(60_000)
          .describe('Longest wait between attempts, in milliseconds, Retry-After included.'),
      })
      .prefault({})
      .describe('Retries of one chunk; other 4xx answers are never retried.'),
  })
  .superRefine((http, ctx) => {
    if (http.body.type === 'xml') checkXml(http.body, ctx, true);
    else {
      checkJsonFields(http.body.fields, ['body', 'fields'], LINE_FIELD_KINDS, ctx);
      checkJsonFields(http.body.envelope, ['body', 'envelope'], FILE_FIELD_KINDS, ctx);
    }
    if (!bodyCarriesKey(http.body)) {
      const at = http.body.type === 'json' ? ['body', 'fields'] : ['body', 'line', 'fields'];
      const message =
        'each line must carry its idempotency key, or a retry could bill a customer twice: add a field with field: idempotencyKey';
      ctx.addIssue({ code: 'custom', path: at, message });
    }
    if (http.retry.maxDelayMs < http.retry.initialDelayMs) {
      const message = 'maxDelayMs is below initialDelayMs';
      ctx.addIssue({ code: 'custom', path: ['retry', 'maxDelayMs'], message });
    }
    if (http.duplicateStatus === 429 || http.duplicateStatus === 408) {
      const message = `${http.duplicateStatus} means try again, not already delivered`;
      ctx.addIssue({ code: 'custom', path: ['duplicateStatus'], message });
    }
  })
  .describe("Invoice lines pushed in chunks to the ISP billing system's HTTP endpoint.");

// ---------------------------------------------------------------------------------------------

export const invoiceLinesSchema = z
  .discriminatedUnion('type', [
    csvInvoiceLinesSchema,
    xmlInvoiceLinesSchema,
    fixedWidthInvoiceLinesSchema,
    httpInvoiceLinesSchema,
  ])
  .describe("Invoice lines for this ISP, in the ISP's own format: csv, xml, fixed-width or http.");

export type InvoiceLinesSettings = z.output<typeof invoiceLinesSchema>;
export type CsvInvoiceLines = z.output<typeof csvInvoiceLinesSchema>;
export type XmlInvoiceLines = z.output<typeof xmlInvoiceLinesSchema>;
export type FixedWidthInvoiceLines = z.output<typeof fixedWidthInvoiceLinesSchema>;
export type HttpInvoiceLines = z.output<typeof httpInvoiceLinesSchema>;
export type InvoiceFileSettings = CsvInvoiceLines | XmlInvoiceLines | FixedWidthInvoiceLines;
export type XmlLayout = Pick<
  XmlInvoiceLines,
  | 'namespaces'
  | 'defaultNamespace'
  | 'root'
  | 'line'
  | 'trailer'
  | 'indent'
  | 'decimalSeparator'
  | 'dateFormat'
>;
