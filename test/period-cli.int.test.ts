/**
 * `relais period renew` and `relais period close` as an operator runs them: the real command in a child process, on this
 * file's databases, with what it prints and its exit code.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { openKeystore } from '../licensing/keystore.js';
import { appendEvents } from '../licensing/ledger.js';
import { packageRoot } from '../platform/package-root.js';
import { runCli } from './harness/cli.js';
import { useTestContext } from './harness/context.js';
import { seedLicences } from './harness/seed-licences.js';

const shipped = parse(readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8'));
const vendor = parse(readFileSync(join(packageRoot(), 'config/relais.yaml'), 'utf8'));
const ctx = useTestContext({
  deployment: { billing: { seller: vendor.billing.seller } },
  isps: { cli: stringify(shipped) },
});

const renew = (...args: string[]) =>
  runCli(['period', 'renew', ...args, '--config', join(ctx().dir, 'relais.yaml')]);

describe('relais period renew', () => {
  it('closes a past period, then says it was already closed', async () => {
    const secret = openKeystore(ctx().config.deployment.signing.keysDir).keyHashSecret;
    const active = await seedLicences(ctx().licensingDb, secret, 3, {
      ispId: 'cli',
      period: '2026-01',
    });
    await seedLicences(ctx().licensingDb, secret, 1, {
      ispId: 'cli',
      status: 'suspended',
      period: '2026-01',
    });
    const first = await renew('--isp', 'cli', '--period', '2026-01');
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('cli 2026-01 closed: 3 renewed, 1 held, 0 lapsed\n');
    const renewed = await ctx()
      .licensingDb('licences')
      .whereIn(
        'id',
        active.map((a) => a.licenceId),
      )
      .pluck('period');
    expect(renewed).toEqual(['2026-02', '2026-02', '2026-02']);

    const again = await renew('--isp', 'cli', '--period', '2026-01');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(
      'cli 2026-01 was already closed (3 renewed, 1 held, 0 lapsed); nothing changed\n',
    );
    const events = await ctx().licensingDb('subscription_events').where({ type: 'renewed' });
    expect(events).toHaveLength(3);
  });

  it('refuses a period still running or to come, with the reason, and exit code 1', async () => {
    const result = await renew('--isp', 'cli', '--period', '2099-01');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^PERIOD_INVALID: period 2099-01 has not ended yet in Europe\/Paris/,
    );
  });

  it('refuses an unknown ISP with exit code 1', async () => {
    const result = await renew('--isp', 'nobody', '--period', '2026-01');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^ISP_UNKNOWN: no ISP nobody/);
  });

  it('refuses a malformed period and a missing option as usage errors, exit code 2', async () => {
    const malformed = await renew('--isp', 'cli', '--period', '2026-1');
    expect(malformed.code).toBe(2);
    expect(malformed.stdout).toMatch(/--period must be a month written YYYY-MM, got "2026-1"/);
    const missing = await renew('--period', '2026-01');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/required option '--isp <id>' not specified/);
  });
});

describe('relais period close', () => {
  const close = (...args: string[]) =>
    runCli(['period', 'close', ...args, '--config', join(ctx().dir, 'relais.yaml')]);

  it('closes billing, writes the vendor invoice, then says it was already closed', async () => {
    const secret = openKeystore(ctx().config.deployment.signing.keysDir).keyHashSecret;
    const at = new Date('2026-10-05T09:00:00Z');
    for (const seeded of await seedLicences(ctx().licensingDb, secret, 2, { ispId: 'cli' })) {
      const base = { ispId: 'cli', subscriberId: seeded.subscriberId, licenceId: seeded.licenceId };
      await appendEvents(ctx().licensingDb, [
        { ...base, type: 'provisioned', data: { modules: ['antivirus'] }, occurredAt: at },
        {
          ...base,
          type: 'activated',
          idempotencyKey: `activated:${seeded.licenceId}`,
          occurredAt: at,
        },
      ]);
    }
    const first = await close('--isp', 'cli', '--period', '2026-10');
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const [summary, invoice, files] = first.stdout.trimEnd().split('\n');
    expect(summary).toBe('cli 2026-10 billing closed: 2 lines (0 adjustments), total 2.40 EUR');
    expect(invoice).toMatch(/^ {3}INV-2026-000001 of 2026-\d\d-\d\d: 2\.88 EUR payable$/);
    expect(files).toMatch(/vendor documents in .*cli\/2026-10: .*invoice\.xml/);

    const again = await close('--isp', 'cli', '--period', '2026-10');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^cli 2026-10 billing was already closed at .* \(2 lines/);
    expect(again.stdout).toContain('INV-2026-000001');
  });

  it('refuses a period before its cutoff, with the reason and exit code 1', async () => {
    const result = await close('--isp', 'cli', '--period', '2099-01');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^BILLING_PERIOD_NOT_CLOSABLE: /);
  });
});
