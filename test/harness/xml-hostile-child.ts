/**
 * Child process of test/xml-hostile.int.test.ts: reads hostile XML cases
 * (test/generators/hostile-xml.ts) one after the other, the way the intake reads an
 * alpha-telecom feed (the registry's reader with the shipped ISP's options and mapping), and
 * prints one JSON line per case: how the read ended, how long after the offending bytes, how
 * many bytes it pulled, and how much resident memory grew. A process of its own, so that the
 * memory measured is these reads' alone: before each read the garbage is collected and the
 * peak RSS mark (VmHWM) reset, and the mark is read right after.
 *
 *   node --expose-gc --import tsx test/harness/xml-hostile-child.ts http://127.0.0.1:<port> '<case>'…
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { type FormatOptions, formatFor } from '../../connectors/formats/registry.js';
import { createRecordMapper } from '../../mappings/record-mapper.js';
import { isRelaisError } from '../../platform/errors.js';
import { hostileXmlCases, type PullState } from '../generators/hostile-xml.js';
import { encode, generateCustomers, renderXml } from '../generators/isp-exports.js';
import { loadShippedIsps } from './shipped-isps.js';

export interface ChildReport {
  code: string | undefined;
  name: string | undefined;
  message: string;
  context: Record<string, unknown> | undefined;
  records: number;
  /** From the first offending byte handed out to the end of the read. */
  afterOffendingMs: number;
  pulledBytes: number;
  /** Peak resident memory during the read, above the resident memory just before it. */
  rssGrowthBytes: number;
}

function statusKb(field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(
    readFileSync('/proc/self/status', 'utf8'),
  );
  return Number(match?.[1] ?? Number.NaN);
}

type Read = (input: Readable) => Promise<number>;

/** Reads as the intake reads alpha-telecom feeds; resolves with the records mapped as valid. */
function alphaTelecomRead(): Read {
  const isp = loadShippedIsps()['alpha-telecom'];
  const options = isp.intake.format as FormatOptions;
  const format = formatFor(options);
  const mapper = createRecordMapper({
    fields: isp.intake.fields,
    offers: isp.offers,
    timeZone: isp.timeZone,
    mode: isp.intake.mode,
  });
  return async (input) => {
    let records = 0;
    const context = { fileName: 'clients-hostile.xml', wanted: mapper.wanted };
    for await (const item of format.read(input, options, context)) {
      if (item.kind === 'record' && mapper.map(item).ok) records++;
    }
    return records;
  };
}

async function readCase(read: Read, caseName: string, httpBase: string): Promise<ChildReport> {
  const state: PullState = { offendingAtMs: undefined, pulledBytes: 0 };
  const hostile = hostileXmlCases(httpBase, state)[caseName];
  if (hostile === undefined) throw new Error(`no hostile case ${JSON.stringify(caseName)}`);
  const input = Readable.from(hostile.chunks(), { objectMode: false });
  global.gc?.();
  const baselineKb = statusKb('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  let records = 0;
  let error: unknown;
  try {
    records = await read(input);
  } catch (err) {
    error = err;
  }
  const endMs = performance.now();
  const peakKb = statusKb('VmHWM');
  return {
    code: isRelaisError(error) ? error.code : undefined,
    name: error instanceof Error ? error.name : undefined,
    message: error instanceof Error ? error.message : String(error),
    context: isRelaisError(error) ? error.context : undefined,
    records,
    afterOffendingMs: endMs - (state.offendingAtMs ?? endMs),
    pulledBytes: state.pulledBytes,
    rssGrowthBytes: (peakKb - baselineKb) * 1024,
  };
}

const [httpBase = 'http://127.0.0.1:9', ...caseNames] = process.argv.slice(2);
const read = alphaTelecomRead();
// Warm up: modules loaded and code compiled, so that what is measured is the hostile reads.
await read(Readable.from([encode(renderXml(generateCustomers(200, 3)))]));
for (const caseName of caseNames) {
  process.stdout.write(`${JSON.stringify(await readCase(read, caseName, httpBase))}\n`);
}
