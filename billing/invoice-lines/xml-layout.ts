/**
 * The XML side of invoice lines, shared by the XML file and the XML push body: compiles the
 * declared root, line and trailer elements (fields at paths such as `@id`, `Montant` or
 * `at:Client/@ref`, the same paths the intake XML reader takes) into functions that return
 * escaped, indented markup. Children and attributes come in the order first declared, so the
 * same config and lines always give the same bytes.
 */
import type { XmlLayout } from '../../config/invoice-lines-schema.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import {
  compileFileValue,
  compileLineValue,
  type FileTotals,
  type Formatting,
  ValueError,
} from './values.js';

interface Node<T> {
  name: string;
  attributes: [string, (input: T) => string][];
  text?: (input: T) => string;
  children: Node<T>[];
}

// XML 1.0 cannot hold these at all, escaped or not.
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters refused.
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters that need escaping.
const NEEDS_ESCAPE = /[&<>"\u0000-\u001f\ufffe\uffff]/;

function checked(text: string): string {
  if (NOT_XML.test(text)) {
    const bad = NOT_XML.exec(text)?.[0] as string;
    const code = (bad.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0');
    throw new ValueError(`character U+${code} cannot be written in XML`);
  }
  return text;
}

export function escapeText(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  return checked(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function escapeAttribute(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  return checked(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/"/g, '&quot;')
    .replace(/\t/g, '&#9;')
    .replace(/\n/g, '&#10;')
    .replace(/\r/g, '&#13;');
}

function buildTree<T>(
  name: string,
  fields: { path: string }[],
  getter: (index: number) => (input: T) => string,
): Node<T> {
  const root: Node<T> = { name, attributes: [], children: [] };
  fields.forEach((field, index) => {
    const steps = field.path.split('/');
    const last = steps[steps.length - 1] as string;
    const isAttribute = last.startsWith('@');
    let node = root;
    for (const step of isAttribute ? steps.slice(0, -1) : steps) {
      let child = node.children.find((c) => c.name === step);
      if (!child) {
        child = { name: step, attributes: [], children: [] };
        node.children.push(child);
      }
      node = child;
    }
    if (isAttribute) node.attributes.push([last.slice(1), getter(index)]);
    else node.text = getter(index);
  });
  return root;
}

/** Renders a node; `extraAttributes` is markup written verbatim (namespace declarations). */
function renderer<T>(
  node: Node<T>,
  depth: number,
  indent: number,
  extraAttributes = '',
): { open: (input: T) => string; close: string; whole: (input: T) => string } {
  const pad = indent > 0 ? `\n${' '.repeat(indent * depth)}` : '';
  const attributes = node.attributes.map(([name, get]) => ({ prefix: ` ${name}="`, get }));
  const startTag = (input: T) => {
    let tag = `${pad}<${node.name}${extraAttributes}`;
    for (const a of attributes) tag += `${a.prefix}${escapeAttribute(a.get(input))}"`;
    return tag;
  };
  const children = node.children.map((c) => renderer(c, depth + 1, indent).whole);
  const { text } = node;
  const end = `</${node.name}>`;
  const open = (input: T) => {
    let out = `${startTag(input)}>`;
    if (text) out += escapeText(text(input));
    for (const child of children) out += child(input);
    return out;
  };
  const close = text || children.length === 0 ? end : `${pad}${end}`;
  const whole =
    !text && children.length === 0
      ? (input: T) => `${startTag(input)}/>`
      : (input: T) => open(input) + close;
  return { open, close, whole };
}

const DECLARED_ENCODING = {
  'utf-8': 'UTF-8',
  'iso-8859-1': 'ISO-8859-1',
  'windows-1252': 'windows-1252',
};

export interface XmlDocument {
  /** The declaration, the root start tag and its own children. */
  open: (totals: FileTotals) => string;
  line: (line: IspInvoiceLine) => string;
  /** The trailer, the root end tag and a final line break. */
  close: (totals: FileTotals) => string;
}

export function compileXmlDocument(
  layout: XmlLayout,
  fmt: Formatting,
  encoding: keyof typeof DECLARED_ENCODING,
  label: string,
): XmlDocument {
  const { indent } = layout;
  let declarations = '';
  if (layout.defaultNamespace !== undefined) {
    declarations += ` xmlns="${escapeAttribute(layout.defaultNamespace)}"`;
  }
  for (const [prefix, uri] of Object.entries(layout.namespaces)) {
    declarations += ` xmlns:${prefix}="${escapeAttribute(uri)}"`;
  }

  const root = renderer(
    buildTree<FileTotals>(layout.root.element, layout.root.fields, (i) =>
      compileFileValue(layout.root.fields[i] as never, fmt, `${label}.root.fields.${i}`),
    ),
    0,
    indent,
    declarations,
  );
  const line = renderer(
    buildTree<IspInvoiceLine>(layout.line.element, layout.line.fields, (i) =>
      compileLineValue(layout.line.fields[i] as never, fmt, `${label}.line.fields.${i}`),
    ),
    1,
    indent,
  ).whole;
  const { trailer } = layout;
  const tail = trailer
    ? renderer(
        buildTree<FileTotals>(trailer.element, trailer.fields, (i) =>
          compileFileValue(trailer.fields[i] as never, fmt, `${label}.trailer.fields.${i}`),
        ),
        1,
        indent,
      ).whole
    : () => '';
  // The root's start tag begins the document, not a fresh indented line.
  const rootEnd = indent > 0 ? `\n</${layout.root.element}>\n` : `</${layout.root.element}>\n`;
  const declaration = `<?xml version="1.0" encoding="${DECLARED_ENCODING[encoding]}"?>\n`;
  return {
    open: (totals) => declaration + root.open(totals).replace(/^\n/, ''),
    line,
    close: (totals) => tail(totals) + rootEnd,
  };
}
