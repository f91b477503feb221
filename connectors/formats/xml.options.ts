import { z } from 'zod';
import { encoding } from '../../config/fields.js';

export const xmlOptionsSchema = z
  .strictObject({
    type: z.literal('xml'),
    recordElement: z
      .string()
      .regex(/^[A-Za-z_][\w.-]*$/, 'expected an element name without prefix, e.g. Customer')
      .describe('Local name (no namespace prefix) of the element that holds one customer.'),
    encoding: encoding.default('utf-8'),
    maxDepth: z.int().min(2).max(256).default(32).describe('Deeper nesting refuses the file.'),
    maxValueBytes: z
      .int()
      .min(64)
      .default(65_536)
      .describe('Longest text or attribute value accepted, in bytes; longer refuses the file.'),
  })
  .describe(
    'XML, read as a stream; fields are paths below the record element (Contract/Offer, @id).',
  );

export type XmlOptions = z.output<typeof xmlOptionsSchema>;
