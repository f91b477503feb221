/**
 * The change list of one feed: what the diff decided, written to the feed's scratch folder so
 * the decision (apply, hold, refuse) can be taken on the whole feed before anything is applied,
 * and so the apply reads it back in bounded memory. One compact JSON array per line; a
 * command's key and subscriber id are rebuilt on reading, since both follow from the change.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { CommandKind, ProvisioningCommand } from '../../mappings/provisioning-command.js';
import { commandKey } from '../../mappings/provisioning-command.js';
import type { SubscriberChange } from '../../mappings/subscriber-store.js';

/** Lines buffered before a write: fewer, larger writes. */
const WRITE_CHUNK_CHARS = 1 << 16;

type CommandLine = [CommandKind, string, ProvisioningCommand['status'], string, number];
type ChangeLine = [
  string,
  string,
  0 | 1,
  SubscriberChange['status'],
  string | null,
  string,
  number | null,
  number,
  CommandLine[],
];

function encode(change: SubscriberChange): string {
  const line: ChangeLine = [
    change.customerRef,
    change.subscriberId,
    change.isNew ? 1 : 0,
    change.status,
    change.offer,
    change.modules.join(','),
    change.effectiveAt?.getTime() ?? null,
    change.version,
    change.commands.map((c) => [c.kind, c.modules.join(','), c.status, c.effectiveAt, c.version]),
  ];
  return JSON.stringify(line);
}

const splitModules = (joined: string): string[] => (joined === '' ? [] : joined.split(','));

function decode(text: string): SubscriberChange {
  const [ref, subscriberId, isNew, status, offer, modules, effectiveMs, version, commands] =
    JSON.parse(text) as ChangeLine;
  return {
    customerRef: ref,
    subscriberId,
    isNew: isNew === 1,
    status,
    offer,
    modules: splitModules(modules),
    effectiveAt: effectiveMs === null ? null : new Date(effectiveMs),
    version,
    commands: commands.map(([kind, cmdModules, cmdStatus, effectiveAt, cmdVersion]) => ({
      key: commandKey(subscriberId, cmdVersion),
      kind,
      subscriberId,
      modules: splitModules(cmdModules),
      status: cmdStatus,
      effectiveAt,
      version: cmdVersion,
    })),
  };
}

export class ChangeListWriter {
  private readonly out: WriteStream;
  private pending = '';

  constructor(readonly path: string) {
    this.out = createWriteStream(path);
  }

  async write(change: SubscriberChange): Promise<void> {
    this.pending += `${encode(change)}\n`;
    if (this.pending.length < WRITE_CHUNK_CHARS) return;
    const text = this.pending;
    this.pending = '';
    if (!this.out.write(text)) await once(this.out, 'drain');
  }

  async close(): Promise<void> {
    this.out.end(this.pending);
    this.pending = '';
    await once(this.out, 'finish');
  }
}

export async function* readChangeList(path: string): AsyncGenerator<SubscriberChange> {
  const lines = createInterface({
    input: createReadStream(path),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  for await (const line of lines) yield decode(line);
}
