/**
 * Broken and hostile feeds for the property tests and the fuzz run (issue 7). A feed starts as a
 * valid export of one of the three shipped ISPs (isp-exports.ts: demo-fai CSV in Windows-1252,
 * alpha-telecom XML, bretagne-net fixed width in ISO-8859-1), then goes through the ways real
 * files break and attackers break them: bytes set, inserted or deleted, lines duplicated,
 * dropped or swapped, a field replaced, a cut, a re-encoding, hostile snippets planted (entity
 * declarations, quotes, trailers, BOMs, surrogates). Or it is no export at all: random bytes, or
 * a soup of the format's own tokens.
 *
 * Arbitraries yield plain descriptions (seed, count, mutations), not bytes: a counterexample
 * prints as something a person can read and replay, and shrinks towards fewer, smaller changes.
 * {@link buildFeed} turns a description into bytes, the same on every run.
 */
import fc from 'fast-check';
import iconv from 'iconv-lite';
import {
  type Customer,
  type FixedOperation,
  generateCustomers,
  renderCsv,
  renderFixedWidth,
  renderXml,
} from './isp-exports.js';

export type FeedKind = 'csv' | 'xml' | 'fixed-width';
export const FEED_KINDS: readonly FeedKind[] = ['csv', 'xml', 'fixed-width'];
type Encoding = 'utf-8' | 'windows-1252' | 'iso-8859-1';

/** The shipped ISP whose export each kind is, and the encoding that ISP writes. */
export const FEED_ISP = {
  csv: 'demo-fai',
  xml: 'alpha-telecom',
  'fixed-width': 'bretagne-net',
} as const satisfies Record<FeedKind, string>;
const ENCODING: Record<FeedKind, Encoding> = {
  csv: 'windows-1252',
  xml: 'utf-8',
  'fixed-width': 'iso-8859-1',
};

/** One change to a feed. Positions are taken modulo the feed's length, so any number works. */
export type Mutation =
  | { op: 'set-byte'; at: number; byte: number }
  | { op: 'insert'; at: number; text: string; isUtf8: boolean }
  | { op: 'delete'; at: number; length: number }
  | { op: 'truncate'; at: number }
  | { op: 'duplicate-line'; line: number }
  | { op: 'drop-line'; line: number }
  | { op: 'swap-lines'; line: number; other: number }
  /** Replaces the field around `at`; escaped, the text keeps the file well-formed (XML, CSV). */
  | { op: 'replace-field'; at: number; text: string; isEscaped: boolean }
  /** Replaces the n-th value (XML text or attribute, CSV field, fixed-width field), escaped. */
  | { op: 'replace-value'; index: number; text: string }
  /** Plants raw bytes (0x80 to 0xFF: not text in every encoding) inside the n-th value. */
  | { op: 'damage-value'; index: number; offset: number; bytes: number[] }
  | { op: 'reencode'; to: Encoding };

export type FeedSpec =
  | {
      kind: FeedKind;
      from: 'export';
      seed: number;
      count: number;
      ops: FixedOperation[];
      mutations: Mutation[];
    }
  | { kind: FeedKind; from: 'bytes'; bytes: number[] }
  | { kind: FeedKind; from: 'tokens'; tokens: string[] };

/** A feed's bytes, and the personal values its export held, which no message may repeat. */
export interface BuiltFeed {
  bytes: Buffer;
  personal: string[];
}

/** Snippets that matter to every format: line breaks, BOMs, bad bytes, odd characters. */
const COMMON_SNIPPETS = [
  '\n',
  '\r\n',
  '\r',
  '\t',
  ' ',
  '\u0000',
  '\uFEFF',
  '\uFFFD',
  'é',
  'Ã©',
  '😀',
  '\ud83d',
  '\u202e',
  '\u0085',
  '10000001',
  '00000000',
  'SECU_INTEGRAL',
  'SECU_FAMILLE',
];

/** Snippets that mean something to one format's reader or to its ISP's mapping. */
const SNIPPETS: Record<FeedKind, string[]> = {
  csv: [
    ';',
    ';;',
    '"',
    '""',
    '"a;b"',
    '"\n"',
    '+',
    'SAUV+CTRL',
    'Résilié',
    'RÉSILIÉ',
    'Actif',
    'actif',
    '31/02/2026',
    '01/01/2026',
    'N° client',
    ';'.repeat(64),
  ],
  xml: [
    '<',
    '>',
    '&',
    '&amp;',
    '&#0;',
    '&#x1F600;',
    '&nbsp;',
    '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE a [<!ENTITY a "aa"><!ENTITY b "&a;&a;&a;">]>',
    '&e;',
    '<![CDATA[x]]>',
    ']]>',
    '<!--x-->',
    '<?pi x?>',
    '<?xml version="1.0"?>',
    '<at:Client id="10000009">',
    '</at:Client>',
    '<Client/>',
    '<Option>BACKUP</Option>',
    '<Option/>',
    ' etat="cancelled"',
    ' id="10000001"',
    ' xmlns:x="urn:x"',
    'x:',
    '<Offre>SECU_FAMILLE</Offre>',
    '2026-02-30',
  ],
  'fixed-width': [
    'H',
    'D',
    'T',
    'T000000001',
    'T999999999',
    'T00000000x',
    'SUB',
    'RES',
    'XXX',
    'SAV,CTL',
    'SAV,,',
    '20261399',
    '20260229',
    ' '.repeat(40),
  ],
};

/** Tokens a soup of each format is made of: its syntax and its ISP's words. */
const TOKENS: Record<FeedKind, string[]> = {
  csv: [
    'N° client;Nom;Prénom;Courriel;Offre;Options;Statut;Date effet',
    '\r\n',
    '\n',
    ';',
    '"',
    '10000001',
    'Dupont',
    'a@b.fr',
    'SECU_FAMILLE',
    'SAUV+CTRL',
    'Actif',
    'Suspendu',
    'Résilié',
    '01/02/2026',
  ],
  xml: [
    '<?xml version="1.0"?>',
    '<at:Abonnes xmlns:at="urn:alpha-telecom:abonnes:2" xmlns="urn:alpha-telecom:abonnes:2">',
    '</at:Abonnes>',
    '<at:Client id="10000001">',
    '<Client id="10000002">',
    '</at:Client>',
    '</Client>',
    '<Contrat etat="active">',
    '</Contrat>',
    '<Offre>',
    '</Offre>',
    'SECU_FAMILLE',
    '<Options>',
    '</Options>',
    '<Option>',
    '</Option>',
    'BACKUP',
    '<Contact><Email>a@b.fr</Email></Contact>',
    '<Debut>2026-01-02</Debut>',
    '\n',
    ' ',
    '&amp;',
    '<![CDATA[',
    ']]>',
  ],
  'fixed-width': [
    'H',
    'BRETAGNE-NET        20261201',
    'D',
    '10000001  ',
    'SUB',
    'CHG',
    'RES',
    '20260102',
    'SECU_FAMILLE   ',
    'SAV,CTL             ',
    'a@b.fr',
    ' ',
    '\n',
    'T',
    '000000001',
    '000000002',
  ],
};

const OPERATIONS: readonly FixedOperation[] = ['SUB', 'CHG', 'SUS', 'REP', 'RES'];

/** Text to plant: a snippet of the format, a common one, or anything at all. */
function textArb(kind: FeedKind): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...SNIPPETS[kind], ...COMMON_SNIPPETS) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 16 }) },
  );
}

export function mutationArb(kind: FeedKind): fc.Arbitrary<Mutation> {
  const at = fc.nat();
  return fc.oneof(
    fc.record({ op: fc.constant('set-byte' as const), at, byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({
      op: fc.constant('insert' as const),
      at,
      text: textArb(kind),
      isUtf8: fc.boolean(),
    }),
    fc.record({ op: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ op: fc.constant('truncate' as const), at }),
    fc.record({ op: fc.constant('duplicate-line' as const), line: fc.nat() }),
    fc.record({ op: fc.constant('drop-line' as const), line: fc.nat() }),
    fc.record({ op: fc.constant('swap-lines' as const), line: fc.nat(), other: fc.nat() }),
    fc.record({
      op: fc.constant('replace-field' as const),
      at,
      text: textArb(kind),
      isEscaped: fc.boolean(),
    }),
    fc.record({
      op: fc.constant('reencode' as const),
      to: fc.constantFrom<Encoding>('utf-8', 'windows-1252', 'iso-8859-1'),
    }),
  );
}

/**
 * Values replaced, escaped so that the file stays well-formed: these changes get past the
 * reader into the mapping, where most byte-level changes stop at a refusal of the file.
 */
export function valueMutationArb(kind: FeedKind): fc.Arbitrary<Mutation> {
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('replace-value' as const),
        index: fc.nat(),
        text: textArb(kind),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('damage-value' as const),
        index: fc.nat(),
        offset: fc.nat(),
        bytes: fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 3 }),
      }),
    },
  );
}

/** A valid export of up to `maxCount` customers, changed by up to `maxMutations` mutations. */
export function mutatedExportArb(
  kind: FeedKind,
  options: { maxCount?: number; maxMutations?: number; mutation?: fc.Arbitrary<Mutation> } = {},
): fc.Arbitrary<FeedSpec> {
  const { maxCount = 6, maxMutations = 4, mutation = mutationArb(kind) } = options;
  return fc.record({
    kind: fc.constant(kind),
    from: fc.constant('export' as const),
    seed: fc.nat(),
    count: fc.integer({ min: 0, max: maxCount }),
    ops: fc.array(fc.constantFrom(...OPERATIONS), { maxLength: maxCount }),
    mutations: fc.array(mutation, { maxLength: maxMutations }),
  });
}

/** Anything: random bytes, or a random sequence of the format's tokens and snippets. */
export function randomFeedArb(kind: FeedKind): fc.Arbitrary<FeedSpec> {
  return fc.oneof(
    fc.record({
      kind: fc.constant(kind),
      from: fc.constant('bytes' as const),
      bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 200 }),
    }),
    fc.record({
      kind: fc.constant(kind),
      from: fc.constant('tokens' as const),
      tokens: fc.array(fc.oneof(fc.constantFrom(...TOKENS[kind]), textArb(kind)), {
        maxLength: 40,
      }),
    }),
  );
}

/**
 * Mostly mutated exports (they get deep into the readers), some with values changed only (they
 * get into the mapping), sometimes anything at all.
 */
export function hostileFeedArb(
  kind: FeedKind,
  size: { maxCount?: number; maxMutations?: number } = {},
): fc.Arbitrary<FeedSpec> {
  const valuesOnly = mutatedExportArb(kind, { ...size, mutation: valueMutationArb(kind) });
  return fc.oneof(
    { weight: 4, arbitrary: mutatedExportArb(kind, size) },
    { weight: 2, arbitrary: valuesOnly },
    { weight: 1, arbitrary: randomFeedArb(kind) },
  );
}

/** Sizes the bytes are handed to the reader in, used in turn: 1 byte to 8 KB. */
export const chunkingArb: fc.Arbitrary<number[]> = fc.array(fc.integer({ min: 1, max: 8_192 }), {
  minLength: 1,
  maxLength: 4,
});

export function buildFeed(spec: FeedSpec): BuiltFeed {
  const encoding = ENCODING[spec.kind];
  if (spec.from === 'bytes') return { bytes: Buffer.from(spec.bytes), personal: [] };
  if (spec.from === 'tokens') {
    return { bytes: iconv.encode(spec.tokens.join(''), encoding), personal: [] };
  }
  const customers = [...generateCustomers(spec.count, spec.seed)];
  let bytes = iconv.encode(render(spec.kind, customers, spec.ops).join(''), encoding);
  for (const mutation of spec.mutations) bytes = mutate(bytes, mutation, spec.kind, encoding);
  return { bytes, personal: personalValuesOf(customers) };
}

function render(kind: FeedKind, customers: Customer[], ops: FixedOperation[]): string[] {
  if (kind === 'csv') return [...renderCsv(customers)];
  if (kind === 'xml') return [...renderXml(customers)];
  const lines = customers.map((customer, i) => ({ customer, op: ops[i % ops.length] ?? 'SUB' }));
  return [...renderFixedWidth(lines)];
}

/** Names and e-mails: what a reader's or mapper's message must never repeat. */
function personalValuesOf(customers: Customer[]): string[] {
  const values = new Set<string>();
  for (const c of customers) {
    values.add(c.email);
    values.add(`${c.firstName} ${c.lastName}`);
    if (c.lastName.length >= 5) values.add(c.lastName);
  }
  return [...values];
}

export function mutate(bytes: Buffer, m: Mutation, kind: FeedKind, encoding: Encoding): Buffer {
  const at = (n: number) => (bytes.length === 0 ? 0 : n % (bytes.length + 1));
  switch (m.op) {
    case 'set-byte': {
      if (bytes.length === 0) return bytes;
      const copy = Buffer.from(bytes);
      copy[m.at % bytes.length] = m.byte;
      return copy;
    }
    case 'insert': {
      const planted = m.isUtf8 ? Buffer.from(m.text, 'utf8') : iconv.encode(m.text, encoding);
      const i = at(m.at);
      return Buffer.concat([bytes.subarray(0, i), planted, bytes.subarray(i)]);
    }
    case 'delete': {
      const i = at(m.at);
      return Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + m.length)]);
    }
    case 'truncate':
      return bytes.subarray(0, at(m.at));
    case 'duplicate-line':
    case 'drop-line':
    case 'swap-lines':
      return mutateLines(bytes, m);
    case 'replace-field': {
      const text = m.isEscaped ? escapeFor(kind, m.text) : m.text;
      return replaceField(bytes, m.at, iconv.encode(text, encoding), kind);
    }
    case 'replace-value':
      return replaceValue(bytes, m.index, m.text, kind, encoding);
    case 'damage-value':
      return damageValue(bytes, m, kind);
    case 'reencode':
      return iconv.encode(iconv.decode(bytes, encoding), m.to);
  }
}

type LineMutation = Extract<Mutation, { op: 'duplicate-line' | 'drop-line' | 'swap-lines' }>;

/** Line changes work on LF-ended lines, keeping any CR with its line. */
function mutateLines(bytes: Buffer, m: LineMutation): Buffer {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      lines.push(bytes.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  if (lines.length === 0) return bytes;
  const i = m.line % lines.length;
  if (m.op === 'duplicate-line') lines.splice(i, 0, lines[i] as Buffer);
  else if (m.op === 'drop-line') lines.splice(i, 1);
  else {
    const j = m.other % lines.length;
    [lines[i], lines[j]] = [lines[j] as Buffer, lines[i] as Buffer];
  }
  return Buffer.concat(lines);
}

/** Where values sit: XML text and attribute values, CSV fields, the fixed-width detail fields. */
function valueSpans(bytes: Buffer, kind: FeedKind): [number, number][] {
  const text = bytes.toString('latin1'); // one character per byte: indexes are byte offsets
  const spans: [number, number][] = [];
  const collect = (pattern: RegExp) => {
    for (const m of text.matchAll(pattern)) {
      const start = (m.index as number) + (m[0].length - (m[1] as string).length - 1);
      spans.push([start, start + (m[1] as string).length]);
    }
  };
  if (kind === 'xml') {
    collect(/>([^<>]*[^<>\s][^<>]*)</g);
    collect(/="([^"]*)"/g);
  } else if (kind === 'csv') {
    collect(/(?<=^|[;\n])([^;\r\n]*)([;\r\n])/gm);
  } else {
    // D lines: ref 2-11, operation 12-14, date 15-22, offer 23-37, options 38-57, e-mail 58-117.
    const fields = [
      [1, 10],
      [11, 3],
      [14, 8],
      [22, 15],
      [37, 20],
      [57, 60],
    ] as const;
    for (const m of text.matchAll(/^D.*$/gm)) {
      for (const [from, length] of fields)
        spans.push([(m.index as number) + from, (m.index as number) + from + length]);
    }
  }
  return spans.sort((a, b) => a[0] - b[0]);
}

function replaceValue(
  bytes: Buffer,
  index: number,
  text: string,
  kind: FeedKind,
  encoding: Encoding,
): Buffer {
  const spans = valueSpans(bytes, kind);
  if (spans.length === 0) return bytes;
  const [from, to] = spans[index % spans.length] as [number, number];
  let planted = iconv.encode(escapeFor(kind, text), encoding);
  if (kind === 'fixed-width') {
    const padded = Buffer.alloc(to - from, ' ');
    planted.copy(padded, 0, 0, Math.min(planted.length, padded.length));
    planted = padded;
  }
  return Buffer.concat([bytes.subarray(0, from), planted, bytes.subarray(to)]);
}

function damageValue(
  bytes: Buffer,
  m: Extract<Mutation, { op: 'damage-value' }>,
  kind: FeedKind,
): Buffer {
  const spans = valueSpans(bytes, kind);
  if (spans.length === 0) return bytes;
  const [from, to] = spans[m.index % spans.length] as [number, number];
  const at = from + (m.offset % (to - from + 1));
  const planted = Buffer.from(m.bytes);
  if (kind === 'fixed-width') {
    const copy = Buffer.from(bytes);
    planted.copy(copy, at, 0, Math.min(planted.length, to - at));
    return copy;
  }
  return Buffer.concat([bytes.subarray(0, at), planted, bytes.subarray(at)]);
}

/** Whether XML allows `code` at all, even as a reference: not C0 controls but tab and line ends. */
function isXmlChar(code: number): boolean {
  if (code < 0x20) return code === 0x09 || code === 0x0a || code === 0x0d;
  return code !== 0xfffe && code !== 0xffff;
}

/** `text` without what XML refuses: disallowed characters and lone surrogates. */
function xmlSafe(text: string): string {
  let safe = '';
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    const isLoneSurrogate = code >= 0xd800 && code <= 0xdfff;
    if (isXmlChar(code) && !isLoneSurrogate) safe += char;
  }
  return safe;
}

/** `text` as a value that keeps the file well-formed: entities in XML, a quoted CSV field. */
function escapeFor(kind: FeedKind, text: string): string {
  if (kind === 'xml') {
    text = xmlSafe(text);
    const entities: Record<string, string> = {
      '&': '&amp;',
      '<': '&lt;',
      '>': '&gt;',
      '"': '&quot;',
    };
    return text.replace(/[&<>"]/g, (c) => entities[c] as string);
  }
  if (kind === 'csv') return `"${text.replaceAll('"', '""')}"`;
  return text;
}

/** Bytes that end a field: the separators of CSV and XML; fixed width overwrites in place. */
const FIELD_ENDS: Record<FeedKind, Set<number>> = {
  csv: new Set([0x3b, 0x0a, 0x0d]),
  xml: new Set([0x3c, 0x3e, 0x22, 0x0a]),
  'fixed-width': new Set(),
};

function replaceField(bytes: Buffer, at: number, planted: Buffer, kind: FeedKind): Buffer {
  if (bytes.length === 0) return planted;
  const i = at % bytes.length;
  if (kind === 'fixed-width') {
    const copy = Buffer.from(bytes);
    planted.copy(copy, i, 0, Math.min(planted.length, copy.length - i));
    return copy;
  }
  const ends = FIELD_ENDS[kind];
  let from = i;
  while (from > 0 && !ends.has(bytes[from - 1] as number)) from--;
  let to = i;
  while (to < bytes.length && !ends.has(bytes[to] as number)) to++;
  return Buffer.concat([bytes.subarray(0, from), planted, bytes.subarray(to)]);
}
