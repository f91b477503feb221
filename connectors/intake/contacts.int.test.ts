/**
 * What the intake keeps for key delivery: the sealed e-mail and language of each subscribe
 * (e-mail ISPs only, in the subscribe's own transaction), and the offer code carried by every
 * provisioning command.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { decodeCommands, type ProvisioningCommand } from '../../mappings/provisioning-command.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { openTestIntake, type TestIntake } from '../../test/harness/intake.js';
import { openVault, type Vault } from '../vault.js';

const base = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));

/** demo-fai, in UTF-8, with a language column, and the given delivery and offers. */
function isp(delivery: Record<string, unknown>, offers?: Record<string, string[]>) {
  return {
    ...base,
    intake: {
      ...base.intake,
      format: { ...base.intake.format, encoding: 'utf-8' },
      fields: { ...base.intake.fields, language: { from: 'Langue' } },
    },
    delivery,
    ...(offers ? { offers } : {}),
  };
}

const EMAIL_DELIVERY = {
  mode: 'email',
  email: { smtp: { host: '127.0.0.1', port: 2525 }, from: 'Sécurité <securite@example.org>' },
};

const ctx = useTestContext({
  isps: {
    mail: isp(EMAIL_DELIVERY),
    'mail-sorted': isp(EMAIL_DELIVERY),
    'mail-fault': isp(EMAIL_DELIVERY),
    'file-isp': isp({ mode: 'return-file' }),
    'offers-isp': isp({ mode: 'return-file' }),
    'none-isp': isp({ mode: 'none' }),
    'odd-offer': isp({ mode: 'return-file' }, { 'Offre Famille': ['antivirus', 'firewall'] }),
  },
});

let intake: TestIntake;
let vault: Vault;
beforeAll(async () => {
  intake = await openTestIntake(ctx());
  vault = openVault(ctx().config.deployment.signing.keysDir);
});
afterAll(async () => {
  await intake.close();
});

interface Row {
  ref: string;
  email: string;
  status?: 'Actif' | 'Suspendu' | 'Résilié';
  offer?: string;
  language?: string;
}

const HEADER = 'N° client;Nom;Prénom;Courriel;Offre;Options;Statut;Date effet;Langue';

function csv(rows: Row[]): string {
  const lines = rows.map(
    (r) =>
      `${r.ref};Lefèvre;Zoé;${r.email};${r.offer ?? 'SECU_FAMILLE'};;${r.status ?? 'Actif'};01/12/2026;${r.language ?? ''}`,
  );
  return `${HEADER}\r\n${lines.join('\r\n')}\r\n`;
}

function customers(count: number, from = 1): Row[] {
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return {
      ref: String(20_000_000 + n),
      email: `zoe.lefevre.${n}@exemple.fr`,
      language: n % 3 === 0 ? '' : n % 3 === 1 ? 'fr' : 'nl',
    };
  });
}

interface ContactRow {
  subscriber_id: string;
  isp_id: string;
  email: Buffer | null;
  language: string | null;
  created_at: Date;
}

/** Each customer ref of the ISP with its contact, opened. */
async function contactsByRef(ispId: string) {
  const rows: (ContactRow & { customer_ref: string })[] = await ctx()
    .connectorDb('contacts as c')
    .join('subscribers as s', 's.subscriber_id', 'c.subscriber_id')
    .where('c.isp_id', ispId)
    .select('s.customer_ref', 'c.*');
  return new Map(
    rows.map((r) => [
      r.customer_ref,
      {
        email: r.email && vault.open(r.email, `email:${r.subscriber_id}`),
        language: r.language,
        sealed: r.email,
      },
    ]),
  );
}

async function commandsOf(feedId: string): Promise<ProvisioningCommand[]> {
  const rows = await ctx().connectorDb('provisioning_batches').where({ feed_id: feedId });
  return rows.flatMap((b) => decodeCommands(b.commands));
}

const count = async (table: string, ispId: string) =>
  Number((await ctx().connectorDb(table).where({ isp_id: ispId }).count({ n: '*' }))[0]?.n);

describe('contacts of an ISP that delivers keys by e-mail', () => {
  const day1 = customers(40);

  it('seals the address and keeps the language of every new subscriber', async () => {
    await intake.ingest('mail', 'abonnes_1.csv', csv(day1));

    const contacts = await contactsByRef('mail');
    expect(contacts.size).toBe(day1.length);
    for (const c of day1) {
      const contact = contacts.get(c.ref);
      expect(contact?.email).toBe(c.email);
      expect(contact?.language).toBe(c.language === '' ? null : c.language);
      expect(contact?.sealed?.toString('latin1')).not.toContain('exemple.fr');
    }
  });

  it('binds each sealed address to its subscriber: it does not open as another', async () => {
    const rows: ContactRow[] = await ctx().connectorDb('contacts').where({ isp_id: 'mail' });
    const [a, b] = rows as [ContactRow, ContactRow];
    expect(() => vault.open(a.email as Buffer, `email:${b.subscriber_id}`)).toThrow(
      /does not open/,
    );
  });

  it('writes no contact for changes that do not subscribe', async () => {
    const before = await contactsByRef('mail');
    const day2 = day1.map((c, i) => (i < 5 ? { ...c, status: 'Suspendu' as const } : c));
    day2[6] = { ...(day2[6] as Row), email: 'changed.address@exemple.fr' };
    await intake.ingest('mail', 'abonnes_2.csv', csv(day2));

    expect(await contactsByRef('mail')).toEqual(before);
  });

  it('replaces the contact of a customer who comes back after a cancel', async () => {
    const [first, ...others] = day1 as [Row, ...Row[]];
    await intake.ingest('mail', 'abonnes_3.csv', csv([{ ...first, status: 'Résilié' }, ...others]));
    const back = { ...first, email: 'zoe.back@exemple.fr', language: 'de' };
    await intake.ingest('mail', 'abonnes_4.csv', csv([back, ...others]));

    const contact = (await contactsByRef('mail')).get(first.ref);
    expect(contact).toMatchObject({ email: 'zoe.back@exemple.fr', language: 'de' });
    expect(await count('contacts', 'mail')).toBe(day1.length);
  });

  it('keeps addresses through the sorted path', async () => {
    const rows = customers(30, 500).reverse();
    const feedId = await intake.ingest('mail-sorted', 'abonnes_1.csv', csv(rows));

    const applied = intake.logLines().find((l) => l.feedId === feedId && l.msg === 'feed applied');
    expect(applied?.way).toMatch(/^sorted/);
    const contacts = await contactsByRef('mail-sorted');
    expect([...contacts.values()].map((c) => c.email).sort()).toEqual(
      rows.map((r) => r.email).sort(),
    );
  });

  it('commits a subscribe and its contact together: a failed contact write leaves neither', async () => {
    const db = ctx().connectorDb;
    const rows = customers(10, 900);
    await db.raw('RENAME TABLE contacts TO contacts_away');
    try {
      await expect(intake.ingest('mail-fault', 'abonnes_1.csv', csv(rows))).rejects.toThrow(
        /contacts/,
      );
      expect(await count('subscribers', 'mail-fault')).toBe(0);
      expect(await count('provisioning_batches', 'mail-fault')).toBe(0);
    } finally {
      await db.raw('RENAME TABLE contacts_away TO contacts');
    }

    await intake.intake.drain(intake.isp('mail-fault'));
    expect(await count('subscribers', 'mail-fault')).toBe(rows.length);
    expect((await contactsByRef('mail-fault')).size).toBe(rows.length);
  });
});

describe('contacts of ISPs that deliver keys themselves, or not at all', () => {
  it.each(['file-isp', 'none-isp'])('%s: keeps no address, but subscribes', async (ispId) => {
    const rows = customers(12);
    await intake.ingest(ispId, 'abonnes_1.csv', csv(rows));

    expect(await count('subscribers', ispId)).toBe(rows.length);
    expect(await count('contacts', ispId)).toBe(0);
  });
});

describe('the offer of each command', () => {
  it('carries the subscriber offer code on every kind of command', async () => {
    const rows = customers(3, 700).map((r, i) => ({
      ...r,
      offer: i === 0 ? 'SECU_INTEGRAL' : 'SECU_ESSENTIEL',
    }));
    const f1 = await intake.ingest('offers-isp', 'abonnes_1.csv', csv(rows));
    expect((await commandsOf(f1)).map((c) => [c.kind, c.offer])).toEqual([
      ['subscribe', 'SECU_INTEGRAL'],
      ['subscribe', 'SECU_ESSENTIEL'],
      ['subscribe', 'SECU_ESSENTIEL'],
    ]);
    const [a, b] = rows as [Row, Row];
    const f2 = await intake.ingest(
      'offers-isp',
      'abonnes_2.csv',
      csv([
        { ...a, offer: 'SECU_FAMILLE' },
        { ...b, status: 'Suspendu' },
      ]),
    );
    // One cancel of three is above the safety valve: approved, as an operator would.
    await intake.intake.approve(f2);
    const kinds = (await commandsOf(f2)).map((c) => [c.kind, c.offer]);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['change', 'SECU_FAMILLE'],
        ['suspend', 'SECU_ESSENTIEL'],
        ['cancel', 'SECU_ESSENTIEL'],
      ]),
    );
  });

  it('sends commands without an offer code the protocol refuses, and says so once a feed', async () => {
    const rows = customers(5).map((r) => ({ ...r, offer: 'Offre Famille' }));
    const feedId = await intake.ingest('odd-offer', 'abonnes_1.csv', csv(rows));

    const commands = await commandsOf(feedId);
    expect(commands).toHaveLength(5);
    for (const c of commands) {
      expect(c.offer).toBeUndefined();
      expect(c.modules).toEqual(['antivirus', 'firewall']);
    }
    const warnings = intake
      .logLines()
      .filter((l) => l.feedId === feedId && String(l.msg).startsWith('offer codes outside'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.offers).toEqual(['Offre Famille']);
  });
});

describe('privacy', () => {
  it('never logs an address, sealed or not', () => {
    const log = intake.logText();
    expect(log).not.toMatch(/exemple\.fr/);
  });
});
