import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './harness/cli.js';

describe('relais command', () => {
  it('lists every command with a one-line description', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const command of ['config', 'migrate', 'start', 'demo']) {
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b.*\\S`, 'm'));
    }
  });

  it.each(['config check', 'config schemas', 'migrate', 'start', 'demo'])(
    'explains "%s" with --help',
    async (command) => {
      const { code, stdout } = await runCli([...command.split(' '), '--help']);
      expect(code).toBe(0);
      expect(stdout).toMatch(/^Usage: relais /);
    },
  );

  it('exits 2 on an unknown command or option', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    expect((await runCli(['migrate', '--no-such-flag'])).code).toBe(2);
    expect((await runCli(['start', '--role', 'painter'])).code).toBe(2);
  });
});

describe('relais migrate', () => {
  it('exits 1 with DB_UNAVAILABLE when MySQL cannot be reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-cli-'));
    mkdirSync(join(dir, 'isps'));
    writeFileSync(join(dir, 'relais.yaml'), 'mysql:\n  port: 1\n  connectTimeoutMs: 2000\n');
    const { code, stderr } = await runCli(['migrate', '--config', join(dir, 'relais.yaml')], {
      cwd: dir,
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^DB_UNAVAILABLE: cannot connect to mysql at 127\.0\.0\.1:1$/m);
  });
});

describe('relais config check', () => {
  it('prints all three mistakes with line and column and exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-cli-'));
    mkdirSync(join(dir, 'isps'));
    writeFileSync(join(dir, 'relais.yaml'), 'log: { level: info }\n');
    writeFileSync(
      join(dir, 'isps/fai-nord.yaml'),
      [
        'name: FAI Nord',
        'timeZone: Europe/Paris',
        'intake:',
        '  transport:',
        '    type: local',
        '  schedule:',
        "    cron: '0 2 * * *'",
        '  format:',
        '    type: csv',
        "    delimiter: ';;'",
        '    encoding: ebcdic',
        '  fields:',
        "    customerRef: { from: 'N° client' }",
        '    offer: { from: Offre }',
        'offers:',
        '  BASIC: [Anti Virus]',
        '',
      ].join('\n'),
    );
    const { code, stdout } = await runCli(
      ['config', 'check', '--config', join(dir, 'relais.yaml')],
      { cwd: dir },
    );
    expect(code).toBe(2);
    const lines = stdout.trim().split('\n');
    expect(lines).toEqual([
      'isps/fai-nord.yaml:10:5 intake.format.delimiter: expected a single character',
      expect.stringMatching(
        /^isps\/fai-nord\.yaml:11:5 intake\.format\.encoding: expected one of /,
      ),
      expect.stringMatching(
        /^isps\/fai-nord\.yaml:16:11 offers\.BASIC\.0: expected a lowercase module code/,
      ),
      '3 problem(s) found',
    ]);
  });

  it('prints the problems of an invalid relais.yaml and of the ISP files together', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-cli-'));
    mkdirSync(join(dir, 'isps'));
    writeFileSync(join(dir, 'relais.yaml'), 'http:\n  port: 99999\n');
    writeFileSync(join(dir, 'isps/fai-sud.yaml'), 'name: FAI Sud\ncolour: blue\n');
    const { code, stdout } = await runCli(
      ['config', 'check', '--config', join(dir, 'relais.yaml')],
      { cwd: dir },
    );
    expect(code).toBe(2);
    expect(stdout).toMatch(/^relais\.yaml:2:3 http\.port: /m);
    expect(stdout).toMatch(/^isps\/fai-sud\.yaml:2:1 colour: unknown field/m);
  });

  it('exits 0 and names the ISPs on the shipped config', async () => {
    const { code, stdout } = await runCli(['config', 'check']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/config ok/);
    expect(stdout).toMatch(/demo-fai/);
  });

  it('exits 2 when the config file does not exist', async () => {
    const { code, stdout } = await runCli(['config', 'check', '--config', '/nonexistent.yaml']);
    expect(code).toBe(2);
    expect(stdout).toMatch(/nonexistent\.yaml:1:1 file not found/);
  });
});
