import { z } from 'zod';
import { encoding } from '../../config/fields.js';

const position = z.strictObject({
  start: z.int().min(1).describe('1-based position of the first character.'),
  length: z.int().min(1).describe('Number of characters.'),
});

export const fixedWidthOptionsSchema = z
  .strictObject({
    type: z.literal('fixed-width'),
    encoding: encoding.default('utf-8'),
    recordType: position
      .optional()
      .describe('Where the record-type code sits; absent when every line is a detail record.'),
    header: z
      .strictObject({
        code: z.string().min(1).describe('Record-type code of the header line.'),
      })
      .optional()
      .describe('A header line: skipped on the first line, a rejected record anywhere else.'),
    detail: z
      .strictObject({
        code: z
          .string()
          .min(1)
          .optional()
          .describe('Record-type code of detail lines; absent when every line is a detail.'),
        fields: z
          .record(z.string().regex(/^[A-Za-z_][\w-]*$/), position)
          .describe('Field name to its position; intake.fields names these in from.'),
      })
      .describe('The detail lines: one per customer (snapshot) or per change (delta).'),
    trailer: z
      .strictObject({
        code: z.string().min(1).describe('Record-type code of the trailer line.'),
        count: position.describe('Where the trailer holds the number of detail records.'),
      })
      .optional()
      .describe('A trailer whose count differs from the details read refuses the whole file.'),
    trim: z.boolean().default(true).describe('Strip padding spaces around each field.'),
  })
  .describe('Fixed-width lines: fields at positions, record types by a leading code.');

export type FixedWidthOptions = z.output<typeof fixedWidthOptionsSchema>;
