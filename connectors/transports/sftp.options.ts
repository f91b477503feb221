import { z } from 'zod';
import { port, secretString } from '../../config/fields.js';

export const sftpOptionsSchema = z
  .strictObject({
    type: z.literal('sftp'),
    host: z.string().min(1).describe("Host name or IP address of the ISP's SFTP server."),
    port: port.default(22).describe('SSH port.'),
    username: z.string().min(1).describe('Login on the SFTP server.'),
    password: secretString
      .optional()
      .describe("Use '${VAR}'; one of password, privateKey or privateKeyFile is required."),
    privateKey: secretString.optional().describe("OpenSSH or PEM private key text, as '${VAR}'."),
    privateKeyFile: z
      .string()
      .optional()
      .describe('Path of a private key file, relative to the ISP file.'),
    passphrase: secretString.optional().describe('Passphrase of an encrypted private key.'),
    hostKeyFingerprint: z
      .string()
      .regex(
        /^SHA256:[A-Za-z0-9+/]{43}$/,
        'expected SHA256:<43 base64 characters>, as ssh-keygen -l prints it',
      )
      .describe(
        'The server host key fingerprint. Required: a server presenting any other key is refused.',
      ),
    inbox: z.string().min(1).default('/inbox').describe('Remote folder the ISP drops files into.'),
    connectTimeoutMs: z
      .int()
      .min(1_000)
      .max(120_000)
      .default(20_000)
      .describe('How long one connection attempt may take, in milliseconds.'),
    keepaliveIntervalMs: z
      .int()
      .min(1_000)
      .max(300_000)
      .default(10_000)
      .describe(
        'Interval of SSH keepalive messages, in milliseconds; unanswered ones drop the link.',
      ),
    connectRetries: z
      .int()
      .min(0)
      .max(10)
      .default(3)
      .describe('Extra connect attempts, with exponential backoff.'),
    fastGet: z
      .boolean()
      .default(false)
      .describe(
        'Parallel-chunk download: faster, but corrupts files on some servers. Size and checksum are verified either way.',
      ),
  })
  .refine(
    (o) => o.password !== undefined || o.privateKey !== undefined || o.privateKeyFile !== undefined,
    {
      message: 'one of password, privateKey or privateKeyFile is required',
    },
  )
  .describe("An SFTP server of the ISP's, polled on the schedule.");

export type SftpOptions = z.output<typeof sftpOptionsSchema>;
