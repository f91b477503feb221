import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfigOrThrow } from '../config/load.js';
import { createIspAuthenticator } from './isp-auth.js';
import { openKeystore } from './keystore.js';

const TOKEN = 'alpha-api-token-0123456789abcdefghij';

function deployment() {
  const dir = mkdtempSync(join(tmpdir(), 'relais-auth-'));
  mkdirSync(join(dir, 'isps'));
  writeFileSync(join(dir, 'relais.yaml'), stringify({ paths: { dataDir: 'var' } }));
  const demo = parse(readFileSync('config/isps/demo-fai.yaml', 'utf8'));
  writeFileSync(
    join(dir, 'isps', 'alpha.yaml'),
    stringify({ ...demo, licensing: { apiToken: '${ALPHA_TOKEN}' } }),
  );
  cpSync('config/isps/demo-fai.yaml', join(dir, 'isps', 'beta.yaml'));
  writeFileSync(join(dir, 'isps', 'off.yaml'), stringify({ ...demo, enabled: false }));
  const config = loadConfigOrThrow({
    file: join(dir, 'relais.yaml'),
    env: { ALPHA_TOKEN: TOKEN },
  });
  return { config, keystore: openKeystore(config.deployment.signing.keysDir) };
}

describe('ISP authentication', () => {
  const { config, keystore } = deployment();
  const auth = createIspAuthenticator(config, keystore);

  it('knows each ISP by its own token, configured or derived', () => {
    expect(auth.authenticate(`Bearer ${TOKEN}`)).toBe('alpha');
    expect(auth.tokenOf('alpha')).toBe(TOKEN);
    expect(auth.authenticate(`Bearer ${auth.tokenOf('beta')}`)).toBe('beta');
    expect(auth.tokenOf('beta')).toBe(keystore.derivedIspToken('beta'));
  });

  it('refuses no token, a malformed header, an unknown token and a disabled ISP', () => {
    for (const header of [
      undefined,
      '',
      TOKEN,
      `Basic ${TOKEN}`,
      'Bearer short',
      `Bearer ${TOKEN}x`,
      `Bearer ${keystore.derivedIspToken('off')}`,
    ]) {
      expect(() => auth.authenticate(header), String(header)).toThrow(
        expect.objectContaining({ code: 'PROVISIONING_UNAUTHORIZED' }),
      );
    }
  });
});
