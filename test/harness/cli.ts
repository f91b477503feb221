/**
 * Runs the real `relais` command from the sources in a child process (through tsx), so tests
 * see what a user sees: stdout, stderr and the exit code.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../platform/package-root.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

export function spawnCli(args: string[], options: CliOptions = {}): ChildProcess {
  const root = packageRoot();
  // An absolute loader path, so the child finds tsx whatever its working directory.
  const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  return spawn(process.execPath, ['--import', tsx, join(root, 'cli/main.ts'), ...args], {
    cwd: options.cwd ?? root,
    env: { ...process.env, RELAIS_CONFIG: '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  return collect(child, options.timeoutMs ?? 60_000);
}

export function collect(child: ChildProcess, timeoutMs: number): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `command did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
