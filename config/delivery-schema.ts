/**
 * How a new subscriber's activation key and download link reach the customer: an e-mail sent
 * by the connector through the ISP's SMTP relay, or a return file the ISP picks up from its
 * outbox and uses to notify its customers itself.
 */
import { z } from 'zod';
import { port, secretString } from './fields.js';

export const smtpSchema = z
  .strictObject({
    host: z.string().min(1).describe("The ISP's SMTP relay."),
    port: port.default(587).describe('Port of the relay: 587 for STARTTLS, 465 for TLS.'),
    secure: z
      .boolean()
      .default(false)
      .describe('TLS from the first byte (port 465); false: STARTTLS when offered.'),
    requireTls: z
      .boolean()
      .default(false)
      .describe('Refuse to send when the relay does not offer STARTTLS.'),
    user: z.string().optional().describe('Login at the relay, when it asks for one.'),
    password: secretString.optional().describe("As '${VAR}'."),
    timeoutMs: z
      .int()
      .min(100)
      .max(120_000)
      .default(15_000)
      .describe('How long a connection or a reply may take before the send is retried later.'),
  })
  .describe('SMTP relay settings.');

export const emailDeliverySchema = z
  .strictObject({
    smtp: smtpSchema,
    from: z.string().min(3).describe('Sender, e.g. "Demo FAI <securite@demo-fai.example>".'),
    templatesDir: z
      .string()
      .optional()
      .describe(
        'Folder of <language>.subject.txt, <language>.txt and <language>.html templates, relative to this file. Default: the shipped ones.',
      ),
  })
  .describe('Send each key by e-mail to the address in the feed; the address is erased once sent.');

export const returnFileSchema = z
  .strictObject({
    delimiter: z.string().length(1).default(';').describe('Field separator of the return file.'),
  })
  .describe('Write keys-<batch>.csv (customer ref, key, link, expiry) to the ISP outbox.');

export const deliverySchema = z
  .strictObject({
    mode: z
      .enum(['return-file', 'email', 'none'])
      .default('return-file')
      .describe('email: the connector mails the customer; return-file: the ISP does it.'),
    email: emailDeliverySchema.optional(),
    returnFile: returnFileSchema.prefault({}),
  })
  .refine((d) => d.mode !== 'email' || d.email !== undefined, {
    message: 'mode email needs an email section (smtp, from)',
    path: ['email'],
  })
  .describe('How activation keys and download links reach the customers.');

export type DeliverySettings = z.output<typeof deliverySchema>;
