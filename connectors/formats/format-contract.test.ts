/**
 * The contract every format reader honours (format.ts), run against every format of the
 * registry (registry.ts), each read through the registry as the intake reads it.
 *
 * A new format must join: the suite fails for a registered format with no entry in CASES. Its
 * entry renders generated customers into the format (`head`, one `record` per customer,
 * `tail`), says where the ref, offer and name sit (`sources`) and on which line the n-th record
 * starts (`lineOf`), and gives the ISP-config options of such a file for an encoding
 * (`options`). Then `npx vitest run connectors/formats`.
 *
 * Left out on purpose: format-specific rules (CSV quoting, XML limits, fixed-width trailers)
 * live in each format's own test file.
 */
import type { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { FormatItem } from './format.js';
import {
  type FormatOptions,
  formatFor,
  formatOptionsSchema,
  registeredFormats,
} from './registry.js';
import {
  bytesStream,
  type Customer,
  customerAt,
  customers,
  encodeWithBytes,
  feedStream,
  readAll,
} from './test-feeds.js';
import type { FeedEncoding } from './text-input.js';

type FormatType = FormatOptions['type'];

interface ContractCase {
  sources: { ref: string; offer: string; name: string };
  /** The format options of a file in this layout, as an ISP config writes them. */
  options(encoding: FeedEncoding): { type: FormatType } & Record<string, unknown>;
  head(eol: string): string;
  record(customer: Customer, eol: string): string;
  tail(count: number, eol: string): string;
  /** 1-based line where the record of the customer at `index` starts. */
  lineOf(index: number): number;
}

const csvCase: ContractCase = {
  sources: { ref: 'ref', offer: 'offer', name: 'name' },
  options: (encoding) => ({ type: 'csv', delimiter: ';', encoding }),
  head: (eol) => `ref;offer;name;note${eol}`,
  record: (c, eol) => `${c.ref};${c.offer};"${c.name.replaceAll('"', '""')}";${c.note}${eol}`,
  tail: () => '',
  lineOf: (index) => 2 + index,
};

const xmlCase: ContractCase = {
  sources: { ref: '@ref', offer: 'Contract/Offer', name: 'Name' },
  options: (encoding) => ({ type: 'xml', recordElement: 'Customer', encoding }),
  head: (eol) => `<?xml version="1.0"?>${eol}<Export>${eol}`,
  record: (c, eol) =>
    [
      `  <Customer ref="${c.ref}">`,
      `    <Name>${c.name.replaceAll('&', '&amp;').replaceAll('<', '&lt;')}</Name>`,
      `    <Contract><Offer>${c.offer}</Offer><Note>${c.note}</Note></Contract>`,
      '  </Customer>',
      '',
    ].join(eol),
  tail: (_count, eol) => `</Export>${eol}`,
  lineOf: (index) => 3 + 4 * index,
};

const fixedWidthCase: ContractCase = {
  sources: { ref: 'ref', offer: 'offer', name: 'name' },
  options: (encoding) => ({
    type: 'fixed-width',
    encoding,
    recordType: { start: 1, length: 1 },
    header: { code: 'H' },
    detail: {
      code: 'D',
      fields: {
        ref: { start: 2, length: 8 },
        offer: { start: 10, length: 14 },
        name: { start: 24, length: 30 },
      },
    },
    trailer: { code: 'T', count: { start: 2, length: 9 } },
  }),
  head: (eol) => `H20260101${eol}`,
  record: (c, eol) => `D${c.ref}${c.offer.padEnd(14)}${c.name.padEnd(30)}${c.note}${eol}`,
  tail: (count, eol) => `T${String(count).padStart(9, '0')}${eol}`,
  lineOf: (index) => 2 + index,
};

/** One case per registered format; the typecheck and the first test both insist on it. */
const CASES: Record<FormatType, ContractCase> = {
  csv: csvCase,
  xml: xmlCase,
  'fixed-width': fixedWidthCase,
};

/** A reader of the format as the registry gives it, bound to this case's options. */
interface BoundCase extends ContractCase {
  name: FormatType;
  read(
    input: Readable,
    encoding: FeedEncoding,
    wanted: readonly string[],
  ): AsyncIterable<FormatItem>;
}

function bind(name: FormatType, contract: ContractCase): BoundCase {
  return {
    ...contract,
    name,
    read(input, encoding, wanted) {
      const options = formatOptionsSchema.parse(contract.options(encoding));
      expect(options.type).toBe(name);
      return formatFor(options).read(input, options, { fileName: 'contract-feed', wanted });
    },
  };
}

const REGISTERED: FormatType[] = registeredFormats().map((format) => format.type);

it('has a contract case for every registered format', () => {
  const missing = REGISTERED.filter((type) => !Object.hasOwn(CASES, type));
  expect(missing, 'add an entry to CASES in format-contract.test.ts').toEqual([]);
  expect(REGISTERED.length).toBeGreaterThanOrEqual(3);
});

function* render(format: ContractCase, list: Iterable<Customer>, count: number, eol = '\n') {
  yield format.head(eol);
  for (const customer of list) yield format.record(customer, eol);
  yield format.tail(count, eol);
}

function expectedItems(format: ContractCase, list: Customer[]): FormatItem[] {
  const { sources } = format;
  return list.map((c, index) => ({
    kind: 'record',
    line: format.lineOf(index),
    values: { [sources.ref]: c.ref, [sources.offer]: c.offer, [sources.name]: c.name },
  }));
}

/**
 * Bytes still reachable after a full garbage collection. RSS follows V8's sawtooth of garbage
 * waiting to be collected (tens of MB either way), so it cannot tell holding from not yet
 * collected; the live heap can.
 */
function liveHeapBytes(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

function allSources(format: ContractCase): string[] {
  return [format.sources.ref, format.sources.offer, format.sources.name];
}

describe.each(REGISTERED)('the %s format', (type) => {
  const contract: ContractCase | undefined = CASES[type];
  if (contract === undefined) {
    it('has a contract case', () => {
      throw new Error(`format ${type} is registered but has no entry in CASES`);
    });
    return;
  }
  const format = bind(type, contract);
  const read = (input: Readable, encoding: FeedEncoding = 'utf-8', wanted = allSources(format)) =>
    readAll(format.read(input, encoding, wanted));

  it('reads every record with its values and the line it starts on', async () => {
    const list = customers(25);
    const items = await read(feedStream(render(format, list, list.length)));
    expect(items).toEqual(expectedItems(format, list));
  });

  it('numbers lines the same with CRLF line breaks', async () => {
    const list = customers(25);
    const items = await read(feedStream(render(format, list, list.length, '\r\n')));
    expect(items).toEqual(expectedItems(format, list));
  });

  it('strips a UTF-8 byte order mark', async () => {
    const list = customers(3);
    const input = feedStream(render(format, list, list.length), { hasBom: true });
    expect(await read(input)).toEqual(expectedItems(format, list));
  });

  it.each([
    ['iso-8859-1', "Hélène Garçon à l'Évêché"],
    ['windows-1252', 'Cœur Œillet 20 € é è ç'],
  ] as const)('decodes %s with French accents', async (encoding, name) => {
    const list = [{ ...customerAt(0), name }, customerAt(1)];
    const input = feedStream(render(format, list, list.length), { encoding });
    expect(await read(input, encoding)).toEqual(expectedItems(format, list));
  });

  it('reads the same records whatever the chunk size', async () => {
    const list = customers(12);
    const whole = await read(feedStream(render(format, list, list.length, '\r\n')));
    for (const chunkBytes of [1, 2, 7]) {
      const input = feedStream(render(format, list, list.length, '\r\n'), { chunkBytes });
      expect(await read(input)).toEqual(whole);
    }
  });

  it('returns only the wanted sources', async () => {
    const list = customers(2);
    const items = await read(feedStream(render(format, list, 2)), 'utf-8', [format.sources.ref]);
    expect(items).toEqual(
      list.map((c, index) => ({
        kind: 'record',
        line: format.lineOf(index),
        values: { [format.sources.ref]: c.ref },
      })),
    );
  });

  it('rejects a record whose wanted value holds bytes that are not utf-8', async () => {
    const list = [customerAt(0), { ...customerAt(1), name: 'Ana~s Martin' }, customerAt(2)];
    const text = [...render(format, list, list.length)].join('');
    const items = await read(bytesStream(encodeWithBytes(text, '~', [0xff])));
    expect(items).toEqual([
      expectedItems(format, list)[0],
      {
        kind: 'reject',
        line: format.lineOf(1),
        field: format.sources.name,
        reason: 'invalid utf-8 bytes (is the encoding right?)',
      },
      expectedItems(format, list)[2],
    ]);
  });

  it('refuses a file of zero bytes', async () => {
    await expect(read(bytesStream(Buffer.alloc(0)))).rejects.toMatchObject({
      code: 'FEED_ZERO_BYTES',
    });
  });

  it('refuses a file that holds no record', async () => {
    await expect(read(feedStream(render(format, [], 0)))).rejects.toMatchObject({
      code: 'FEED_EMPTY',
      context: { fileName: 'contract-feed' },
    });
  });

  it('releases its input when the caller stops reading early', async () => {
    const list = customers(5_000);
    const input = feedStream(render(format, list, list.length), { chunkBytes: 4_096 });
    for await (const item of format.read(input, 'utf-8', allSources(format))) {
      expect(item.kind).toBe('record');
      break;
    }
    expect(input.destroyed).toBe(true);
  });

  it('reads a 50 MB file as a stream, in bounded memory', async () => {
    const recordBytes = Buffer.byteLength(format.record(customerAt(0, 200), '\n'));
    const count = Math.ceil((50 * 1024 * 1024) / recordBytes);
    let renderedBytes = 0;
    function* parts() {
      yield format.head('\n');
      for (let start = 0; start < count; start += 1_000) {
        const batch: string[] = [];
        for (let i = start; i < Math.min(count, start + 1_000); i++) {
          batch.push(format.record(customerAt(i, 200), '\n'));
        }
        const text = batch.join('');
        renderedBytes += text.length;
        yield text;
      }
      yield format.tail(count, '\n');
    }

    const liveHeap: number[] = [];
    const checkpoints = new Set([0.1, 0.4, 0.7, 1].map((share) => Math.floor(count * share)));
    let seen = 0;
    let renderedAtFirst = 0;
    for await (const item of format.read(feedStream(parts()), 'utf-8', allSources(format))) {
      seen++;
      if (seen === 1) renderedAtFirst = renderedBytes;
      if (checkpoints.has(seen)) liveHeap.push(liveHeapBytes());
      expect(item.kind).toBe('record');
    }

    expect(seen).toBe(count);
    // Records come out while the file is still being read, not after it was all taken in…
    expect(renderedAtFirst).toBeLessThan(2 * 1024 * 1024);
    // …and the last 45 MB leave nothing behind: the live heap stays flat.
    expect(Math.max(...liveHeap) - (liveHeap[0] as number)).toBeLessThan(8 * 1024 * 1024);
  });
});
