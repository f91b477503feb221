/**
 * The transports an ISP can use. This is the one list: a new transport adds its options
 * schema here (and, if it is polled, its opener in `openPolledTransport`).
 */
import { z } from 'zod';
import { httpPushOptionsSchema } from './http-push.options.js';
import { localFolderOptionsSchema } from './local-folder.options.js';
import { sftpOptionsSchema } from './sftp.options.js';

export const transportOptionsSchema = z.discriminatedUnion('type', [
  localFolderOptionsSchema,
  sftpOptionsSchema,
  httpPushOptionsSchema,
]);

export type TransportOptions = z.output<typeof transportOptionsSchema>;
export type TransportType = TransportOptions['type'];
export const POLLED_TRANSPORTS: readonly TransportType[] = ['local', 'sftp'];
