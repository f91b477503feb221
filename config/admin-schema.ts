/**
 * Who may open the admin pages of the api (`admin:` in relais.yaml): the operations page at
 * `/admin` and the queue dashboard at `/admin/queues`. Users sign in with HTTP Basic. A viewer
 * reads everything; an operator may also act on jobs (retry, clean, promote, remove, pause).
 * No user configured means no admin pages: they answer 404 and say how to add one.
 * See docs/admin.md.
 */
import { z } from 'zod';
import { secretString } from './fields.js';

export const ADMIN_ROLES = ['viewer', 'operator'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

/** Shortest password accepted; a browser prompt is easy to brute-force through a short one. */
export const ADMIN_PASSWORD_MIN_LENGTH = 8;

export const adminUserSchema = z
  .strictObject({
    name: z
      .string()
      .regex(
        /^[A-Za-z0-9._@-]{1,64}$/,
        'expected letters, digits, . _ @ - (at most 64; HTTP Basic forbids a colon)',
      )
      .describe('The user name typed at the browser prompt.'),
    role: z
      .enum(ADMIN_ROLES)
      .describe('viewer: read only. operator: may also retry, clean, promote or remove jobs.'),
    password: secretString
      .refine(
        (s) => s.length >= ADMIN_PASSWORD_MIN_LENGTH,
        `the password must be at least ${ADMIN_PASSWORD_MIN_LENGTH} characters`,
      )
      .describe("As '${VAR}' (or VAR_FILE), never the password itself."),
  })
  .describe('One person or robot allowed into the admin pages.');

export const adminSchema = z
  .strictObject({
    users: z
      .array(adminUserSchema)
      .default([])
      .refine(
        (users) => new Set(users.map((u) => u.name)).size === users.length,
        'two admin users have the same name',
      )
      .describe('Admin users; none means /admin and /admin/queues answer 404.'),
  })
  .describe('Sign-in for the operations page (/admin) and the queue dashboard (/admin/queues).');

export type AdminSettings = z.output<typeof adminSchema>;
export type AdminUser = AdminSettings['users'][number];
