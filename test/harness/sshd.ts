/**
 * A real OpenSSH server for SFTP tests. Starts `/usr/sbin/sshd` as root on a free loopback port
 * with generated host and client keys and a fresh user confined by `internal-sftp` to a chroot
 * that holds `inbox/` and `outbox/`. The test (running as root) reads and writes those folders
 * directly to play the ISP's side. `stop()` kills the server, deletes the user and the folders.
 *
 * Needs root and the openssh-server package (`.ci/run` installs it). The chroot lives under
 * /run because sshd refuses a chroot with a world-writable component such as /tmp.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports.js';

export const SSHD_BINARY = '/usr/sbin/sshd';

export interface SshdServer {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Client private key (OpenSSH PEM), authorised for `username`. */
  privateKey: string;
  /** Host key fingerprint as `ssh-keygen -l -E sha256` prints it: `SHA256:…`. */
  hostKeyFingerprint: string;
  /** Local path of the chroot; `inbox/` and `outbox/` inside are the user's folders. */
  root: string;
  /** Remote paths as the SFTP user sees them. */
  inboxPath: '/inbox';
  outboxPath: '/outbox';
  /** Stops the server process only (to simulate a server going away); `start` again with restart(). */
  kill(): void;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The SFTP settings of an ISP config that logs in to `server` with its key and pinned host key,
 * failing at once rather than retrying (tests want the error, not the wait).
 */
export function sftpLoginOf(server: SshdServer) {
  return {
    type: 'sftp' as const,
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.privateKey,
    hostKeyFingerprint: server.hostKeyFingerprint,
    connectRetries: 0,
  };
}

export function sshdAvailable(): boolean {
  return existsSync(SSHD_BINARY) && process.getuid?.() === 0;
}

async function waitForBanner(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.setTimeout(500);
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('SSH-2.0'));
      });
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.connect(port, '127.0.0.1');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

function run(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

export async function startSshd(): Promise<SshdServer> {
  if (!sshdAvailable()) {
    throw new Error(`SFTP tests need root and ${SSHD_BINARY} (apt-get install openssh-server)`);
  }
  const tag = randomBytes(4).toString('hex');
  const username = `rsftp${tag}`;
  const password = randomBytes(12).toString('hex');
  const base = `/run/relais-sshd-${tag}`;
  const keys = join(base, 'keys');
  const root = join(base, 'chroot');
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  // sshd reads authorized_keys as the target user, so the folder must be traversable by it.
  mkdirSync(keys, { recursive: true, mode: 0o755 });
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(base, 0o755);

  run('useradd', ['--no-create-home', '--home-dir', '/', '--shell', '/usr/sbin/nologin', username]);
  run('chpasswd', [], `${username}:${password}\n`);
  const uid = Number(run('id', ['-u', username]).trim());
  const gid = Number(run('id', ['-g', username]).trim());
  for (const folder of ['inbox', 'outbox']) {
    mkdirSync(join(root, folder), { mode: 0o755 });
    chownSync(join(root, folder), uid, gid);
  }

  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'host_ed25519')]);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'client_ed25519')]);
  writeFileSync(join(keys, 'authorized_keys'), readFileSync(join(keys, 'client_ed25519.pub')), {
    mode: 0o644,
  });
  const fingerprint = run('ssh-keygen', [
    '-l',
    '-E',
    'sha256',
    '-f',
    join(keys, 'host_ed25519.pub'),
  ]);
  const hostKeyFingerprint = fingerprint.split(' ')[1] as string;

  const port = await freePort();
  const configFile = join(keys, 'sshd_config');
  writeFileSync(
    configFile,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(keys, 'host_ed25519')}`,
      `PidFile ${join(keys, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`,
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 50',
      'Subsystem sftp internal-sftp',
      `AllowUsers ${username}`,
      `Match User ${username}`,
      `  ChrootDirectory ${root}`,
      '  ForceCommand internal-sftp',
      '  AllowTcpForwarding no',
      '  X11Forwarding no',
      '',
    ].join('\n'),
  );

  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(SSHD_BINARY, ['-D', '-e', '-f', configFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.resume();
    await waitForBanner(port, 10_000);
  };
  await launch();

  const kill = () => {
    child?.kill('SIGKILL');
    // Session processes outlive the listener; kill them too so transfers really drop.
    try {
      run('pkill', ['-KILL', '-u', username]);
    } catch {
      // no session process left
    }
  };

  return {
    host: '127.0.0.1',
    port,
    username,
    password,
    privateKey: readFileSync(join(keys, 'client_ed25519'), 'utf8'),
    hostKeyFingerprint,
    root,
    inboxPath: '/inbox',
    outboxPath: '/outbox',
    kill,
    restart: launch,
    async stop() {
      kill();
      try {
        run('userdel', [username]);
      } catch {
        // already gone
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}
