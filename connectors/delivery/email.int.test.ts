import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { IspConfig } from '../../config/load.js';
import { createLogger } from '../../platform/logger.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { deliveryRow, hasContact, seedDelivery } from '../../test/harness/deliveries.js';
import { freePort } from '../../test/harness/ports.js';
import { createTestRelay, type TestRelay } from '../../test/harness/smtp.js';
import { openVault, type Vault } from '../vault.js';
import { createMailer, deliverBatchByEmail, type Mailer, NO_ADDRESS } from './email.js';
import { loadTemplates } from './templates.js';

const relayPort = await freePort();
const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const ISP = 'demo-fai';

const ctx = useTestContext({
  isps: {
    [ISP]: stringify({
      ...shipped,
      delivery: {
        mode: 'email',
        email: {
          from: 'Demo FAI <securite@demo-fai.example>',
          smtp: { host: '127.0.0.1', port: relayPort, timeoutMs: 2000 },
        },
      },
    }),
  },
});

let relay: TestRelay;
let vault: Vault;
let mailer: Mailer;
const logLines: string[] = [];
const log = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  }),
});

beforeAll(async () => {
  relay = await createTestRelay({ port: relayPort });
  vault = openVault(ctx().config.deployment.signing.keysDir);
  mailer = createMailer(theIsp(), log);
});

afterAll(async () => {
  mailer?.close();
  await relay?.stop();
});

function theIsp(): IspConfig {
  const isp = ctx().config.isps.get(ISP);
  if (!isp) throw new Error(`no ISP ${ISP} in the test config`);
  return isp;
}

let nextBatch = 1;
function deps() {
  const isp = theIsp();
  return { db: ctx().connectorDb, vault, log, mailer, templates: loadTemplates(isp) };
}

function mailTo(address: string) {
  return relay.received.filter((m) => m.to.includes(address));
}

describe('deliverBatchByEmail', () => {
  it('mails the key and the link in the contact language, then forgets address and key', async () => {
    const batchId = nextBatch++;
    const db = ctx().connectorDb;
    const fr = await seedDelivery(db, vault, {
      ispId: ISP,
      batchId,
      email: 'marie.durand@example.net',
      language: 'fr',
      linkExpiresAt: new Date('2027-01-15T10:00:00Z'),
    });
    const en = await seedDelivery(db, vault, {
      ispId: ISP,
      batchId,
      email: 'john.smith@example.org',
      language: 'en',
    });
    const isp = theIsp();

    const result = await deliverBatchByEmail(deps(), isp, batchId);

    expect(result).toMatchObject({ failed: 0, deferred: 0 });
    expect(result.delivered.map((d) => d.licenceId)).toEqual([fr.licenceId, en.licenceId]);
    expect(mailTo('marie.durand@example.net')).toHaveLength(1);
    const mail = mailTo('marie.durand@example.net')[0]?.parsed;
    if (!mail) throw new Error('no message for marie');
    expect(mail.from?.value).toEqual([{ name: 'Demo FAI', address: 'securite@demo-fai.example' }]);
    expect(mail.subject).toBe("Demo FAI : votre clé d'activation de la suite de sécurité");
    expect(mail.headers.get('auto-submitted')).toBe('auto-generated');
    for (const part of [mail.text ?? '', String(mail.html)]) {
      expect(part).toContain(fr.key);
      expect(part).toContain(fr.downloadUrl);
      expect(part).toContain('Demo FAI');
      expect(part).toContain('15 janvier 2027 à 11:00');
    }
    const english = mailTo('john.smith@example.org')[0]?.parsed;
    if (!english) throw new Error('no message for john');
    expect(english.subject).toBe('Demo FAI: your security suite activation key');
    expect(english.text).toContain(en.key);
    expect(String(english.html)).toContain(`<a href="${en.downloadUrl}">`);

    for (const seeded of [fr, en]) {
      const row = await deliveryRow(db, seeded.id);
      expect(row).toMatchObject({
        state: 'delivered',
        secret: null,
        attempts: 1,
        last_error: null,
      });
      expect(row.delivered_at).toBeInstanceOf(Date);
      expect(await hasContact(db, seeded.subscriberId)).toBe(false);
    }
  });

  it('sends nothing again for a batch already delivered', async () => {
    const batchId = nextBatch++;
    const db = ctx().connectorDb;
    await seedDelivery(db, vault, { ispId: ISP, batchId, email: 'once@example.net' });
    const isp = theIsp();

    const first = await deliverBatchByEmail(deps(), isp, batchId);
    const second = await deliverBatchByEmail(deps(), isp, batchId);

    expect(first.delivered).toHaveLength(1);
    expect(second.delivered).toHaveLength(0);
    expect(mailTo('once@example.net')).toHaveLength(1);
  });

  it('fails the one recipient the relay refuses for good and delivers the others', async () => {
    const batchId = nextBatch++;
    const db = ctx().connectorDb;
    relay.refused.add('gone@example.net');
    const before = await seedDelivery(db, vault, { ispId: ISP, batchId, email: 'a@example.net' });
    const refused = await seedDelivery(db, vault, {
      ispId: ISP,
      batchId,
      email: 'gone@example.net',
    });
    const after = await seedDelivery(db, vault, { ispId: ISP, batchId, email: 'b@example.net' });

    const result = await deliverBatchByEmail(deps(), theIsp(), batchId);

    expect(result).toMatchObject({ failed: 1, deferred: 0 });
    expect(result.delivered.map((d) => d.licenceId)).toEqual([before.licenceId, after.licenceId]);
    const row = await deliveryRow(db, refused.id);
    expect(row).toMatchObject({
      state: 'failed',
      last_error: 'relay refused the recipient (550)',
      attempts: 1,
    });
    // The key stays sealed (the server cannot show it again); the address is gone.
    expect(row.secret).not.toBeNull();
    expect(await hasContact(db, refused.subscriberId)).toBe(false);
    expect(mailTo('gone@example.net')).toHaveLength(0);
    expect((await deliveryRow(db, after.id)).state).toBe('delivered');
  });

  it('fails a delivery whose subscriber has no address in the feed', async () => {
    const batchId = nextBatch++;
    const db = ctx().connectorDb;
    const noContact = await seedDelivery(db, vault, { ispId: ISP, batchId });
    const nullAddress = await seedDelivery(db, vault, { ispId: ISP, batchId, email: null });

    const result = await deliverBatchByEmail(deps(), theIsp(), batchId);

    expect(result).toMatchObject({ delivered: [], failed: 2, deferred: 0 });
    for (const seeded of [noContact, nullAddress]) {
      expect(await deliveryRow(db, seeded.id)).toMatchObject({
        state: 'failed',
        last_error: NO_ADDRESS,
      });
    }
  });

  it('keeps the rest of the batch pending when the relay defers a recipient', async () => {
    const batchId = nextBatch++;
    const db = ctx().connectorDb;
    relay.deferred.add('busy@example.net');
    const first = await seedDelivery(db, vault, { ispId: ISP, batchId, email: 'c@example.net' });
    const busy = await seedDelivery(db, vault, { ispId: ISP, batchId, email: 'busy@example.net' });
    const last = await seedDelivery(db, vault, { ispId: ISP, batchId, email: 'd@example.net' });
    const isp = theIsp();

    const result = await deliverBatchByEmail(deps(), isp, batchId);

    expect(result.delivered.map((d) => d.licenceId)).toEqual([first.licenceId]);
    expect(result).toMatchObject({ failed: 0, deferred: 2 });
    expect(result.deferredBy?.code).toBe('DELIVERY_FAILED');
    expect(result.deferredBy?.retryable).toBe(true);
    for (const seeded of [busy, last]) {
      const row = await deliveryRow(db, seeded.id);
      expect(row).toMatchObject({ state: 'pending', attempts: 1 });
      expect(row.last_error).toMatch(/did not take the message \(451\)/);
      expect(row.secret).not.toBeNull();
      expect(await hasContact(db, seeded.subscriberId)).toBe(true);
    }

    relay.deferred.delete('busy@example.net');
    const retry = await deliverBatchByEmail(deps(), isp, batchId);
    expect(retry.delivered.map((d) => d.licenceId)).toEqual([busy.licenceId, last.licenceId]);
    expect(mailTo('c@example.net')).toHaveLength(1);
    expect(mailTo('busy@example.net')).toHaveLength(1);
  });

  it('writes no address and no key to the log or to last_error', async () => {
    const rows: { last_error: string | null }[] = await ctx()
      .connectorDb('deliveries')
      .select('last_error');
    const text = logLines.join('') + JSON.stringify(rows);
    expect(text).not.toMatch(/@example\.(net|org)/);
    expect(text).not.toMatch(/[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/);
  });
});
