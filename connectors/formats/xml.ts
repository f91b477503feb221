/**
 * The XML reader. saxes reads the document as a stream of events, and each record's values are
 * built straight from those events: parsing whole documents (or each record again with
 * fast-xml-parser) costs gigabytes or several times the time on big exports. Records are the
 * elements whose local name is `recordElement`, at any depth; sources are paths of local names
 * below it (see `xml-paths.ts`). The file is refused as soon as it declares a DOCTYPE, nests too
 * deep, holds a value over `maxValueBytes` (checked while saxes is still reading the value), an
 * element with more than MAX_XML_ATTRIBUTES attributes or a record longer than
 * MAX_XML_RECORD_CHARS: without the last two, one start tag or one record of a huge file could
 * hold gigabytes of small values.
 */
import type { Readable } from 'node:stream';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import type { ErrorCode } from '../../platform/error-codes.js';
import { isRelaisError } from '../../platform/errors.js';
import { feedError } from './feed-error.js';
import type { FeedFormat, FormatItem, ReadContext, SourceValue } from './format.js';
import { checkDecoded, decodeText } from './text-input.js';
import { type XmlOptions, xmlOptionsSchema } from './xml.options.js';
import { compilePaths, type PathNode } from './xml-paths.js';

/**
 * Text is handed to saxes in slices of at most this many characters, so that the value-length
 * check between two slices bounds memory however large the chunks of the input are.
 */
const SLICE_CHARS = 65_536;

/** Most attributes one element may carry; far above any export, namespace declarations included. */
export const MAX_XML_ATTRIBUTES = 256;

/**
 * Longest record accepted, in characters from its start tag to its end tag. Far above any
 * customer; it bounds what one record can keep (a wanted element repeated without end).
 */
export const MAX_XML_RECORD_CHARS = 4_194_304;

/** Reads XML exports as a stream; see the module comment. */
export const xmlFormat: FeedFormat<XmlOptions> = {
  type: 'xml',
  optionsSchema: xmlOptionsSchema,
  read: readXml,
};

async function* readXml(
  input: Readable,
  options: XmlOptions,
  context: ReadContext,
): AsyncGenerator<FormatItem> {
  const records = new XmlRecords(options, context);
  let count = 0;
  for await (const text of decodeText(input, options.encoding, context.fileName)) {
    for (let start = 0; start < text.length; start += SLICE_CHARS) {
      records.write(text.length <= SLICE_CHARS ? text : text.slice(start, start + SLICE_CHARS));
      for (const item of records.takeItems()) {
        count++;
        yield item;
      }
    }
  }
  records.close();
  for (const item of records.takeItems()) {
    count++;
    yield item;
  }
  if (count === 0) {
    const message = `the file holds no ${options.recordElement} element`;
    throw feedError('FEED_EMPTY', { fileName: context.fileName }, message);
  }
}

/** An element of the record being read that some wanted path reaches. */
interface Frame {
  node: PathNode;
  /** Its own text so far, kept only when the element's text is wanted. */
  text: string;
  hasChild: boolean;
}

interface OpenRecord {
  line: number;
  /** Character offset of the record's start tag in the document. */
  position: number;
  values: Record<string, SourceValue>;
  /** The record element, then each open descendant that a wanted path reaches. */
  frames: Frame[];
  /** How deep the parser is inside a descendant that no wanted path reaches (0: not inside). */
  skipDepth: number;
}

/**
 * The buffers in which saxes accumulates a text, attribute value, comment, DOCTYPE, name,
 * entity, processing instruction or start tag's attributes until it ends. saxes offers no hook
 * while it accumulates, so their lengths are read after each slice; the huge-text-node, comment
 * and attribute tests fail if a saxes upgrade renames them. (Comment and processing-instruction
 * handlers would check them at their end too, but registering them makes every read 3 times
 * slower.)
 */
interface SaxesBuffers {
  text?: unknown;
  name?: unknown;
  entity?: unknown;
  piTarget?: unknown;
  /** The attributes of the start tag being read. */
  attribList?: unknown;
}

/** Drives saxes over one document and collects finished records, in document order. */
class XmlRecords {
  private readonly parser = new SaxesParser({ xmlns: true, position: true });
  private readonly paths: PathNode;
  private items: FormatItem[] = [];
  private depth = 0;
  /** Line of the latest start tag's `<`. */
  private tagLine = 1;
  /** Character offset just after the latest start tag's name. */
  private tagPosition = 0;
  private record: OpenRecord | undefined;

  constructor(
    private readonly options: XmlOptions,
    private readonly context: ReadContext,
  ) {
    this.paths = compilePaths(context.wanted);
    const { parser } = this;
    parser.on('doctype', () => {
      throw this.error('FEED_XML_DOCTYPE', 'the document declares a DOCTYPE, which is refused');
    });
    parser.on('opentagstart', (tag) => this.onTagStart(tag.name));
    parser.on('opentag', (tag) => this.onOpenTag(tag));
    parser.on('text', (text) => this.onText(text, true));
    parser.on('cdata', (text) => this.onText(text, false));
    parser.on('closetag', () => this.onCloseTag());
  }

  write(slice: string): void {
    try {
      this.parser.write(slice);
    } catch (err) {
      throw this.explain(err);
    }
    this.checkPendingValue();
  }

  close(): void {
    try {
      this.parser.close();
    } catch (err) {
      throw this.explain(err);
    }
  }

  /** Records finished since the last call. */
  takeItems(): FormatItem[] {
    const items = this.items;
    this.items = [];
    return items;
  }

  private onTagStart(name: string): void {
    this.depth++;
    if (this.depth > this.options.maxDepth) {
      throw this.error('FEED_XML_LIMIT', `elements nest deeper than ${this.options.maxDepth}`);
    }
    this.checkValue(name);
    this.tagPosition = this.parser.position;
    // saxes has just read the character after the name; a line break there moved it on a line.
    this.tagLine = this.parser.column === 0 ? this.parser.line - 1 : this.parser.line;
  }

  private onOpenTag(tag: SaxesTagNS): void {
    this.checkAttributes(tag);
    const record = this.record;
    if (record === undefined) {
      if (tag.local === this.options.recordElement) this.startRecord(tag);
      return;
    }
    if (record.skipDepth > 0) {
      record.skipDepth++;
      return;
    }
    const parent = record.frames[record.frames.length - 1] as Frame;
    parent.hasChild = true;
    if (parent.text.length > 0 && isBlank(parent.text)) parent.text = '';
    const node = parent.node.children.get(tag.local);
    if (node === undefined) {
      record.skipDepth = 1;
      return;
    }
    record.frames.push({ node, text: '', hasChild: false });
    collectAttributes(node, tag, record.values);
  }

  private startRecord(tag: SaxesTagNS): void {
    const frames = [{ node: this.paths, text: '', hasChild: false }];
    const position = this.tagPosition;
    this.record = { line: this.tagLine, position, values: {}, frames, skipDepth: 0 };
    collectAttributes(this.paths, tag, this.record.values);
  }

  /** Text and CDATA. Whitespace-only text beside child elements is layout, not a value. */
  private onText(text: string, isText: boolean): void {
    this.checkValue(text);
    const record = this.record;
    if (record === undefined || record.skipDepth > 0) return;
    const frame = record.frames[record.frames.length - 1] as Frame;
    if (frame.node.textKey === undefined) return;
    if (isText && frame.hasChild && isBlank(text)) return;
    frame.text += text;
    if (frame.text.length !== text.length) this.checkValue(frame.text);
  }

  private onCloseTag(): void {
    this.depth--;
    const record = this.record;
    if (record === undefined) return;
    if (record.skipDepth > 0) {
      record.skipDepth--;
      return;
    }
    const frame = record.frames.pop() as Frame;
    if (frame.node.textKey !== undefined) addValue(record.values, frame.node.textKey, frame.text);
    if (record.frames.length > 0) return;
    this.checkRecordLength(record);
    const item: FormatItem = { kind: 'record', line: record.line, values: record.values };
    this.items.push(checkDecoded(item, this.options.encoding));
    this.record = undefined;
  }

  private checkAttributes(tag: SaxesTagNS): void {
    let count = 0;
    for (const name in tag.attributes) {
      this.checkValue(name);
      this.checkValue((tag.attributes[name] as Attr).value);
      count++;
    }
    if (count > MAX_XML_ATTRIBUTES) throw this.tooManyAttributes();
  }

  private tooManyAttributes(): unknown {
    return this.error(
      'FEED_XML_LIMIT',
      `an element has more than ${MAX_XML_ATTRIBUTES} attributes`,
    );
  }

  private checkRecordLength(record: OpenRecord): void {
    if (this.parser.position - record.position > MAX_XML_RECORD_CHARS) {
      const message = `a ${this.options.recordElement} record is longer than ${MAX_XML_RECORD_CHARS} characters`;
      throw this.error('FEED_XML_LIMIT', message);
    }
  }

  private checkValue(value: string): void {
    const max = this.options.maxValueBytes;
    // A UTF-16 unit is at most 3 UTF-8 bytes: most values need no byte count.
    if (value.length * 3 > max && Buffer.byteLength(value) > max) {
      throw this.error('FEED_XML_LIMIT', `a text or attribute value is longer than ${max} bytes`);
    }
  }

  /**
   * Refuses what saxes is still accumulating once it is over a limit: a value with more
   * characters than allowed, a start tag with too many attributes, a record too long.
   */
  private checkPendingValue(): void {
    const buffers = this.parser as unknown as SaxesBuffers;
    const pending =
      lengthOf(buffers.text) +
      lengthOf(buffers.name) +
      lengthOf(buffers.entity) +
      lengthOf(buffers.piTarget);
    if (pending > this.options.maxValueBytes) {
      const max = this.options.maxValueBytes;
      const message = `a text, attribute value, comment or name is longer than ${max} bytes`;
      throw this.error('FEED_XML_LIMIT', message);
    }
    const attributes = buffers.attribList;
    if (Array.isArray(attributes) && attributes.length > MAX_XML_ATTRIBUTES) {
      throw this.tooManyAttributes();
    }
    if (this.record !== undefined) this.checkRecordLength(this.record);
  }

  /** saxes reports a well-formedness error as a plain Error whose message starts `line:col: `. */
  private explain(err: unknown): unknown {
    if (isRelaisError(err) || !(err instanceof Error)) return err;
    const saxesMessage = /^\d+:\d+: (.*)$/s.exec(err.message);
    if (saxesMessage === null) return err;
    return this.error('FEED_XML_MALFORMED', `the xml is not well-formed: ${saxesMessage[1]}`);
  }

  /** Positions a refusal at the last character saxes read (column 1 at the start of a line). */
  private error(code: ErrorCode, message: string): unknown {
    const { line, column } = this.parser;
    const at = { fileName: this.context.fileName, line, column: Math.max(1, column) };
    return feedError(code, at, message);
  }
}

type Attr = SaxesTagNS['attributes'][string];

/** Adds the wanted attributes of an element; namespace declarations are never values. */
function collectAttributes(
  node: PathNode,
  tag: SaxesTagNS,
  values: Record<string, SourceValue>,
): void {
  if (node.attributes.size === 0) return;
  for (const name in tag.attributes) {
    const attribute = tag.attributes[name] as Attr;
    if (attribute.prefix === 'xmlns' || attribute.name === 'xmlns') continue;
    const key = node.attributes.get(attribute.local);
    if (key !== undefined) addValue(values, key, attribute.value);
  }
}

/** A path met once gives a string; met again, the values become an array in document order. */
function addValue(values: Record<string, SourceValue>, key: string, value: string): void {
  const previous = values[key];
  if (previous === undefined) values[key] = value;
  else if (typeof previous === 'string') values[key] = [previous, value];
  else previous.push(value);
}

const NON_BLANK = /[^ \t\r\n]/;

function isBlank(text: string): boolean {
  return !NON_BLANK.test(text);
}

function lengthOf(buffer: unknown): number {
  return typeof buffer === 'string' ? buffer.length : 0;
}
