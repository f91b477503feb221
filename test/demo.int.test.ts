/**
 * `relais demo` as the README runs it: one month of the three example ISPs on this file's own
 * databases and Redis prefix. Feeds arrive day by day on the demo's clock (one with a bad row,
 * one held and approved), keys reach customers by e-mail (the demo's mail sink) and return file,
 * the reference client activates some, one customer adds a module mid-month and one leaves, and
 * the month end closes, invoices, exports and reconciles. Run twice, the second run must find
 * only duplicates and produce the same files.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEMO_ACTIVATIONS } from '../cli/commands/demo.js';
import { packageRoot } from '../platform/package-root.js';
import { DEMO_FAI_ADDS_BACKUP, DEMO_FAI_CANCELS } from './generators/samples.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';

const SHIPPED = ['alpha-telecom', 'bretagne-net', 'demo-fai'];
const deployment = parse(readFileSync(join(packageRoot(), 'config/relais.yaml'), 'utf8'));
const ctx = useTestContext({
  deployment: { billing: deployment.billing },
  isps: Object.fromEntries(
    SHIPPED.map((id) => [id, readFileSync(join(packageRoot(), `config/isps/${id}.yaml`), 'utf8')]),
  ),
});

const demo = () =>
  runCli(['demo', '--config', join(ctx().dir, 'relais.yaml')], { timeoutMs: 150_000 });
const varDir = () => join(ctx().dir, 'var');

async function ledger() {
  return ctx()
    .connectorDb('feeds')
    .orderBy([{ column: 'received_at' }, { column: 'id' }])
    .select('isp_id', 'name', 'status', 'rejected', 'duplicate_of', 'received_at', 'approved_at');
}

/** Every file under a folder, with the sha256 of its bytes. */
function digests(dir: string): Record<string, string> {
  const found: Record<string, string> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else found[path] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

async function subscriberOf(ispId: string, ref: string): Promise<string> {
  const row = await ctx()
    .connectorDb('subscribers')
    .where({ isp_id: ispId, customer_ref: ref })
    .first();
  return row.subscriber_id as string;
}

describe('relais demo', () => {
  let firstOutputs: Record<string, string>;

  it('plays the month of the sample exports, day by day, through to the month end', async () => {
    const run = await demo();

    expect(run.code, run.stderr).toBe(0);
    const feeds = await ledger();
    expect(
      feeds.map(
        (f) => `${f.received_at.toISOString().slice(0, 10)} ${f.isp_id} ${f.name} ${f.status}`,
      ),
    ).toEqual([
      '2026-12-01 alpha-telecom clients-20261201.xml applied',
      '2026-12-01 bretagne-net MVT20261201.txt applied',
      '2026-12-01 demo-fai abonnes_20261201.csv applied',
      '2026-12-02 bretagne-net MVT20261202.txt applied',
      '2026-12-02 demo-fai abonnes_20261202.csv applied',
      '2026-12-15 demo-fai abonnes_20261215.csv applied',
      '2026-12-16 alpha-telecom clients-20261216.xml applied',
    ]);
    // One export with a bad row, returned to the ISP; one held by the safety valve, approved.
    expect(feeds.find((f) => f.rejected > 0)).toMatchObject({ name: 'abonnes_20261202.csv' });
    expect(run.stdout).toMatch(/line \d+ status: unknown status "EN ATTENTE"/);
    expect(readdirSync(join(varDir(), 'isps/demo-fai/outbox/rejects'))).toHaveLength(1);
    expect(run.stdout).toMatch(/HELD for approval \(would cancel 3 of \d+ active subscribers/);
    expect(feeds.filter((f) => f.approved_at !== null).map((f) => f.name)).toEqual([
      'clients-20261216.xml',
    ]);

    // Keys: alpha-telecom's by e-mail into the mail sink (the addresses erased once sent),
    // the others' in return files; every one handed over.
    const alphaLicences = await ctx().licensingDb('licences').where({ isp_id: 'alpha-telecom' });
    const mails = readdirSync(join(varDir(), 'demo/mailboxes')).filter((n) => n.endsWith('.eml'));
    expect(mails).toHaveLength(alphaLicences.length);
    expect(
      await ctx().connectorDb('contacts').where({ isp_id: 'alpha-telecom' }).whereNotNull('email'),
    ).toHaveLength(0);
    const deliveries = await ctx().connectorDb('deliveries').select('state', 'secret');
    expect(deliveries.every((d) => d.state === 'delivered' && d.secret === null)).toBe(true);
    expect(readdirSync(join(varDir(), 'isps/bretagne-net/outbox/keys')).length).toBeGreaterThan(0);

    // The reference client activated the chosen customers' keys on the 5th, each on a device.
    const activated = await ctx().licensingDb('licences').whereNotNull('activated_at');
    expect(activated).toHaveLength(DEMO_ACTIVATIONS.length);
    expect(activated.every((l) => l.activated_at.toISOString().startsWith('2026-12-05'))).toBe(
      true,
    );
    expect(run.stdout).toMatch(/download link lists: antivirus/);

    // demo-fai: one customer added backup on the 15th, another left that day; both are billed
    // for December (proration none), the first for antivirus and backup.
    const adds = await subscriberOf('demo-fai', DEMO_FAI_ADDS_BACKUP);
    const leaves = await subscriberOf('demo-fai', DEMO_FAI_CANCELS);
    const events = await ctx()
      .licensingDb('subscription_events')
      .whereIn('subscriber_id', [adds, leaves])
      .whereIn('type', ['modules-changed', 'cancelled'])
      .select('subscriber_id', 'type', 'occurred_at');
    expect(
      events
        .map(
          (e) =>
            `${e.subscriber_id === adds ? 'adds' : 'leaves'} ${e.type} ${e.occurred_at.toISOString().slice(0, 10)}`,
        )
        .sort(),
    ).toEqual(['adds modules-changed 2026-12-14', 'leaves cancelled 2026-12-14']);
    const lines = await ctx()
      .licensingDb('rated_lines')
      .where({ isp_id: 'demo-fai', period: '2026-12' });
    expect(
      lines
        .filter((l) => l.subscriber_id === adds)
        .map((l) => l.module)
        .sort(),
    ).toEqual(['antivirus', 'backup']);
    expect(lines.some((l) => l.subscriber_id === leaves)).toBe(true);

    // Month end: every ISP closed, invoiced in UBL, its invoice lines in its outbox, and
    // demo-fai's billing export reconciled with the planted discrepancies found.
    const closes = await ctx()
      .licensingDb('billing_closes')
      .where({ period: '2026-12' })
      .select('isp_id');
    expect(closes.map((c) => c.isp_id).sort()).toEqual(SHIPPED);
    for (const isp of SHIPPED) {
      const invoice = readFileSync(
        join(varDir(), `vendor-invoices/${isp}/2026-12/invoice.xml`),
        'utf8',
      );
      expect(invoice).toContain('<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>');
    }
    expect(existsSync(join(varDir(), 'isps/demo-fai/outbox/lignes_demo-fai_2026-12.csv'))).toBe(
      true,
    );
    expect(existsSync(join(varDir(), 'isps/alpha-telecom/outbox/lignes-2026-12.xml'))).toBe(true);
    expect(existsSync(join(varDir(), 'isps/bretagne-net/outbox/FAC2026-12.txt'))).toBe(true);
    expect(run.stdout).toMatch(
      /MATCHED \d+.*MODULES_DIFFER \d+.*UNKNOWN_REF 1.*EXPORT_ROW_REJECTED 3/,
    );
    const report = join(
      varDir(),
      'isps/demo-fai/reconciliation/2026-12/reconciliation-demo-fai-2026-12.html',
    );
    expect(existsSync(report)).toBe(true);

    // The summary names every file it produced for someone (each ISP's outbox, the vendor's
    // documents, the reconciliation reports), each of them exists, and the operations page.
    const summary = run.stdout.slice(run.stdout.indexOf('Files produced:'));
    const listed = [...summary.matchAll(/^ {3}.+? {2,}(\/\S+)$/gm)].map((m) => m[1] as string);
    const made = Object.keys({
      ...digests(join(varDir(), 'vendor-invoices')),
      ...digests(join(varDir(), 'isps')),
    }).filter((path) => /\/isps\/[^/]+\/(outbox|reconciliation)\/|\/vendor-invoices\//.test(path));
    expect(made).toContain(report);
    expect(made.length).toBeGreaterThan(15);
    expect(listed.filter((path) => made.includes(path)).sort()).toEqual([...made].sort());
    for (const path of listed) expect(existsSync(path), path).toBe(true);
    expect(run.stdout).toMatch(/http:\/\/127\.0\.0\.1:\d+\/admin /);
    expect(run.stdout).toMatch(/Stopped cleanly/);
    firstOutputs = {
      ...digests(join(varDir(), 'vendor-invoices')),
      ...digests(join(varDir(), 'isps')),
    };
  }, 180_000);

  it('changes nothing when run again: duplicates, the same closes, the same files', async () => {
    const batchesBefore = await ctx().connectorDb('provisioning_batches').count({ n: '*' });

    const run = await demo();

    expect(run.code, run.stderr).toBe(0);
    const feeds = await ledger();
    // The second run's copies come on the same days of the demo's clock as the first ones.
    const again = feeds.filter((f) => f.duplicate_of !== null);
    expect(again).toHaveLength(7);
    expect(again.every((f) => f.status === 'duplicate')).toBe(true);
    expect(feeds).toHaveLength(14);
    expect(await ctx().connectorDb('provisioning_batches').count({ n: '*' })).toEqual(
      batchesBefore,
    );
    // Devices bound by the first run re-activate without a second seat.
    const devices = await ctx().licensingDb('devices').count({ n: '*' });
    expect(Number(devices[0]?.n)).toBe(DEMO_ACTIVATIONS.length);
    expect(run.stdout.match(/closed by an earlier run/g)).toHaveLength(SHIPPED.length);
    const outputs = {
      ...digests(join(varDir(), 'vendor-invoices')),
      ...digests(join(varDir(), 'isps')),
    };
    const changed = Object.keys(firstOutputs).filter(
      (path) => outputs[path] !== firstOutputs[path],
    );
    expect(changed).toEqual([]);
  }, 180_000);
});
