import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../platform/package-root.js';
import { loadConfig, loadConfigOrThrow } from './load.js';
import { formatProblem } from './yaml-source.js';

function workspace(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'relais-config-'));
  mkdirSync(join(dir, 'isps'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const MINIMAL_ISP = [
  'name: Test ISP',
  'intake:',
  '  transport: { type: local }',
  '  format: { type: csv }',
  '  fields: { customerRef: { from: ref }, offer: { from: offer } }',
  'offers:',
  '  BASIC: [antivirus]',
  '',
].join('\n');

describe('loadConfig', () => {
  it('loads the shipped config with the demo ISP and defaults for local services', () => {
    const config = loadConfigOrThrow({ file: join(packageRoot(), 'config/relais.yaml'), env: {} });
    expect(config.deployment.mysql).toMatchObject({
      host: '127.0.0.1',
      port: 3306,
      user: 'root',
      password: '',
    });
    expect(config.deployment.redis.url).toBe('redis://127.0.0.1:6379');
    expect(config.deployment.paths.dataDir).toBe(join(packageRoot(), 'var'));
    expect([...config.isps.keys()]).toContain('demo-fai');
  });

  it('accepts an empty relais.yaml: every field has a default', () => {
    const dir = workspace({ 'relais.yaml': '' });
    const { config, problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems).toEqual([]);
    expect(config?.deployment.http.publicUrl).toBe('http://127.0.0.1:8080');
    expect(config?.deployment.signing.keysDir).toBe(join(dir, '../var/keys'));
  });

  it('derives ISP defaults from the file name and the deployment', () => {
    const dir = workspace({
      'relais.yaml': 'paths: { dataDir: data }\n',
      'isps/fai-nord.yaml': MINIMAL_ISP,
    });
    const config = loadConfigOrThrow({ file: join(dir, 'relais.yaml'), env: {} });
    const isp = config.isps.get('fai-nord');
    expect(isp?.id).toBe('fai-nord');
    expect(isp?.intake.transport).toEqual({
      type: 'local',
      inbox: join(dir, 'data/isps/fai-nord/inbox'),
    });
    expect(isp?.intake.schedule.timeZone).toBe('Europe/Paris');
  });

  it('freezes the result so nothing downstream can change it', () => {
    const dir = workspace({ 'relais.yaml': '', 'isps/fai-nord.yaml': MINIMAL_ISP });
    const config = loadConfigOrThrow({ file: join(dir, 'relais.yaml'), env: {} });
    expect(() => {
      (config.deployment.mysql as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(Object.isFrozen(config.isps.get('fai-nord')?.offers)).toBe(true);
  });

  it('collects the problems of relais.yaml and of every ISP file in one pass', () => {
    const dir = workspace({
      'relais.yaml': 'http: { port: 99999 }\n',
      'isps/a-isp.yaml': MINIMAL_ISP.replace('Test ISP', ''),
      'isps/b-isp.yaml': MINIMAL_ISP.replace('csv }', 'csv, delimiter: ";;" }'),
    });
    const { config, problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(config).toBeUndefined();
    expect(problems.map((p) => `${p.file} ${p.path}`)).toEqual([
      'relais.yaml http.port',
      'isps/a-isp.yaml name',
      'isps/b-isp.yaml intake.format.delimiter',
    ]);
  });

  it('refuses a Redis Cluster without a hash-tagged prefix, and takes one with it', () => {
    const load = (redis: string) => {
      const dir = workspace({ 'relais.yaml': `redis: ${redis}\n` });
      return loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    };
    const plain = load('{ cluster: true, prefix: relais }');
    expect(plain.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'redis.prefix: a Redis Cluster needs the whole prefix in braces, e.g. "{relais}", so every key shares one slot',
    ]);
    const tagged = load('{ cluster: true, prefix: "{relais}" }');
    expect(tagged.problems).toEqual([]);
    expect(tagged.config?.deployment.redis).toMatchObject({ cluster: true, prefix: '{relais}' });
  });

  it('checks the ISP files in the folder an invalid relais.yaml names', () => {
    const dir = workspace({
      'relais.yaml': 'paths: { ispConfigDir: providers }\nlog: { level: loud }\n',
    });
    mkdirSync(join(dir, 'providers'));
    writeFileSync(join(dir, 'providers/c-isp.yaml'), MINIMAL_ISP.replace('Test ISP', ''));
    const { problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems.map((p) => `${p.file} ${p.path}`)).toEqual([
      'relais.yaml log.level',
      'providers/c-isp.yaml name',
    ]);
  });

  it('checks the ISP files in the default folder when relais.yaml is not even valid YAML', () => {
    const dir = workspace({
      'relais.yaml': 'http: [unclosed\n',
      'isps/a-isp.yaml': MINIMAL_ISP.replace('Test ISP', ''),
    });
    const { problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems[0]?.message).toMatch(/^yaml syntax/);
    expect(problems.map((p) => `${p.file} ${p.path}`).slice(1)).toEqual(['isps/a-isp.yaml name']);
  });

  it('reports a missing ISP folder at the line that names it, instead of loading no ISP', () => {
    const dir = workspace({ 'relais.yaml': 'log: { level: info }\npaths:\n  ispConfigDir: ips\n' });
    const { config, problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(config).toBeUndefined();
    expect(problems.map(formatProblem)).toEqual([
      'relais.yaml:3:3 paths.ispConfigDir: ISP config folder ips not found',
    ]);
  });

  it('says when the missing ISP folder is the default one and how to fix it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-config-'));
    writeFileSync(join(dir, 'relais.yaml'), 'log: { level: info }\n');
    const { problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems.map(formatProblem)).toEqual([
      'relais.yaml:1:1 paths.ispConfigDir: ISP config folder isps not found (the default; create it or set paths.ispConfigDir)',
    ]);
  });

  it('does not blame the default ISP folder when the setting itself is invalid', () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-config-'));
    writeFileSync(join(dir, 'relais.yaml'), 'paths: { ispConfigDir: 7 }\n');
    const { problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems.map((p) => p.path)).toEqual(['paths.ispConfigDir']);
    expect(problems[0]?.message).not.toMatch(/not found/);
  });

  it('refuses an ISP file whose name is not a valid ISP id', () => {
    const dir = workspace({ 'relais.yaml': '', 'isps/Bad_Name.yaml': MINIMAL_ISP });
    const { problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems[0]?.message).toMatch(/file name is the ISP id/);
  });

  it('says plainly when relais.yaml does not exist', () => {
    const { problems } = loadConfig({ file: '/nonexistent/relais.yaml', env: {} });
    expect(problems).toEqual([
      { file: '/nonexistent/relais.yaml', line: 1, column: 1, path: '', message: 'file not found' },
    ]);
  });

  it('rejects an unknown time zone', () => {
    const dir = workspace({
      'relais.yaml': '',
      'isps/x-isp.yaml': `timeZone: Europe/Pariss\n${MINIMAL_ISP}`,
    });
    const { problems } = loadConfig({ file: join(dir, 'relais.yaml'), env: {}, cwd: dir });
    expect(problems[0]).toMatchObject({
      path: 'timeZone',
      message: 'unknown IANA time zone',
      line: 1,
    });
  });
});
