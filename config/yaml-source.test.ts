import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatProblem, parseYamlConfig, substituteVariables } from './yaml-source.js';

const schema = z.strictObject({
  name: z.string(),
  port: z.int().min(1).default(80),
  password: z.union([z.string(), z.number().transform(String)]).default(''),
  format: z
    .strictObject({ delimiter: z.string().length(1, 'expected a single character').default(',') })
    .prefault({}),
  list: z.array(z.int()).default([]),
});

function parse(text: string, env: Record<string, string> = {}) {
  return parseYamlConfig(text, 'test.yaml', schema, env);
}

describe('parseYamlConfig', () => {
  it('reports every problem at once with line, column and path', () => {
    const text = ['name: x', 'port: 0', 'format:', '  delimiter: ";;"', 'colour: blue', ''].join(
      '\n',
    );
    const { value, problems } = parse(text);
    expect(value).toBeUndefined();
    expect(problems.map(formatProblem)).toEqual([
      'test.yaml:2:1 port: too small: expected number to be >=1',
      'test.yaml:4:3 format.delimiter: expected a single character',
      'test.yaml:5:1 colour: unknown field (check the spelling against the JSON Schema)',
    ]);
  });

  it('points a missing required field at the map that should hold it', () => {
    const { problems } = parse('port: 8080\n');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ path: 'name', line: 1, column: 1 });
  });

  it('points at the offending item of a list', () => {
    const { problems } = parse('name: x\nlist:\n  - 1\n  - two\n');
    expect(problems[0]).toMatchObject({ path: 'list.1', line: 4, column: 5 });
  });

  it('reports yaml syntax errors with their position', () => {
    const { problems } = parse('name: x\nformat: [unclosed\n');
    expect(problems[0]?.message).toMatch(/^yaml syntax/);
    expect(problems[0]?.line).toBeGreaterThanOrEqual(2);
  });

  it('refuses duplicate keys, which YAML would otherwise resolve silently', () => {
    const { problems } = parse('name: x\nname: y\n');
    expect(problems[0]?.message).toMatch(/yaml syntax.*unique/i);
  });

  it('fills defaults for absent fields', () => {
    const { value } = parse('name: x\n');
    expect(value).toEqual({
      name: 'x',
      port: 80,
      password: '',
      format: { delimiter: ',' },
      list: [],
    });
  });
});

describe('environment references', () => {
  it('substitutes ${VAR}, keeps a default and unescapes $$', () => {
    const result = substituteVariables('a=${A} b=${B:-dflt} c=$$HOME', { A: '1' });
    expect(result).toEqual({ value: 'a=1 b=dflt c=$HOME', errors: [] });
  });

  it('reads VAR_FILE when VAR is not set, without the trailing newline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-env-'));
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    const { value } = parse("name: x\npassword: '${DB_PW}'\n", { DB_PW_FILE: join(dir, 'pw') });
    expect(value?.password).toBe('s3cret');
  });

  it('names a missing variable and where it is used, without failing other checks', () => {
    const { problems } = parse('name: ${NAME}\nport: 0\n');
    expect(problems.map(formatProblem)).toEqual([
      'test.yaml:1:7 name: environment variable NAME is not set (nor NAME_FILE)',
      'test.yaml:2:1 port: too small: expected number to be >=1',
    ]);
  });

  it('gives the field path of a missing variable inside a map or a list', () => {
    const { problems } = parse('name: x\nformat:\n  delimiter: "${SEP}"\nlist:\n  - 1\n  - ${N}\n');
    const missing = problems.filter((p) => p.message.startsWith('environment variable'));
    expect(missing.map(formatProblem)).toEqual([
      'test.yaml:3:14 format.delimiter: environment variable SEP is not set (nor SEP_FILE)',
      'test.yaml:6:5 list.1: environment variable N is not set (nor N_FILE)',
    ]);
  });

  it('reports a VAR_FILE that cannot be read', () => {
    const { problems } = parse('name: ${N}\n', { N_FILE: '/nonexistent/secret' });
    expect(problems[0]?.message).toBe(
      'N_FILE points at /nonexistent/secret, which cannot be read (ENOENT)',
    );
  });

  it('gives a plain whole reference the type of its value, and keeps quoted ones strings', () => {
    const { value } = parse('name: "${N}"\nport: ${PORT}\npassword: ${PW}\n', {
      N: '42',
      PORT: '8080',
      PW: '1234',
    });
    expect(value).toMatchObject({ name: '42', port: 8080, password: '1234' });
  });

  it('leaves YAML syntax inside a secret alone', () => {
    const { value } = parse('name: ${N}\n', { N: 'a: b # not a comment' });
    expect(value?.name).toBe('a: b # not a comment');
  });
});
