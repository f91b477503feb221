/**
 * The licensing part of `relais demo`: waits for the provisioning worker to send every batch
 * the day's feeds produced and for the delivery worker to hand the keys over (return files, or
 * e-mails to the demo's mail sink), then plays the desktop software of chosen customers with
 * the reference client: each finds the key where their ISP put it, activates it on a device of
 * its own, and the first one checks in, verifies the licence offline and opens the download
 * link.
 *
 * @remarks Safe to run again: nothing new is provisioned the second time, and the client's
 * activation of a device already bound re-activates without using a seat.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IspConfig } from '../config/load.js';
import { InternalError } from '../platform/errors.js';
import type { RunningRelais } from './commands/start.js';
import { type MailedKey, mailedKey } from './demo-mail.js';
import type { Produced } from './demo-month-end.js';
import { out } from './output.js';
import { main as relais } from './program.js';

const WAIT_MS = 120_000;

async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await done())) {
    if (Date.now() > deadline)
      throw new InternalError('INTERNAL', `demo: gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Waits for every batch to be sent and every key handed over; prints what happened. */
export async function showProvisioning(running: RunningRelais): Promise<void> {
  const db = running.services.connectorDb;
  await until('the provisioning worker', async () => {
    const open = await db('provisioning_batches').whereIn('state', ['pending', 'queued']).first();
    return open === undefined;
  });
  const batches = (await db('provisioning_batches')
    .select('isp_id', 'state')
    .count({ batches: '*' })
    .sum({ applied: 'applied', rejected: 'rejected' })
    .groupBy('isp_id', 'state')
    .orderBy('isp_id')) as {
    isp_id: string;
    state: string;
    batches: number;
    applied: string | number;
    rejected: string | number;
  }[];
  const sent = batches.map(
    (b) =>
      `${b.isp_id} ${b.batches} ${b.state} (${Number(b.applied)} commands applied, ${Number(b.rejected)} rejected)`,
  );
  out(`   provisioning batches so far: ${sent.join(', ')}`);
  const licences = (await running.services
    .licensingDb('licences')
    .select('isp_id')
    .count({ licences: '*' })
    .groupBy('isp_id')
    .orderBy('isp_id')) as { isp_id: string; licences: number }[];
  out(
    `   subscription server: ${licences.map((l) => `${l.isp_id} ${l.licences} licences`).join(', ')} (it knows subscriber ids only)`,
  );
}

export async function showDeliveries(running: RunningRelais): Promise<void> {
  const db = running.services.connectorDb;
  await until('the delivery worker', async () => {
    const pending = await db('deliveries').where({ state: 'pending' }).first();
    return pending === undefined;
  });
  const rows = (await db('deliveries')
    .select('isp_id', 'channel', 'state')
    .count({ keys: '*' })
    .groupBy('isp_id', 'channel', 'state')
    .orderBy('isp_id')) as { isp_id: string; channel: string; state: string; keys: number }[];
  out(
    `   keys handed over: ${rows.map((r) => `${r.isp_id} ${r.keys} ${r.state} by ${r.channel}`).join(', ')}`,
  );
}

function filesIn(dir: string, suffix = ''): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith(suffix) && !n.startsWith('.'))
      .sort()
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/** The files the month produced before its end: rejects, return files and the mailboxes. */
export function producedBeforeMonthEnd(
  running: RunningRelais,
  mailDir: string | undefined,
): Produced[] {
  const produced: Produced[] = [];
  for (const isp of [...running.services.config.isps.values()].sort((a, b) =>
    a.id.localeCompare(b.id),
  )) {
    for (const path of filesIn(join(isp.workDir, 'outbox', 'rejects')))
      produced.push({ what: `${isp.id} rejects for the ISP`, path });
    for (const path of filesIn(join(isp.workDir, 'outbox', 'keys'), '.csv'))
      produced.push({ what: `${isp.id} keys return file`, path });
  }
  if (mailDir) {
    const mails = filesIn(mailDir, '.eml').length;
    produced.push({ what: `customers' mail (${mails} messages)`, path: mailDir });
  }
  return produced;
}

function returnFiles(workDir: string): string[] {
  try {
    return readdirSync(join(workDir, 'outbox', 'keys'))
      .filter((n) => n.endsWith('.csv'))
      .sort();
  } catch {
    return [];
  }
}

const unquote = (cell: string) => cell.replace(/^"|"$/g, '').replace(/""/g, '"');

/** The key and link a return file holds for `ref` (the newest file that lists it). */
function returnedKey(isp: IspConfig, ref: string): MailedKey | undefined {
  const { delimiter } = isp.delivery.returnFile;
  for (const name of returnFiles(isp.workDir).reverse()) {
    const text = readFileSync(join(isp.workDir, 'outbox', 'keys', name), 'utf8');
    for (const line of text.split('\r\n').slice(1)) {
      const [customerRef, key, link] = line.split(delimiter).map(unquote);
      if (customerRef === ref && key && link) return { key, link };
    }
  }
  return undefined;
}

/** Where a customer finds the key: the ISP's return file, or the mail in their mailbox. */
async function keyOf(
  isp: IspConfig,
  ref: string,
  mail: { dir: string; addressOf(isp: IspConfig, ref: string): string | undefined },
): Promise<MailedKey | undefined> {
  if (isp.delivery.mode !== 'email') return returnedKey(isp, ref);
  const address = mail.addressOf(isp, ref);
  return address ? mailedKey(mail.dir, address) : undefined;
}

export interface Activation {
  ispId: string;
  ref: string;
}

/**
 * Plays the desktop software of each customer: the reference client, one state folder and
 * device each, activates the key the customer received, checks in and verifies the licence
 * offline. The first customer's session is printed in full, with the download link opened.
 */
export async function activateCustomers(
  running: RunningRelais,
  activations: readonly Activation[],
  mail: { dir: string; addressOf(isp: IspConfig, ref: string): string | undefined },
): Promise<void> {
  const server = running.apiUrl as string;
  const clients = join(running.services.config.deployment.paths.dataDir, 'demo', 'clients');
  let first = true;
  for (const { ispId, ref } of activations) {
    const isp = running.services.config.isps.get(ispId);
    const found = isp && (await keyOf(isp, ref, mail));
    if (!isp || !found) {
      out(`   ${ispId} ${ref}: no key found for this customer; skipped`);
      continue;
    }
    const where = isp.delivery.mode === 'email' ? 'e-mail' : 'return file';
    const client = ['client', '--server', server, '--state', join(clients, `${ispId}-${ref}`)];
    const args = [...client, '--fingerprint', `demo-desktop-${ispId}-${ref}`];
    if (first) out(`   ${ispId} customer ${ref}: key ${found.key} from the ${where}`);
    const steps = first
      ? [['activate', '--key', found.key], ['check-in']]
      : [['activate', '--key', found.key]];
    for (const step of steps) {
      const code = first
        ? await relais([...args, ...step])
        : await quietly(() => relais([...args, ...step]));
      if (code !== 0)
        throw new InternalError('INTERNAL', `demo: relais client ${step[0]} exited ${code}`);
    }
    if (first) {
      // The demo's api takes a free port on each run, so a link minted by an earlier run
      // names another port: ask this run's api for the same path.
      const link = `${server}${new URL(found.link).pathname}`;
      const listing = (await (await fetch(link)).json()) as { modules: { module: string }[] };
      out(`   download link lists: ${listing.modules.map((m) => m.module).join(', ')}`);
    } else out(`   ${ispId} customer ${ref}: key from the ${where}, activated on its own device`);
    first = false;
  }
}

/** Runs `fn` with stdout silenced: the client's full report is printed once, for the first. */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return await fn();
  } finally {
    process.stdout.write = write;
  }
}

/** The customer's software checks in again: after the renewal, the licence runs on. */
export async function checkInAgain(running: RunningRelais, who: Activation): Promise<void> {
  const clients = join(running.services.config.deployment.paths.dataDir, 'demo', 'clients');
  const args = ['client', '--server', running.apiUrl as string];
  const state = join(clients, `${who.ispId}-${who.ref}`);
  const fingerprint = `demo-desktop-${who.ispId}-${who.ref}`;
  if (!existsSync(state)) {
    // Possible when var/ was deleted but not the databases: no key was found to activate.
    out(`   ${who.ispId} ${who.ref} never activated in this data folder; nothing to check in`);
    return;
  }
  const code = await relais([...args, '--state', state, '--fingerprint', fingerprint, 'check-in']);
  if (code !== 0)
    throw new InternalError('INTERNAL', `demo: relais client check-in exited ${code}`);
}
