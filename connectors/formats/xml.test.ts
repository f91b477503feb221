import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { FormatItem } from './format.js';
import { feedStream, readAll, readUntilFailure } from './test-feeds.js';
import { MAX_XML_ATTRIBUTES, MAX_XML_RECORD_CHARS, xmlFormat } from './xml.js';
import { type XmlOptions, xmlOptionsSchema } from './xml.options.js';

type Wanted = readonly (string | number)[];

function options(overrides: Partial<XmlOptions> = {}): XmlOptions {
  return xmlOptionsSchema.parse({ type: 'xml', recordElement: 'Customer', ...overrides });
}

function read(text: string, wanted: Wanted, overrides: Partial<XmlOptions> = {}) {
  return xmlFormat.read(feedStream([text]), options(overrides), { fileName: 'export.xml', wanted });
}

/** The values of the records of `text`, in order. */
async function valuesOf(text: string, wanted: Wanted) {
  const items = await readAll(read(text, wanted));
  return items.map((item) => (item.kind === 'record' ? item.values : item));
}

const doc = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<Export>${body}</Export>\n`;

describe('xmlFormat', () => {
  it('matches records and paths by local name, whatever the namespace prefix', async () => {
    const text = [
      '<ex:Export xmlns:ex="urn:export" xmlns="urn:default" xmlns:c="urn:contract">',
      '  <ex:Customer><Ref>1</Ref><c:Contract><c:Offer>BASIC</c:Offer></c:Contract></ex:Customer>',
      '  <Customer><ex:Ref>2</ex:Ref><Contract><Offer>PRO</Offer></Contract></Customer>',
      '</ex:Export>',
    ].join('\n');
    expect(await valuesOf(text, ['Ref', 'Contract/Offer'])).toEqual([
      { Ref: '1', 'Contract/Offer': 'BASIC' },
      { Ref: '2', 'Contract/Offer': 'PRO' },
    ]);
  });

  it('reads attributes of the record and below it, never namespace declarations', async () => {
    const text = doc(
      '<Customer id="007" xmlns:x="urn:x" x:lang="fr"><Contract type="annual"/></Customer>',
    );
    expect(await valuesOf(text, ['@id', '@lang', 'Contract/@type', '@xmlns', '@x'])).toEqual([
      { '@id': '007', '@lang': 'fr', 'Contract/@type': 'annual' },
    ]);
  });

  it.each([
    ['CDATA', '<Name><![CDATA[Dupont & <Fils>]]></Name>', 'Dupont & <Fils>'],
    ['predefined entities', '<Name>A &amp; B &lt;C&gt; &quot;&apos;</Name>', 'A & B <C> "\''],
    ['character references', '<Name>Ren&#233;e &#x20AC;</Name>', 'Renée €'],
    ['text around CDATA', '<Name>a<![CDATA[ b ]]>c</Name>', 'a b c'],
    ['spaces inside a value', '<Name>  Jean  Paul </Name>', '  Jean  Paul '],
    ['an empty element', '<Name/>', ''],
    ['a number with leading zeros', '<Name>000123</Name>', '000123'],
  ])('keeps %s exactly', async (_case, element, value) => {
    expect(await valuesOf(doc(`<Customer>${element}</Customer>`), ['Name'])).toEqual([
      { Name: value },
    ]);
  });

  it('drops whitespace-only text beside child elements', async () => {
    const text = doc('<Customer><Contract>\n  <Offer>B</Offer>\n  x\n</Contract></Customer>');
    expect(await valuesOf(text, ['Contract', 'Contract/Offer'])).toEqual([
      { 'Contract/Offer': 'B', Contract: '\n  x\n' },
    ]);
  });

  it('gives repeated elements as an array in document order, a single one as a string', async () => {
    const text = doc(
      [
        '<Customer><Options><Option>AV</Option><Option>PC</Option></Options>',
        '<Options><Option>BK</Option></Options></Customer>',
        '<Customer><Options><Option>AV</Option></Options></Customer>',
        '<Customer/>',
      ].join(''),
    );
    expect(await valuesOf(text, ['Options/Option'])).toEqual([
      { 'Options/Option': ['AV', 'PC', 'BK'] },
      { 'Options/Option': 'AV' },
      {},
    ]);
  });

  it('finds records at any depth, and keeps a nested record element in the outer record', async () => {
    const text = doc(
      [
        '<Region><Customers><Customer><Ref>1</Ref>',
        '<Sponsor><Customer><Ref>9</Ref></Customer></Sponsor>',
        '</Customer></Customers></Region>',
        '<Customer><Ref>2</Ref></Customer>',
      ].join(''),
    );
    expect(await valuesOf(text, ['Ref', 'Sponsor/Customer/Ref'])).toEqual([
      { Ref: '1', 'Sponsor/Customer/Ref': '9' },
      { Ref: '2' },
    ]);
  });

  it.each(['\n', '\r\n'])('gives each record the line of its start tag (%j)', async (eol) => {
    const text = [
      '<?xml version="1.0"?>',
      '<!-- a comment',
      '     on two lines -->',
      '<Export>',
      '  <Customer><Ref>1</Ref></Customer><Customer><Ref>2</Ref>',
      '  </Customer>',
      '  <Customer',
      '     id="3"><Ref>3</Ref></Customer>',
      '  <Customer><Ref><![CDATA[4',
      ']]></Ref></Customer>',
      '  <Customer>',
      '    <Ref>5</Ref></Customer>',
      '</Export>',
    ].join(eol);
    const items = await readAll(read(text, ['Ref']));
    expect(items.map((item) => item.line)).toEqual([5, 5, 7, 9, 11]);
  });

  it.each([
    [
      'an entity expansion bomb',
      '<!DOCTYPE Export [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
      '<Export><Customer><Ref>&c;</Ref></Customer></Export>',
    ],
    [
      'an external entity',
      '<!DOCTYPE Export [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
      '<Export><Customer><Ref>&secret;</Ref></Customer></Export>',
    ],
    [
      'an external DTD',
      '<!DOCTYPE Export SYSTEM "http://example.com/export.dtd">',
      '<Export><Customer><Ref>1</Ref></Customer></Export>',
    ],
    ['a bare DOCTYPE', '<!DOCTYPE Export>', '<Export><Customer><Ref>1</Ref></Customer></Export>'],
  ])('refuses %s before yielding any record', async (_case, doctype, body) => {
    const text = `<?xml version="1.0"?>\n${doctype}\n${body}`;
    const { items, error } = await readUntilFailure(read(text, ['Ref']));
    expect(items).toEqual([]);
    expect(error).toMatchObject({ code: 'FEED_XML_DOCTYPE', context: { line: 2 } });
  });

  it('refuses elements nested deeper than maxDepth, and accepts maxDepth itself', async () => {
    const nest = (depth: number) => `${'<a>'.repeat(depth - 2)}x${'</a>'.repeat(depth - 2)}`;
    const at = (depth: number) => doc(`<Customer><Ref>1</Ref>${nest(depth)}</Customer>`);
    expect(await valuesOf(at(6), ['Ref'])).toEqual([{ Ref: '1' }]);
    await expect(readAll(read(at(7), ['Ref'], { maxDepth: 6 }))).rejects.toMatchObject({
      code: 'FEED_XML_LIMIT',
      message: expect.stringContaining('deeper than 6'),
    });
  });

  it.each([
    ['a text', (v: string) => `<Name>${v}</Name>`],
    ['an attribute value', (v: string) => `<Name first="${v}"/>`],
    ['a CDATA section', (v: string) => `<Name><![CDATA[${v}]]></Name>`],
    [
      'text split by CDATA',
      (v: string) => `<Name>${v.slice(0, 30)}<![CDATA[${v.slice(30)}]]></Name>`,
    ],
    ['an unwanted text', (v: string) => `<Note>${v}</Note>`],
  ])('refuses %s longer than maxValueBytes, counting bytes', async (_case, element) => {
    const ok = doc(`<Customer>${element('é'.repeat(32))}</Customer>`);
    expect(await readAll(read(ok, ['Name', 'Name/@first'], { maxValueBytes: 64 }))).toHaveLength(1);
    const tooLong = doc(`<Customer>${element(`${'é'.repeat(32)}x`)}</Customer>`);
    const failure = readAll(read(tooLong, ['Name', 'Name/@first'], { maxValueBytes: 64 }));
    await expect(failure).rejects.toMatchObject({ code: 'FEED_XML_LIMIT' });
  });

  it.each([
    ['an element name', (v: string) => `<${v}/>`],
    ['an attribute name', (v: string) => `<Name ${v}="1"/>`],
  ])('refuses %s longer than maxValueBytes, even when read in one slice', async (_case, part) => {
    const ok = doc(`<Customer>${part('n'.repeat(64))}</Customer>`);
    expect(await readAll(read(ok, ['Name'], { maxValueBytes: 64 }))).toHaveLength(1);
    const tooLong = doc(`<Customer>${part('n'.repeat(65))}</Customer>`);
    const failure = readAll(read(tooLong, ['Name'], { maxValueBytes: 64 }));
    await expect(failure).rejects.toMatchObject({ code: 'FEED_XML_LIMIT' });
  });

  it.each([
    ['in one slice', 100],
    ['while saxes still reads the tag', 100_000],
  ])('refuses an element with more than MAX_XML_ATTRIBUTES attributes, %s', async (_c, count) => {
    const attributes = (n: number) => Array.from({ length: n }, (_, i) => ` a${i}="1"`).join('');
    const ok = doc(`<Customer${attributes(MAX_XML_ATTRIBUTES)}/>`);
    expect(await readAll(read(ok, ['@a1']))).toEqual([
      { kind: 'record', line: 2, values: { '@a1': '1' } },
    ]);
    const tooMany = doc(`<Customer><Name${attributes(MAX_XML_ATTRIBUTES + count)}/></Customer>`);
    await expect(readAll(read(tooMany, ['Name']))).rejects.toMatchObject({
      code: 'FEED_XML_LIMIT',
      message: expect.stringContaining(`more than ${MAX_XML_ATTRIBUTES} attributes`),
    });
  });

  it('refuses a record longer than MAX_XML_RECORD_CHARS, before it ends', async () => {
    const option = '<Option>AB</Option>';
    const count = Math.ceil(MAX_XML_RECORD_CHARS / option.length);
    const inside = `<Customer><Ref>1</Ref><Options>${option.repeat(count)}</Options></Customer>`;
    const { items, error } = await readUntilFailure(
      read(doc(`<Customer><Ref>0</Ref></Customer>${inside}`), ['Ref', 'Options/Option']),
    );
    expect(items).toEqual([{ kind: 'record', line: 2, values: { Ref: '0' } }]);
    expect(error).toMatchObject({
      code: 'FEED_XML_LIMIT',
      message: expect.stringContaining(`a Customer record is longer than ${MAX_XML_RECORD_CHARS}`),
    });
    const short = doc(`<Customer><Options>${option.repeat(1_000)}</Options></Customer>`);
    const [record] = await readAll(read(short, ['Options/Option']));
    expect(record?.kind === 'record' && record.values['Options/Option']).toHaveLength(1_000);
  });

  it.each([
    ['a comment', '<!--'],
    ['a processing instruction', '<?'],
  ])('refuses %s longer than maxValueBytes while saxes still reads it', async (_case, start) => {
    const text = `<Export><Customer><Ref>1</Ref></Customer>${start}${'n'.repeat(200_000)}`;
    const { items, error } = await readUntilFailure(read(text, ['Ref']));
    expect(items).toEqual([{ kind: 'record', line: 1, values: { Ref: '1' } }]);
    expect(error).toMatchObject({ code: 'FEED_XML_LIMIT' });
  });

  it('refuses a 2 GB text node after reading a few kilobytes of it', async () => {
    const totalBytes = 2 * 1024 ** 3;
    const chunk = Buffer.alloc(16 * 1024, 'x');
    let pulledBytes = 0;
    function* huge() {
      yield Buffer.from('<Export><Customer><Name>');
      for (let sent = 0; sent < totalBytes; sent += chunk.length) {
        pulledBytes += chunk.length;
        yield chunk;
      }
    }
    const input = Readable.from(huge(), { objectMode: false });
    const context = { fileName: 'export.xml', wanted: ['Name'] };
    const failure = readAll(xmlFormat.read(input, options({ maxValueBytes: 65_536 }), context));
    await expect(failure).rejects.toMatchObject({ code: 'FEED_XML_LIMIT' });
    expect(pulledBytes).toBeLessThan(256 * 1024);
  });

  it.each([
    ['an unclosed element', '<Export>\n<Customer><Ref>1</Ref>\n', 3, 1],
    ['a mismatched end tag', '<Export>\n  <Customer><Ref>1</Rf></Customer></Export>', 2, 23],
    ['an undefined entity', '<Export>\n<Customer><Ref>&nbsp;</Ref></Customer></Export>', 2, 21],
    ['an unbound prefix', '<Export>\n<x:Customer/></Export>', 2, 13],
    ['text after the root', '<Export><Customer/></Export>\njunk', 2, 4],
    ['no root element', '<?xml version="1.0"?>\n', 2, 1],
  ])('refuses %s with its line and column', async (_case, text, line, column) => {
    const { error } = await readUntilFailure(read(text, ['Ref']));
    expect(error).toMatchObject({ code: 'FEED_XML_MALFORMED', context: { line, column } });
    expect((error as Error).message).toMatch(
      new RegExp(`^export\\.xml:${line}:${column}: the xml is not well-formed: `),
    );
  });

  it('refuses a document without any record element', async () => {
    await expect(readAll(read(doc('<Client/>'), ['Ref']))).rejects.toMatchObject({
      code: 'FEED_EMPTY',
      message: 'export.xml: the file holds no Customer element',
    });
  });

  it.each([['a//b'], ['@a/b'], ['Contract/'], [3], ['x:Offer']])(
    'refuses the source %j, which is not a path of local names',
    async (source) => {
      await expect(readAll(read(doc('<Customer/>'), [source]))).rejects.toMatchObject({
        name: 'ConfigError',
        code: 'CONFIG_INVALID',
      });
    },
  );

  it('rejects a record whose value did not decode in windows-1252', async () => {
    const bytes = Buffer.concat([
      Buffer.from('<Export><Customer><Ref>1</Ref><Name>a'),
      Buffer.from([0x81]),
      Buffer.from('</Name></Customer></Export>'),
    ]);
    const input = Readable.from([bytes], { objectMode: false });
    const context = { fileName: 'export.xml', wanted: ['Ref', 'Name'] };
    const items: FormatItem[] = await readAll(
      xmlFormat.read(input, options({ encoding: 'windows-1252' }), context),
    );
    expect(items).toEqual([
      {
        kind: 'reject',
        line: 1,
        field: 'Name',
        reason: 'invalid windows-1252 bytes (is the encoding right?)',
      },
    ]);
  });
});
