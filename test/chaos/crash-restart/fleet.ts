/**
 * A fleet of real `relais start` processes for the crash-and-restart proofs: each member is one
 * role started through the CLI harness on a test context's relais.yaml, killed with SIGKILL
 * (no handler runs, nothing is flushed) and started again as a supervisor would. The fleet
 * keeps the tail of each member's output for the failure message, and notes every exit it did
 * not cause: a Relais process that dies on its own under faults is a finding, not noise.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnCli } from '../../harness/cli.js';

export type FleetRole = 'all' | 'api' | 'worker' | 'scheduler';

/** Lines of output kept per member, for the failure message. */
const TAIL_LINES = 40;

interface Member {
  name: string;
  args: string[];
  child?: ChildProcess;
  exited?: Promise<void>;
  /** Set just before the fleet kills the member, so its exit is not counted as unexpected. */
  killing: boolean;
  starts: number;
  tail: string[];
}

/** An exit the fleet did not ask for. */
export interface UnexpectedExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  tail: string;
}

export class Fleet {
  private readonly members = new Map<string, Member>();
  readonly unexpectedExits: UnexpectedExit[] = [];

  constructor(private readonly configFile: string) {}

  /** Adds and starts `name`, one `relais start` of `role` (workers and schedulers on --ops-port 0). */
  add(name: string, role: FleetRole): void {
    const args = ['start', '--role', role, '--config', this.configFile];
    if (role === 'worker' || role === 'scheduler') args.push('--ops-port', '0');
    const member: Member = { name, args, killing: false, starts: 0, tail: [] };
    this.members.set(name, member);
    this.start(member);
  }

  get names(): string[] {
    return [...this.members.keys()];
  }

  /** How many times `name` was started (1 + restarts). */
  starts(name: string): number {
    return this.member(name).starts;
  }

  isRunning(name: string): boolean {
    const child = this.member(name).child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** SIGKILL, then waits until the process is gone (its ports and locks released). */
  async kill(name: string): Promise<boolean> {
    const member = this.member(name);
    if (!this.isRunning(name)) return false;
    member.killing = true;
    member.child?.kill('SIGKILL');
    await member.exited;
    return true;
  }

  /** Starts `name` again after a kill or an exit. */
  restart(name: string): void {
    const member = this.member(name);
    if (this.isRunning(name)) throw new Error(`${name} is still running`);
    this.start(member);
  }

  /** Restarts every member that is not running (one that died on its own, say). */
  restartStopped(): void {
    for (const name of this.names) if (!this.isRunning(name)) this.restart(name);
  }

  tail(name: string): string {
    return this.member(name).tail.join('\n');
  }

  /** SIGTERM to every member, SIGKILL to those still there after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    await Promise.all(
      [...this.members.values()].map(async (member) => {
        if (!this.isRunning(member.name)) return;
        member.killing = true;
        member.child?.kill('SIGTERM');
        const timer = setTimeout(() => member.child?.kill('SIGKILL'), graceMs);
        await member.exited;
        clearTimeout(timer);
      }),
    );
  }

  private member(name: string): Member {
    const member = this.members.get(name);
    if (!member) throw new Error(`no fleet member ${name}`);
    return member;
  }

  private start(member: Member): void {
    const child = spawnCli(member.args);
    member.child = child;
    member.killing = false;
    member.starts++;
    const keep = (chunk: Buffer) => {
      const lines = chunk.toString().split('\n').filter(Boolean);
      member.tail.push(...lines.map((l) => l.slice(0, 500)));
      if (member.tail.length > TAIL_LINES) member.tail.splice(0, member.tail.length - TAIL_LINES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    member.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (!member.killing) {
          this.unexpectedExits.push({
            name: member.name,
            code,
            signal,
            tail: this.tail(member.name),
          });
        }
        resolve();
      });
    });
  }
}
