/**
 * An ISP's billing outbox from its config: `billing.outbox`, or the local folder
 * `<workDir>/outbox` when the ISP file has none. Paths written in the ISP file (a local folder,
 * an SFTP private key file) are relative to that file, as everywhere else in ISP config.
 */
import { dirname, join, resolve } from 'node:path';
import {
  type BillingOutboxSettings,
  billingOutboxSchema,
} from '../../config/billing-outbox-schema.js';
import type { IspConfig } from '../../config/load.js';
import type { Logger } from '../../platform/logger.js';
import { LocalOutbox } from './local-outbox.js';
import type { OutboxTarget } from './outbox-target.js';
import { SftpOutbox, type SftpOutboxOptions } from './sftp-outbox.js';

/** The outbox settings of an ISP, defaults filled in. */
export function outboxSettingsOf(isp: IspConfig): BillingOutboxSettings {
  return isp.billing?.outbox ?? billingOutboxSchema.parse({ type: 'local' });
}

export async function openOutbox(
  isp: IspConfig,
  log: Logger,
  options: SftpOutboxOptions = {},
): Promise<OutboxTarget> {
  const settings = outboxSettingsOf(isp);
  const base = dirname(isp.file);
  if (settings.type === 'local') {
    const folder = settings.folder ? resolve(base, settings.folder) : join(isp.workDir, 'outbox');
    return LocalOutbox.open(folder, settings.folder === undefined);
  }
  const privateKeyFile = settings.privateKeyFile && resolve(base, settings.privateKeyFile);
  return SftpOutbox.open({ ...settings, privateKeyFile }, log, options);
}
