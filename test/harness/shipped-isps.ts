/**
 * The three example ISPs shipped in `config/isps/` (demo-fai CSV, alpha-telecom XML, bretagne-net
 * fixed width), loaded through the real config loader, for tests that need real ISP configs but
 * no database: the property tests and the fuzz run read feeds exactly as these ISPs configure.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type IspConfig, loadConfigOrThrow } from '../../config/load.js';
import { packageRoot } from '../../platform/package-root.js';

export const SHIPPED_ISPS = ['demo-fai', 'alpha-telecom', 'bretagne-net'] as const;
export type ShippedIsp = (typeof SHIPPED_ISPS)[number];

/** Loads the shipped ISP configs, as a deployment with only them would. */
export function loadShippedIsps(): Record<ShippedIsp, IspConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'relais-shipped-isps-'));
  try {
    mkdirSync(join(dir, 'isps'));
    writeFileSync(join(dir, 'relais.yaml'), 'log: { level: silent }\n');
    for (const id of SHIPPED_ISPS) {
      copyFileSync(join(packageRoot(), `config/isps/${id}.yaml`), join(dir, `isps/${id}.yaml`));
    }
    const { isps } = loadConfigOrThrow({ file: join(dir, 'relais.yaml'), env: {} });
    const loaded = {} as Record<ShippedIsp, IspConfig>;
    for (const id of SHIPPED_ISPS) {
      const isp = isps.get(id);
      if (isp === undefined) throw new Error(`shipped ISP ${id} did not load`);
      loaded[id] = isp;
    }
    return loaded;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
