/**
 * Every error code Relais raises on purpose, with what it means and what to do about it.
 *
 * This table is the single source of `docs/errors.md` (a test fails when the two drift). Codes
 * are SCREAMING_SNAKE with an area prefix. A retired code keeps its row with `retired: true` and
 * is never reused: support staff at ISPs quote these codes in tickets.
 */
export interface ErrorCodeInfo {
  /** HTTP status when the error reaches an API client. */
  readonly httpStatus: number;
  /** One sentence: what happened. */
  readonly meaning: string;
  /** One sentence: what the person reading it should do. */
  readonly action: string;
  readonly retired?: true;
}

export const ERROR_CODES = {
  CONFIG_INVALID: {
    httpStatus: 500,
    meaning:
      'A configuration file does not match its schema; every problem is listed with file, line and column.',
    action: 'Fix each listed line, then run `relais config check` until it prints no problem.',
  },
  CONFIG_NOT_FOUND: {
    httpStatus: 500,
    meaning: 'A configuration file does not exist or cannot be read.',
    action: 'Check the path given with --config (or RELAIS_CONFIG) and the file permissions.',
  },
  DB_UNAVAILABLE: {
    httpStatus: 503,
    meaning: 'MySQL/MariaDB could not be reached or refused the connection.',
    action:
      'Check that the database server is up and that mysql settings in relais.yaml are right; Relais retries transient failures.',
  },
  DB_MIGRATIONS_PENDING: {
    httpStatus: 503,
    meaning: 'The database schema is older than this version of Relais.',
    action: 'Run `relais migrate` before starting this version.',
  },
  REDIS_UNAVAILABLE: {
    httpStatus: 503,
    meaning: 'Redis could not be reached, so no work can be queued.',
    action: 'Check that Redis is up; producers fail fast and callers may retry later.',
  },
  ISP_UNKNOWN: {
    httpStatus: 404,
    meaning: 'No enabled ISP has this id in config/isps/.',
    action: 'Check the ISP id (the config file name) and that the ISP is enabled.',
  },
  FEED_ZERO_BYTES: {
    httpStatus: 422,
    meaning: 'The file is empty (0 bytes); an export always has at least a header or a record.',
    action: 'Ask the ISP to check its export job: an empty file usually means it failed.',
  },
  FEED_EMPTY: {
    httpStatus: 422,
    meaning: 'The file holds no customer record (for example a header row only).',
    action:
      'Ask the ISP to check its export; an empty snapshot would cancel everyone, so it is refused.',
  },
  FEED_COLUMNS_MISSING: {
    httpStatus: 422,
    meaning: 'The header row lacks columns the ISP config maps.',
    action:
      'Compare the header with intake.fields in the ISP config; the message lists the missing columns.',
  },
  FEED_CSV_MALFORMED: {
    httpStatus: 422,
    meaning: 'The CSV cannot be split into records (for example a quote that never closes).',
    action:
      'Look at the reported line in the kept copy of the file; check delimiter, quote and encoding in the config.',
  },
  FEED_ENCODING_INVALID: {
    httpStatus: 422,
    meaning:
      'The file is not in the configured encoding: bytes that do not decode, or a header that reads like UTF-8 decoded as Latin-1.',
    action:
      'Check intake.format.encoding (utf-8, iso-8859-1, windows-1252) against what the ISP sends.',
  },
  FEED_XML_MALFORMED: {
    httpStatus: 422,
    meaning: 'The XML is not well-formed.',
    action:
      'Look at the reported line and column in the kept copy; the ISP must send well-formed XML.',
  },
  FEED_XML_DOCTYPE: {
    httpStatus: 422,
    meaning:
      'The XML declares a DOCTYPE or entities, which are refused (external entities and expansion bombs).',
    action: 'Ask the ISP to send plain XML without a DOCTYPE.',
  },
  FEED_XML_LIMIT: {
    httpStatus: 422,
    meaning:
      'The XML exceeds a safety limit: nesting depth, the length of one value or name, the attributes of one element, or the length of one record.',
    action:
      'Check the file; raise intake.format.maxDepth or maxValueBytes only if the data is legitimate.',
  },
  FEED_TRAILER_MISMATCH: {
    httpStatus: 422,
    meaning:
      'The trailer record counts a different number of records than the file holds: the transfer was probably truncated.',
    action: 'Ask the ISP to send the file again; nothing of it was applied.',
  },
  FEED_TRAILER_MISSING: {
    httpStatus: 422,
    meaning:
      'The file ends without the trailer record its config requires: the transfer was probably truncated.',
    action: 'Ask the ISP to send the file again; nothing of it was applied.',
  },
  FEED_TOO_MANY_REJECTS: {
    httpStatus: 422,
    meaning:
      'More records were rejected than intake.rejects.refuseFileAbove allows, so the whole file was refused.',
    action:
      'Read the rejects file in the ISP outbox, fix the export or the mapping, and send the file again.',
  },
  FEED_TOO_LARGE: {
    httpStatus: 413,
    meaning: 'A pushed file is larger than intake.transport.maxBodyBytes.',
    action: 'Send a smaller file, or raise maxBodyBytes for this ISP if the size is legitimate.',
  },
  FEED_SUPERSEDED: {
    httpStatus: 409,
    meaning:
      'A held snapshot was not applied because a newer snapshot of the same ISP was applied after it.',
    action:
      'Nothing to do: the newer snapshot reflects the ISP list; approving the old one would roll it back.',
  },
  FEED_HELD_DROPPED: {
    httpStatus: 409,
    meaning:
      'An operator dropped a held snapshot with relais feeds reject; nothing of it was applied.',
    action: 'Ask the ISP for a corrected export if the snapshot was wrong.',
  },
  FEED_NOT_FOUND: {
    httpStatus: 404,
    meaning: 'No feed has this id.',
    action: 'List feeds with relais feeds list to find the id.',
  },
  FEED_NOT_HELD: {
    httpStatus: 409,
    meaning: 'Only a held snapshot can be approved or rejected, and this feed is not held.',
    action: 'Check the feed status with relais feeds show.',
  },
  FEED_PUSH_UNAUTHORIZED: {
    httpStatus: 401,
    meaning:
      'A pushed file was refused: missing or wrong signature, or a timestamp outside the replay window.',
    action:
      'Sign timestamp + "." + body with HMAC-SHA256 and the ISP secret; check the sender clock.',
  },
  FEED_PUSH_REPLAYED: {
    httpStatus: 409,
    meaning: 'This exact signed request was already received; a replay is refused.',
    action:
      'Send a new request with a fresh timestamp; the same content then answers with the existing feed id.',
  },
  SFTP_HOST_KEY_MISMATCH: {
    httpStatus: 502,
    meaning:
      'The SFTP server presented a host key other than the pinned fingerprint: possibly a man in the middle, or a rebuilt server.',
    action: 'Confirm the new fingerprint with the ISP out of band, then update hostKeyFingerprint.',
  },
  SFTP_AUTH_FAILED: {
    httpStatus: 502,
    meaning: 'The SFTP server refused the credentials.',
    action: 'Check username, password or private key for this ISP.',
  },
  SFTP_CONNECT_FAILED: {
    httpStatus: 502,
    meaning: 'The SFTP server could not be reached after the configured retries.',
    action: 'Check host, port and network; Relais tries again at the next poll.',
  },
  SFTP_TRANSFER_FAILED: {
    httpStatus: 502,
    meaning: 'A transfer broke off or did not deliver the expected size.',
    action:
      'Nothing partial is kept; Relais retries at the next poll. Check the server if it persists.',
  },
  TRANSPORT_IO_FAILED: {
    httpStatus: 500,
    meaning: 'A local file operation on an inbox, staging or outbox folder failed.',
    action: 'Check that the folder exists and that the Relais user may read and write it.',
  },
  BILLING_DELIVERY_CHANGED: {
    httpStatus: 409,
    meaning:
      'A month-end file was already delivered to the ISP outbox with other content; a closed period file must never change, so the new one was not uploaded.',
    action:
      'Compare the two files (the ledger row names the delivered checksum) and find out why the output changed; nothing was overwritten.',
  },
  BILLING_OUTBOX_OCCUPIED: {
    httpStatus: 409,
    meaning:
      'A file with other content already sits under the final name in the ISP outbox, and Relais never overwrites one.',
    action: 'Ask the ISP what the file is; move it away if it is stale, then retry the delivery.',
  },
  BILLING_DELIVERY_BUSY: {
    httpStatus: 409,
    meaning: 'Another process is delivering the files of this ISP and period right now.',
    action: 'Nothing: retry later; the other delivery finishes the job.',
  },
  PROVISIONING_UNAUTHORIZED: {
    httpStatus: 401,
    meaning: 'The provisioning request carries no valid ISP credential.',
    action: 'Send `Authorization: Bearer <token>` with the ISP token of `licensing.apiToken`.',
  },
  PROVISIONING_INVALID: {
    httpStatus: 400,
    meaning:
      'The provisioning body breaks the strict schema (an unknown or free-text field, a bad id, module or date); nothing in it was applied.',
    action: 'Read the path in the message (for example commands[3].email) and fix the sender.',
  },
  PROVISIONING_KEY_CONFLICT: {
    httpStatus: 409,
    meaning: 'An idempotency key was sent again with a different command body.',
    action: 'A key names one command forever: look for a sender that reuses keys.',
  },
  PROVISIONING_OUT_OF_ORDER: {
    httpStatus: 409,
    meaning:
      "A subscriber's command arrived before an earlier version of the same subscriber; it was held back.",
    action: 'Nothing: the worker sends it again after the earlier command, with backoff.',
  },
  PROVISIONING_STALE_VERSION: {
    httpStatus: 409,
    meaning: 'A command carries a version older than the one already applied for its subscriber.',
    action: 'Check the connector state of this subscriber; the newer state was kept.',
  },
  PROVISIONING_REJECTED: {
    httpStatus: 422,
    meaning:
      'The server refused a command for good (see the per-command code); the connector recorded it.',
    action: 'Read `relais provisioning rejections` for the subscriber and the reason.',
  },
  SUBSCRIBER_NOT_FOUND: {
    httpStatus: 404,
    meaning: 'No subscriber with this id belongs to the calling ISP.',
    action: 'Check the subscriber id; an ISP only sees its own subscribers.',
  },
  SUBSCRIBER_ERASED: {
    httpStatus: 410,
    meaning: "The subscriber was erased at the ISP's request; nothing more can be done with it.",
    action: 'Nothing: a customer who comes back gets a new subscriber id.',
  },
  LICENCE_NOT_FOUND: {
    httpStatus: 404,
    meaning: 'No licence with this id, or the device presenting it is not bound to it.',
    action: 'Activate again with the activation key.',
  },
  KEY_ALREADY_ACTIVATED: {
    httpStatus: 409,
    meaning: 'A new key was asked for a licence already activated on a device.',
    action: 'Free the device first, or give the customer the key already delivered.',
  },
  ACTIVATION_KEY_INVALID: {
    httpStatus: 404,
    meaning: 'The activation key is unknown or mistyped (the answer is the same for both).',
    action:
      'Check the key as printed in the e-mail or letter; the check character catches most typos.',
  },
  ACTIVATION_KEY_MALFORMED: {
    httpStatus: 400,
    meaning:
      'The text is not shaped like an activation key (length, characters or check character).',
    action: 'Type the key again: it has 25 characters in 5 groups, letters and digits only.',
  },
  ACTIVATION_SUSPENDED: {
    httpStatus: 403,
    meaning: 'The subscription is suspended by the ISP; the licence works again when resumed.',
    action: 'The customer should contact the ISP about the account.',
  },
  ACTIVATION_CANCELLED: {
    httpStatus: 403,
    meaning: 'The subscription was cancelled or its licence revoked or expired.',
    action: 'The customer should subscribe again through the ISP.',
  },
  ACTIVATION_SEAT_LIMIT: {
    httpStatus: 409,
    meaning: 'Every device seat of the licence is taken.',
    action: 'Free a device (`DELETE /v1/licences/:id/devices/:device`) or use one already bound.',
  },
  DEVICE_TRANSFER_LIMIT: {
    httpStatus: 429,
    meaning: 'The licence has used its device transfers for this month.',
    action: 'Wait for next month, or ask support; the cap stops activate/deactivate cycling.',
  },
  DEVICE_NOT_FOUND: {
    httpStatus: 404,
    meaning: 'No active device with this id is bound to the licence.',
    action: 'List the devices in the current licence document and use one of their ids.',
  },
  RATE_LIMITED: {
    httpStatus: 429,
    meaning: 'Too many requests from this address or for this key prefix; see Retry-After.',
    action: 'Wait the number of seconds in Retry-After before trying again.',
  },
  ACTIVATION_LOCKED: {
    httpStatus: 429,
    meaning:
      'Too many failed activation attempts; further attempts are refused for a growing delay.',
    action: 'Wait the number of seconds in Retry-After, then type the key carefully.',
  },
  DOWNLOAD_LINK_INVALID: {
    httpStatus: 403,
    meaning: 'The download link is expired, tampered with or replaced by a newer one.',
    action: 'Ask the ISP for a new link (it can re-issue one).',
  },
  DOWNLOAD_MODULE_UNAVAILABLE: {
    httpStatus: 404,
    meaning: 'The link does not cover this module, or its installer is missing on the server.',
    action: 'Use a module listed by the link; an operator checks the installers folder.',
  },
  DELIVERY_FAILED: {
    httpStatus: 502,
    meaning: "A key could not be handed to the ISP's SMTP relay or written to its outbox.",
    action: 'Nothing is lost: delivery is retried with backoff; check the relay or the folder.',
  },
  DELIVERY_TEMPLATE_INVALID: {
    httpStatus: 500,
    meaning: 'An e-mail template of the ISP is missing or uses an unknown placeholder.',
    action: 'Fix the template named in the message and run `relais config check`.',
  },
  LICENSING_SERVER_UNAVAILABLE: {
    httpStatus: 503,
    meaning: 'The subscription server did not answer or answered 5xx.',
    action: 'Nothing: provisioning is retried with backoff; check the server if it lasts.',
  },
  BILLING_LINE_INVALID: {
    httpStatus: 502,
    meaning: 'A rated line streamed by the subscription server does not match the wire schema.',
    action: 'Nothing was written; report the line and field named to the vendor.',
  },
  BILLING_SUBSCRIBER_UNKNOWN: {
    httpStatus: 500,
    meaning:
      'A rated line names a subscriber id this connector has never mapped to a customer ref.',
    action:
      'Nothing was written; check that the connector database is the one that provisioned this ISP.',
  },
  RECONCILIATION_EXPORT_NOT_FOUND: {
    httpStatus: 404,
    meaning:
      "No file in the ISP's billing-export inbox matches billing.reconciliation.source.pattern.",
    action:
      'Check that the ISP sent its export and that the pattern matches its name, or name the file: relais reconcile --isp ID --period YYYY-MM FILE.',
  },
  PERIOD_INVALID: {
    httpStatus: 400,
    meaning: 'The period is not a YYYY-MM month, or it has not ended yet in the ISP time zone.',
    action: 'Give a past month such as 2026-11.',
  },
  BILLING_NOT_CONFIGURED: {
    httpStatus: 409,
    meaning:
      'The ISP config has no billing section, so none of its periods can be rated or closed.',
    action:
      'Add billing (currency, prices, ...) to config/isps/<isp>.yaml and run `relais config check`.',
  },
  BILLING_PRICE_MISSING: {
    httpStatus: 409,
    meaning:
      'A module entitled to a licence of the ISP has no price in the price list in force on the first day of the period (or no list is in force then); the period was not closed.',
    action:
      'Add the named module to billing.prices in the ISP config (a list whose from is on or before the 1st), then close the period again.',
  },
  BILLING_PERIOD_NOT_CLOSABLE: {
    httpStatus: 409,
    meaning:
      'The period has not ended plus the ISP cutoff days yet, so late events could still arrive; nothing was closed.',
    action:
      'Wait until the date in the message (the schedule closes it then), or use --force in a test environment only.',
  },
  BILLING_PERIOD_OUT_OF_ORDER: {
    httpStatus: 409,
    meaning:
      'A later period of the ISP is already closed; an earlier one cannot be closed after it, because its late events already went into adjustments.',
    action:
      'Nothing to close: usage of the earlier month is billed as adjustments of later periods.',
  },
  BILLING_PERIOD_NOT_CLOSED: {
    httpStatus: 409,
    meaning:
      'The period asked for has not been closed for this ISP, so it has no frozen lines yet.',
    action:
      'Ask again after the close (period end plus the cutoff days); `GET /v1/billing/periods/:period` says when it closed.',
  },
  BILLING_LINE_UNWRITABLE: {
    httpStatus: 500,
    meaning:
      "An invoice line cannot be written in the ISP's declared format: a value missing from a map, wider than its fixed-width field, with more decimals than declared, or a character the file encoding lacks; no file was produced.",
    action:
      'Fix the billing.invoiceLines entry named in the message (add the map entry, widen the field, raise decimals or change the encoding), then write the period again.',
  },
  BILLING_PUSH_REJECTED: {
    httpStatus: 502,
    meaning:
      'The ISP billing system refused a chunk of invoice lines with a 4xx answer; the chunks before it were delivered, the rest were not sent.',
    action:
      'Read the status and line ids in the message, fix the config or ask the ISP; a new push re-sends every line with the same idempotency keys, so nothing is billed twice.',
  },
  BILLING_PUSH_UNAVAILABLE: {
    httpStatus: 503,
    meaning:
      'The ISP billing system did not take a chunk of invoice lines after every retry (network errors, timeouts, 429 or 5xx).',
    action:
      'Nothing: the push is retried later with the same idempotency keys, so lines already received are not billed twice; check the endpoint if it lasts.',
  },
  SECRET_UNREADABLE: {
    httpStatus: 500,
    meaning: 'A signing key or secret in the keys folder exists but cannot be read or parsed.',
    action: 'Restore the file from backup; never delete it, or issued keys and documents break.',
  },
  ERASURE_DEFERRED: {
    httpStatus: 409,
    meaning:
      "A customer cannot be erased just now: the ISP's intake is applying a feed, or the customer's subscribe has not reached the subscription server yet.",
    action: 'Run the erasure again in a few minutes; nothing was erased.',
  },
  ADMIN_NOT_CONFIGURED: {
    httpStatus: 404,
    meaning: 'The admin pages are off: relais.yaml lists no admin user.',
    action:
      'Add a user under admin.users in relais.yaml (name, role viewer or operator, password as ${VAR}) and restart the api; see docs/admin.md.',
  },
  ADMIN_UNAUTHORIZED: {
    httpStatus: 401,
    meaning:
      'The admin pages need a user name and password (HTTP Basic), and none or a wrong one was sent.',
    action:
      'Sign in with a user from admin.users in relais.yaml; failures are counted in relais_admin_auth_failures_total.',
  },
  ADMIN_FORBIDDEN: {
    httpStatus: 403,
    meaning:
      'A viewer tried to change something (retry, clean, promote, remove, pause a job or queue).',
    action: 'Ask an operator, or sign in as a user whose role is operator.',
  },
  HTTP_NOT_FOUND: {
    httpStatus: 404,
    meaning: 'No route answers this method and path.',
    action: 'Check the URL against the API reference in docs/.',
  },
  HTTP_BAD_REQUEST: {
    httpStatus: 400,
    meaning: 'The request body or parameters are malformed.',
    action: 'Read the message for the offending field and correct the request.',
  },
  HTTP_PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    meaning: 'The request body is larger than the configured limit.',
    action: 'Send smaller bodies, or raise the limit in config if the size is legitimate.',
  },
  INTERNAL: {
    httpStatus: 500,
    meaning: 'A bug: something happened that the code did not expect.',
    action:
      'Report it with the requestId or log line; the details are in the server log, never in the response.',
  },
  SHUTDOWN_TIMEOUT: {
    httpStatus: 500,
    meaning:
      'Graceful shutdown did not finish within the configured bound, so the process exited anyway.',
    action: 'Interrupted jobs are retried by the queue; look at the log for the step that hung.',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}
