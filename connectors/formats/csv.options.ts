import { z } from 'zod';
import { encoding, singleChar } from '../../config/fields.js';

export const csvOptionsSchema = z
  .strictObject({
    type: z.literal('csv'),
    delimiter: singleChar.default(',').describe('Separates the fields of a row, e.g. ";".'),
    quote: singleChar
      .default('"')
      .describe('Encloses a field that holds the delimiter, a quote or a line break.'),
    escape: singleChar
      .default('"')
      .describe('Escapes a quote inside a quoted field; "" by default.'),
    header: z
      .boolean()
      .default(true)
      .describe('First row names the columns; mappings then use column names.'),
    columns: z
      .array(z.string().min(1))
      .optional()
      .describe('Names for the columns of a file without a header row, in order.'),
    encoding: encoding.default('utf-8'),
    skipLines: z.int().min(0).default(0).describe('Lines to skip before the header or first row.'),
  })
  .describe('Delimited text. Quoted fields may hold delimiters and line breaks.');

export type CsvOptions = z.output<typeof csvOptionsSchema>;
