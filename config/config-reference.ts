/**
 * Renders `docs/isp-config-reference.md`, the field-by-field reference of `isps/<isp-id>.yaml`,
 * from the ISP JSON Schema. That schema is generated from the zod schemas (including the option
 * schemas of the format and transport plug-ins), so a description written once in `.describe()`
 * reaches editors and this page alike. Pure: JSON in, Markdown out. `relais config reference`
 * prints it; a test fails when the checked-in page drifts.
 *
 * One section per object path, each with a table of field, type, default and description; the
 * variants of a union keyed by `type` (transport, format, completeness) get a section each.
 */
import { buildJsonSchemas } from './json-schema.js';

/** The part of JSON Schema (draft 2020-12, as zod emits it) the page reads. */
export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  pattern?: string;
  examples?: unknown[];
}

interface Row {
  field: string;
  type: string;
  default: string;
  description: string;
}

interface Section {
  id: string;
  heading: string;
  /** Nesting depth, for the contents list. */
  depth: number;
  lines: string[];
}

interface Place {
  /** YAML path shown to the reader, e.g. `intake.format.detail`. */
  path: string;
  /** Anchor id: the path with the chosen variants, e.g. `intake.format.fixed-width.detail`. */
  id: string;
  depth: number;
  /** The variant this object belongs to, e.g. `fixed-width`, with its section. */
  variant?: { value: string; section: Section };
}

/** An object schema with the fields of one `type` value among the variants of a union. */
type Variant = { value: string; schema: JsonSchema };

/** Past this many characters a regular expression is left to the description. */
const MAX_SHOWN_PATTERN = 48;

/**
 * The reference page for a JSON Schema of an ISP file.
 *
 * @param fileName how the page names the file, e.g. `isps/<isp-id>.yaml`.
 */
export function renderConfigReference(schema: JsonSchema, fileName: string): string {
  const sections: Section[] = [];
  const rendered = new Map<string, Section>();
  const root: Place = { path: '', id: 'top-level', depth: 0 };
  addObjectSection(schema, root, `Top level of \`${esc(fileName)}\``, sections, rendered);

  const lines = [
    '# ISP config reference',
    '',
    `Every field of \`${esc(fileName)}\`, generated from the zod schemas (\`config/isp-schema.ts\``,
    'and the option schemas of the format and transport plug-ins) by',
    '`relais config reference > docs/isp-config-reference.md`, which `npm run generate` runs; a test',
    'fails when this page and the schemas disagree. Edit the `.describe()` texts, not this page.',
    '',
    'For a step-by-step walk from a sample export to a working config, read',
    '[integrators.md](integrators.md); error codes are in [errors.md](errors.md).',
    '',
    'How to read the tables: **required** means the field must be written; `–` means the field is',
    'optional and has no default (absent means what its description says). Unknown fields are',
    'errors. Checks that JSON Schema cannot express (a valid time zone or cron expression, a',
    'regular expression that compiles, a delta config with an operation field) are made by',
    '`relais config check`, which names the file, line and field of every problem.',
    '',
    '## Contents',
    '',
    ...sections.map((s) => `${'  '.repeat(s.depth)}- [${s.heading}](#${s.id})`),
  ];
  for (const section of sections) {
    lines.push('', `<a id="${section.id}"></a>`, '', `## ${section.heading}`, '', ...section.lines);
  }
  return `${lines.join('\n')}\n`;
}

/** The page as `docs/isp-config-reference.md` holds it, from the published ISP JSON Schema. */
export function ispConfigReference(): string {
  const schema = JSON.parse(buildJsonSchemas()['isp.schema.json'] as string) as JsonSchema;
  return renderConfigReference(schema, 'isps/<isp-id>.yaml');
}

/**
 * Paths (as `a.b.c`) of the fields that have no description, so a test can insist that every
 * field a reader can write is explained.
 */
export function undocumentedFields(schema: JsonSchema, path = ''): string[] {
  const missing: string[] = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const at = path === '' ? name : `${path}.${name}`;
    const isDiscriminator = name === 'type' && property.const !== undefined;
    if (!isDiscriminator && !property.description) missing.push(at);
    for (const child of childObjects(property)) missing.push(...undocumentedFields(child, at));
  }
  return missing;
}

/** The object schemas below a property: itself, its union variants, its map values, items. */
function childObjects(schema: JsonSchema): JsonSchema[] {
  const variants = variantsOf(schema);
  if (variants) return variants.map((v) => v.schema);
  if (schema.properties) return [schema];
  const value = mapValueOf(schema);
  if (value) return childObjects(value);
  if (schema.items) return childObjects(schema.items);
  return [];
}

function addObjectSection(
  schema: JsonSchema,
  place: Place,
  heading: string,
  sections: Section[],
  rendered: Map<string, Section>,
  variantValue?: string,
): void {
  const section: Section = { id: place.id, heading, depth: place.depth, lines: [] };
  sections.push(section);
  if (schema.description) section.lines.push(prose(schema.description), '');
  if (place.variant) {
    const { value, section: parent } = place.variant;
    section.lines.push(`Only with [\`type: ${esc(value)}\`](#${parent.id}).`, '');
  }
  const shape = JSON.stringify([schema.properties, schema.required]);
  const same = rendered.get(shape);
  if (same) {
    section.lines.push(`Same fields as [${same.heading}](#${same.id}).`);
    return;
  }
  rendered.set(shape, section);

  const rows: Row[] = [];
  const required = new Set(schema.required ?? []);
  const children: (() => void)[] = [];
  const variant = variantValue === undefined ? place.variant : { value: variantValue, section };
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const child: Place = {
      path: place.path === '' ? name : `${place.path}.${name}`,
      id: place.depth === 0 ? name : `${place.id}.${name}`,
      depth: place.depth + 1,
      variant,
    };
    rows.push({
      field: `\`${esc(name)}\``,
      type: typeCell(property, child),
      default: defaultCell(property, required.has(name)),
      description: property.description ? prose(property.description) : '',
    });
    children.push(() => addChildSections(property, child, sections, rendered));
  }
  section.lines.push(
    '| field | type | default | description |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.field} | ${r.type} | ${r.default} | ${r.description} |`),
  );
  for (const addChild of children) addChild();
}

/** Sections for what a property holds: an object, the variants of a union, map values. */
function addChildSections(
  property: JsonSchema,
  place: Place,
  sections: Section[],
  rendered: Map<string, Section>,
): void {
  const variants = variantsOf(property);
  if (variants) {
    for (const variant of variants) {
      const at: Place = { ...place, id: variantId(place, variant.value) };
      const heading = `\`${esc(place.path)}\` with \`type: ${esc(variant.value)}\``;
      addObjectSection(variant.schema, at, heading, sections, rendered, variant.value);
    }
    return;
  }
  if (property.properties) {
    const heading = `\`${esc(place.path)}\`${place.variant ? ` (${esc(place.variant.value)})` : ''}`;
    addObjectSection(property, place, heading, sections, rendered);
    return;
  }
  const value = mapValueOf(property) ?? property.items;
  if (value && (value.properties || variantsOf(value))) {
    const key = mapValueOf(property) ? '<name>' : '[]';
    const at: Place = {
      ...place,
      path: `${place.path}.${key}`,
      id: `${place.id}.${key === '[]' ? 'item' : 'name'}`,
    };
    addChildSections(value, at, sections, rendered);
  }
}

function variantId(place: Place, value: string): string {
  return `${place.id}.${value}`;
}

/** The variants of a union told apart by a constant `type` field, or undefined. */
function variantsOf(schema: JsonSchema): Variant[] | undefined {
  const options = schema.oneOf ?? schema.anyOf;
  if (!options || options.length === 0) return undefined;
  const variants: Variant[] = [];
  for (const option of options) {
    const tag = option.properties?.type?.const;
    if (typeof tag !== 'string') return undefined;
    variants.push({ value: tag, schema: option });
  }
  return variants;
}

/** The schema of a map's values (a record such as `offers`), or undefined. */
function mapValueOf(schema: JsonSchema): JsonSchema | undefined {
  if (schema.properties || typeof schema.additionalProperties !== 'object') return undefined;
  return schema.additionalProperties;
}

// Cells

function typeCell(schema: JsonSchema, place: Place): string {
  const variants = variantsOf(schema);
  if (variants) {
    const links = variants.map((v) => `[\`${esc(v.value)}\`](#${variantId(place, v.value)})`);
    return `object, by \`type\`: ${links.join(', ')}`;
  }
  if (schema.properties) return `object ([fields](#${place.id}))`;
  const value = mapValueOf(schema);
  if (value) {
    const key = schema.propertyNames ? typeText(schema.propertyNames) : 'string';
    const valueText =
      value.properties || variantsOf(value)
        ? `object ([fields](#${place.id}.name))`
        : typeText(value);
    return `map: ${key} → ${valueText}`;
  }
  if (schema.items && (schema.items.properties || variantsOf(schema.items))) {
    return `list of object ([fields](#${place.id}.item))`;
  }
  return typeText(schema);
}

/** The type of a value in words, with its constraints. */
function typeText(schema: JsonSchema): string {
  if (schema.const !== undefined) return `\`${esc(String(schema.const))}\``;
  if (schema.enum) return schema.enum.map((v) => `\`${esc(String(v))}\``).join(', ');
  if (schema.anyOf) return schema.anyOf.map(typeText).join(' or ');
  if (schema.type === 'array') {
    const items = schema.items ? typeText(schema.items) : 'any';
    return `${schema.minItems === 1 ? 'non-empty ' : ''}list of ${items}`;
  }
  const types = Array.isArray(schema.type) ? schema.type : [schema.type ?? 'any'];
  return `${types.join(' or ')}${constraints(schema)}`;
}

function constraints(schema: JsonSchema): string {
  const parts: string[] = [];
  const { minimum: min, maximum: max, minLength, maxLength, pattern } = schema;
  const upper = max !== undefined && max < Number.MAX_SAFE_INTEGER ? max : undefined;
  if (min !== undefined && upper !== undefined) parts.push(`${min} to ${upper}`);
  else if (min !== undefined) parts.push(`≥ ${min}`);
  else if (upper !== undefined) parts.push(`≤ ${upper}`);
  if (minLength !== undefined && minLength === maxLength) parts.push(`exactly ${chars(minLength)}`);
  else {
    if (minLength !== undefined && minLength > 1) parts.push(`at least ${chars(minLength)}`);
    if (maxLength !== undefined) parts.push(`at most ${chars(maxLength)}`);
  }
  if (pattern !== undefined && pattern.length <= MAX_SHOWN_PATTERN) {
    parts.push(`matching \`${esc(pattern)}\``);
  }
  return parts.length === 0 ? '' : `, ${parts.join(', ')}`;
}

function chars(n: number): string {
  return n === 1 ? '1 character' : `${n} characters`;
}

function defaultCell(schema: JsonSchema, required: boolean): string {
  if (schema.default !== undefined) return `\`${esc(yamlFlow(schema.default))}\``;
  return required ? '**required**' : '–';
}

/** A value as one would write it in YAML flow style: `{ type: stable }`, `[a, b]`, `"* * * * *"`. */
function yamlFlow(value: unknown): string {
  if (typeof value === 'string') {
    if (/^[\w./-]+$/.test(value)) return value;
    return value.includes('"') ? `'${value.replace(/'/g, "''")}'` : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(yamlFlow).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, v]) => `${k}: ${yamlFlow(v)}`);
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
  }
  return String(value);
}

// Escaping

/** Text for a table cell: `|` escaped everywhere, Markdown and HTML outside code spans. */
function esc(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** A description: escapes `*`, `<`, `>` and `_` outside backtick code spans. */
function prose(text: string): string {
  return esc(text)
    .split(/(`[^`]*`)/)
    .map((part, i) =>
      i % 2 === 1
        ? part
        : part
            .replace(/</g, '&lt;')
            .replace(/>/g, '&gt;')
            .replace(/\*/g, '\\*')
            .replace(/(^|\W)_/g, '$1\\_'),
    )
    .join('');
}
