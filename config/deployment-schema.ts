/**
 * Schema of `relais.yaml`, the deployment config: where the services are, where files live,
 * how loud the log is. Every field has a default that points at the local services of a fresh
 * machine, so an empty file is a valid config. Relative paths are resolved against the folder
 * that holds `relais.yaml`.
 */
import { z } from 'zod';
import { adminSchema } from './admin-schema.js';
import { port, secretString } from './fields.js';
import { healthSchema } from './health-schema.js';
import { serverSchema } from './licensing-schema.js';
import { vendorBillingSchema } from './vendor-billing-schema.js';

/** A MySQL database name Relais may create: letters, digits and underscores only. */
const databaseName = z
  .string()
  .regex(/^[A-Za-z0-9_]{1,64}$/, 'expected letters, digits or underscores (at most 64)');

export const mysqlSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: port.default(3306),
    user: z.string().min(1).default('root'),
    password: secretString.default('').describe('Use ${VAR} (or VAR_FILE) rather than a literal.'),
    connectorDatabase: databaseName
      .default('relais_connector')
      .describe('Connector side: feeds, subscriber map, customer refs. Never read by licensing.'),
    licensingDatabase: databaseName
      .default('relais_licensing')
      .describe('Subscription-server side: subscriptions, licences, events. No personal data.'),
    poolMax: z
      .int()
      .min(3)
      .max(200)
      .default(10)
      .describe(
        'Connections per database per process; at least 3 (a snapshot diff reads while two transactions write).',
      ),
    connectTimeoutMs: z.int().min(100).max(120_000).default(10_000),
  })
  .describe('MySQL or MariaDB server holding both Relais databases.');

export const redisSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_{}-]{1,64}$/, 'expected letters, digits, _ - { } (no colon)')
      .default('relais')
      .describe(
        'Key prefix for every queue; wrap in {braces} to pin a queue set to one Redis Cluster slot.',
      ),
    cluster: z
      .boolean()
      .default(false)
      .describe(
        'Connect as a Redis Cluster client: url names one node, the others are discovered. Needs a {hash tag} prefix.',
      ),
  })
  .refine((r) => !r.cluster || /^\{[^{}]+\}$/.test(r.prefix), {
    message:
      'a Redis Cluster needs the whole prefix in braces, e.g. "{relais}", so every key shares one slot',
    path: ['prefix'],
  })
  .describe('Redis used by BullMQ. Must run with maxmemory-policy noeviction.');

export const httpSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: port.default(8080),
    publicUrl: z
      .url()
      .optional()
      .describe('Base URL the outside world uses (download links); default http://host:port.'),
    bodyLimitBytes: z
      .int()
      .min(1024)
      .default(1_048_576)
      .describe(
        'Largest JSON body the api accepts, in bytes. Feed pushes have their own cap per ISP.',
      ),
    trustProxy: z.boolean().default(false).describe('Trust X-Forwarded-For from a reverse proxy.'),
    opsPort: port
      .default(9464)
      .describe(
        'Port of the ops listener (/healthz, /readyz, /metrics) of worker and scheduler processes, on http.host; the api serves those on http.port. relais start --ops-port overrides it.',
      ),
  })
  .describe('The api listener, and the ops listener of worker and scheduler processes.');

export const pathsSchema = z
  .strictObject({
    dataDir: z
      .string()
      .min(1)
      .default('../var')
      .describe(
        'Working files: inboxes, staging, outboxes, generated keys. Relative to relais.yaml.',
      ),
    ispConfigDir: z
      .string()
      .min(1)
      .default('isps')
      .describe('Folder of per-ISP configs, one <isp-id>.yaml each. Relative to relais.yaml.'),
  })
  .describe('Folders Relais reads and writes.');

export const signingSchema = z
  .strictObject({
    keysDir: z
      .string()
      .optional()
      .describe(
        'Where signing keys and HMAC secrets live; generated on first use when absent. Default <dataDir>/keys.',
      ),
  })
  .describe('Keys that sign licence documents and download links, and hash activation keys.');

export const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  pretty: z
    .boolean()
    .optional()
    .describe('Human-readable output; default: only when stdout is a terminal.'),
});

export const deploymentSchema = z
  .strictObject({
    mysql: mysqlSchema.prefault({}),
    redis: redisSchema.prefault({}),
    http: httpSchema.prefault({}),
    paths: pathsSchema.prefault({}),
    signing: signingSchema.prefault({}),
    log: logSchema.prefault({}),
    server: serverSchema.prefault({}),
    billing: vendorBillingSchema.prefault({}),
    admin: adminSchema.prefault({}),
    health: healthSchema.prefault({}),
    shutdownTimeoutMs: z
      .int()
      .min(100)
      .max(600_000)
      .default(10_000)
      .describe('How long a graceful stop may take before the process exits anyway.'),
  })
  .describe('Relais deployment config (relais.yaml).');

export type DeploymentConfigInput = z.input<typeof deploymentSchema>;
export type DeploymentSettings = z.output<typeof deploymentSchema>;
