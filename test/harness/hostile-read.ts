/**
 * One feed kind read the way its shipped ISP reads it (the registry's reader with the ISP's
 * format options, then the ISP's mapping), with every oracle of issue 7 in one call: shared by
 * the property tests (connectors/formats/readers.property.test.ts) and the fuzz run
 * (test/chaos/fuzz.chaos.test.ts), so both prove the same things.
 */
import type { IspConfig } from '../../config/load.js';
import { type FormatOptions, formatFor } from '../../connectors/formats/registry.js';
import { createRecordMapper, type RecordMapper } from '../../mappings/record-mapper.js';
import { buildFeed, FEED_ISP, type FeedKind, type FeedSpec } from '../generators/hostile-feeds.js';
import { type MappingRules, resultViolations } from './mapping-oracle.js';
import {
  outcomeDifferences,
  type ReadOutcome,
  type ReadSubject,
  readOutcome,
  readViolations,
} from './reader-oracle.js';
import type { ShippedIsp } from './shipped-isps.js';

export interface HostileReader {
  isp: IspConfig;
  rules: MappingRules;
  mapper: RecordMapper;
  subjectOf(bytes: Buffer, personal: string[]): ReadSubject;
  read(subject: ReadSubject, chunkSizes: readonly number[]): Promise<ReadOutcome>;
  /** What is wrong with mapping the records of `outcome`; counts accepted and rejected. */
  mappingViolations(
    outcome: ReadOutcome,
    counts?: { accepted: number; rejected: number },
  ): string[];
  /** Every oracle at once: the read, the same read in other chunks, the mapping. */
  check(spec: FeedSpec, chunkSizes: readonly number[]): Promise<string[]>;
}

export function hostileReader(kind: FeedKind, isps: Record<ShippedIsp, IspConfig>): HostileReader {
  const isp = isps[FEED_ISP[kind]];
  const rules: MappingRules = {
    fields: isp.intake.fields,
    offers: isp.offers,
    mode: isp.intake.mode,
  };
  const mapper = createRecordMapper({ ...rules, timeZone: isp.timeZone });
  const options = isp.intake.format as FormatOptions;
  const format = formatFor(options);

  const reader: HostileReader = {
    isp,
    rules,
    mapper,
    subjectOf: (bytes, personal) => ({
      bytes,
      personal,
      fileName: `feed.${kind}`,
      wanted: mapper.wanted,
      isOneRecordPerLine: kind !== 'xml',
    }),
    read: (subject, chunkSizes) => readOutcome(format, options, subject, chunkSizes),
    mappingViolations(outcome, counts) {
      const found: string[] = [];
      for (const item of outcome.items) {
        if (item.kind === 'reject') continue;
        const result = mapper.map(item);
        if (counts !== undefined) {
          if (result.ok) counts.accepted++;
          else counts.rejected++;
        }
        found.push(...resultViolations(rules, result, item));
      }
      return found;
    },
    async check(spec, chunkSizes) {
      const { bytes, personal } = buildFeed(spec);
      const subject = reader.subjectOf(bytes, personal);
      const whole = await reader.read(subject, [Math.max(1, bytes.length)]);
      const chunked = await reader.read(subject, chunkSizes);
      return [
        ...readViolations(whole, subject),
        ...readViolations(chunked, subject).map((v) => `in chunks: ${v}`),
        ...outcomeDifferences(whole, chunked),
        ...reader.mappingViolations(chunked),
      ];
    },
  };
  return reader;
}
