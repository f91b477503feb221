/**
 * The provisioning protocol between the connector and the subscription server, as schemas:
 * the server validates every body against them, the connector's client builds its requests
 * from the same types. The request schema is strict on purpose: no free text, no unknown
 * field, ids and module codes by pattern, so nothing personal can cross even by mistake.
 *
 * `POST /v1/provisioning/batches`, `Authorization: Bearer <ISP token>`:
 *   request  `{ commands: Command[] }` (1 to 1000)
 *   response `{ results: CommandResult[] }`, one per command, in order.
 */
import { z } from 'zod';

export const MAX_BATCH_COMMANDS = 1000;

export const subscriberIdSchema = z
  .string()
  .regex(
    /^sub_[0-9a-hjkmnp-tv-z]{26}$/,
    'expected a subscriber id (sub_ and 26 base32 characters)',
  );

export const wireModuleCode = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'expected a lowercase module code such as parental-control');

/**
 * The statuses each kind may carry: the status is the subscription after the command, so a
 * cancel that leaves it active would put a `cancelled` event in the ledger of a live customer.
 * A subscribe may be suspended: a snapshot feed lists a new customer already suspended so.
 */
export const STATUSES_OF_KIND = {
  subscribe: ['active', 'suspended'],
  change: ['active', 'suspended'],
  suspend: ['suspended'],
  resume: ['active'],
  cancel: ['cancelled'],
} as const satisfies Record<string, readonly string[]>;

export const commandSchema = z
  .strictObject({
    key: z
      .string()
      .regex(/^sub_[0-9a-hjkmnp-tv-z]{26}:v[1-9][0-9]{0,9}$/, 'expected <subscriberId>:v<version>'),
    kind: z.enum(['subscribe', 'change', 'suspend', 'resume', 'cancel']),
    subscriberId: subscriberIdSchema,
    version: z.int().min(1).max(4_294_967_295),
    modules: z.array(wireModuleCode).max(32),
    status: z.enum(['active', 'suspended', 'cancelled']),
    effectiveAt: z.iso.datetime({ offset: false, precision: 3 }),
    offer: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected an offer code (letters, digits, _ . -)')
      .optional(),
  })
  .superRefine((c, ctx) => {
    const allowed: readonly string[] = STATUSES_OF_KIND[c.kind];
    if (!allowed.includes(c.status)) {
      ctx.addIssue({
        code: 'custom',
        path: ['status'],
        message: `a ${c.kind} command must leave the subscription ${allowed.join(' or ')}, not ${c.status}`,
      });
    }
  });

export const batchRequestSchema = z.strictObject({
  commands: z.array(commandSchema).min(1).max(MAX_BATCH_COMMANDS),
});

export type WireCommand = z.output<typeof commandSchema>;
export type BatchRequest = z.output<typeof batchRequestSchema>;

/** What a subscribe hands back: the key only in the first answer, never in a replay. */
export interface IssuedLicence {
  licenceId: string;
  /** The activation key, grouped for display. Absent from replays: it is shown once. */
  key?: string;
  downloadUrl: string;
  /** ISO 8601 UTC. */
  downloadExpiresAt: string;
  /** ISO 8601 UTC. */
  validUntil: string;
}

export type CommandOutcome =
  /** Applied now. */
  | 'applied'
  /** Applied by an earlier request with this key; the first result, without the key. */
  | 'replayed'
  /** Refused for good (code says why); sending it again will not help. */
  | 'rejected'
  /** Not applied yet (an earlier version of the subscriber is missing); send again later. */
  | 'deferred';

export interface CommandResult {
  key: string;
  outcome: CommandOutcome;
  /** Stable error code for rejected and deferred commands. */
  code?: string;
  message?: string;
  /** For an applied or replayed subscribe. */
  licence?: IssuedLicence;
}

export interface BatchResponse {
  results: CommandResult[];
}

/**
 * `POST /v1/provisioning/deliveries`: the connector reports keys handed over, so the ledger
 * holds a `delivered` event per delivery (licence and instant: a repeated report records once).
 */
export const deliveryReportSchema = z.strictObject({
  deliveries: z
    .array(
      z.strictObject({
        subscriberId: subscriberIdSchema,
        licenceId: z.string().regex(/^lic_[0-9a-hjkmnp-tv-z]{26}$/, 'expected a licence id'),
        channel: z.enum(['email', 'return-file']),
        deliveredAt: z.iso.datetime({ offset: false, precision: 3 }),
      }),
    )
    .min(1)
    .max(MAX_BATCH_COMMANDS),
});

export type DeliveryReport = z.output<typeof deliveryReportSchema>;
