/**
 * The file formats Relais reads. This is the one list: a fourth format adds its options schema
 * and its reader here, and touches no other code. The contract suite (format-contract.test.ts)
 * runs every format listed here and fails for one it has no case for.
 */
import { z } from 'zod';
import { csvFormat } from './csv.js';
import { csvOptionsSchema } from './csv.options.js';
import { fixedWidthFormat } from './fixed-width.js';
import { fixedWidthOptionsSchema } from './fixed-width.options.js';
import type { FeedFormat } from './format.js';
import { xmlFormat } from './xml.js';
import { xmlOptionsSchema } from './xml.options.js';

export const formatOptionsSchema = z.discriminatedUnion('type', [
  csvOptionsSchema,
  xmlOptionsSchema,
  fixedWidthOptionsSchema,
]);

export type FormatOptions = z.output<typeof formatOptionsSchema>;

const FORMATS: { [T in FormatOptions['type']]: FeedFormat<Extract<FormatOptions, { type: T }>> } = {
  csv: csvFormat,
  xml: xmlFormat,
  'fixed-width': fixedWidthFormat,
};

export function formatFor<O extends FormatOptions>(options: O): FeedFormat<O> {
  return FORMATS[options.type] as unknown as FeedFormat<O>;
}

/** Every registered format, for what must cover them all (the contract suite). */
export function registeredFormats(): FeedFormat<FormatOptions>[] {
  return Object.values(FORMATS) as FeedFormat<FormatOptions>[];
}
