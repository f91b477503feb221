import { z } from 'zod';
import { encoding } from '../../config/fields.js';

const position = z.strictObject({
  start: z.int().min(1).describe('1-based position of the first character.'),
  length: z.int().min(1),
});

export const fixedWidthOptionsSchema = z
  .strictObject({
    type: z.literal('fixed-width'),
    encoding: encoding.default('utf-8'),
    recordType: position
      .optional()
      .describe('Where the record-type code sits; absent when every line is a detail record.'),
    header: z.strictObject({ code: z.string().min(1) }).optional(),
    detail: z.strictObject({
      code: z.string().min(1).optional(),
      fields: z.record(z.string().regex(/^[A-Za-z_][\w-]*$/), position),
    }),
    trailer: z
      .strictObject({
        code: z.string().min(1),
        count: position.describe('Where the trailer holds the number of detail records.'),
      })
      .optional()
      .describe('A trailer whose count differs from the details read refuses the whole file.'),
    trim: z.boolean().default(true).describe('Strip padding spaces around each field.'),
  })
  .describe('Fixed-width lines: fields at positions, record types by a leading code.');

export type FixedWidthOptions = z.output<typeof fixedWidthOptionsSchema>;
