import { z } from 'zod';
import { secretString } from '../../config/fields.js';

export const httpPushOptionsSchema = z
  .strictObject({
    type: z.literal('http'),
    secret: secretString
      .refine((s) => s.length >= 32, 'the signing secret must be at least 32 characters')
      .describe("Shared HMAC-SHA256 key, as '${VAR}'. Each ISP has its own."),
    maxBodyBytes: z
      .int()
      .min(1_024)
      .default(104_857_600)
      .describe('Largest accepted push, in bytes; larger answers 413 without reading the rest.'),
    replayWindowS: z
      .int()
      .min(10)
      .max(3_600)
      .default(300)
      .describe(
        'How far the signed timestamp may be from our clock; a signature is accepted once.',
      ),
  })
  .describe('The ISP pushes files to POST /v1/isps/<isp-id>/feeds, signed with HMAC-SHA256.');

export type HttpPushOptions = z.output<typeof httpPushOptionsSchema>;
