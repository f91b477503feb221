import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isRunning, removeDeadWritersFiles } from './dead-writer-files.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('removeDeadWritersFiles', () => {
  it('removes only the temporary files of writers that no longer run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-dead-writer-'));
    dirs.push(dir);
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number;
    const names = {
      dead: `.invoice.xml.${dead}.tmp`,
      deadRandom: `.keys-3.csv.${dead}-9f8e7d6c.tmp`,
      mine: `.invoice.xml.${process.pid}.tmp`,
      live: `.detail.csv.${process.ppid}.tmp`,
      final: 'invoice.xml',
      notOurs: '.notes.tmp',
      pidZero: '.invoice.html.0.tmp',
    };
    for (const name of Object.values(names)) writeFileSync(join(dir, name), 'x');

    const removed = await removeDeadWritersFiles(dir);

    expect(removed.sort()).toEqual([names.dead, names.deadRandom].sort());
    expect(readdirSync(dir).sort()).toEqual(
      [names.mine, names.live, names.final, names.notOurs, names.pidZero].sort(),
    );
  });

  it('tells a running process from one that exited', () => {
    expect(isRunning(process.pid)).toBe(true);
    expect(isRunning(spawnSync(process.execPath, ['-e', '']).pid as number)).toBe(false);
  });
});
