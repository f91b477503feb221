import { describe, expect, it } from 'vitest';
import { runCli } from '../../test/harness/cli.js';

describe('relais reconcile', () => {
  it('refuses a period not written YYYY-MM before touching anything', async () => {
    const result = await runCli(['reconcile', '--isp', 'demo-fai', '--period', '12-2026']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('--period must be a month written YYYY-MM, got "12-2026"');
  });

  it('refuses a file that does not exist', async () => {
    const args = ['reconcile', '--isp', 'demo-fai', '--period', '2026-12', 'nowhere.csv'];
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('no such file: nowhere.csv');
  });

  it('is listed in the help', async () => {
    const result = await runCli(['--help']);
    expect(result.stdout).toMatch(/reconcile \[options\] \[file\]/);
  });
});
