/**
 * The licensing part of `relais demo`: waits for the provisioning worker to send every batch
 * the sample feeds produced and for the delivery worker to hand the keys over (return files
 * for the shipped ISPs), then plays the desktop software with the reference client: activates
 * the first key of demo-fai's return file, checks in, verifies the licence offline, and opens
 * the download link.
 *
 * @remarks Safe to run again: nothing new is provisioned the second time, and the client's
 * activation of a device already bound re-activates without using a seat.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InternalError } from '../platform/errors.js';
import type { RunningRelais } from './commands/start.js';
import { out } from './output.js';
import { main as relais } from './program.js';

const WAIT_MS = 120_000;
const DEMO_ISP = 'demo-fai';
const DEMO_FINGERPRINT = 'demo-desktop-0001';

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
  for (const b of batches) {
    out(
      `   ${b.isp_id}: ${b.batches} batch(es) ${b.state}, ${Number(b.applied)} commands applied, ${Number(b.rejected)} rejected`,
    );
  }
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
  for (const r of rows) out(`   ${r.isp_id}: ${r.keys} key(s) ${r.state} by ${r.channel}`);
  for (const isp of running.services.config.isps.values()) {
    const files = returnFiles(isp.workDir);
    if (files.length > 0) out(`   ${isp.id} return files: ${join(isp.workDir, 'outbox', 'keys')}`);
  }
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

/** The first activation key and download link of the ISP's first return file. */
function firstKey(workDir: string, delimiter: string): { key: string; link: string } | undefined {
  const [first] = returnFiles(workDir);
  if (!first) return undefined;
  const lines = readFileSync(join(workDir, 'outbox', 'keys', first), 'utf8').split('\r\n');
  const fields = lines[1]?.split(delimiter).map((f) => f.replace(/^"|"$/g, ''));
  return fields?.[1] && fields[2] ? { key: fields[1], link: fields[2] } : undefined;
}

/** Plays the desktop software: activate, check in, verify offline, open the download link. */
export async function playDesktopClient(running: RunningRelais): Promise<void> {
  const isp = running.services.config.isps.get(DEMO_ISP);
  const found = isp && firstKey(isp.workDir, isp.delivery.returnFile.delimiter);
  if (!isp || !found) {
    out(`   no return file for ${DEMO_ISP}: nothing to activate`);
    return;
  }
  const server = running.apiUrl as string;
  const state = join(running.services.config.deployment.paths.dataDir, 'demo-client');
  const client = [
    'client',
    '--server',
    server,
    '--state',
    state,
    '--fingerprint',
    DEMO_FINGERPRINT,
  ];
  out(`   key ${found.key} from the return file; relais client activate:`);
  for (const args of [['activate', '--key', found.key], ['check-in'], ['status']]) {
    const code = await relais([...client, ...args]);
    if (code !== 0)
      throw new InternalError('INTERNAL', `demo: relais client ${args[0]} exited ${code}`);
  }
  // The demo's api takes a free port on each run, so a link minted by an earlier run names
  // another port: ask this run's api for the same path.
  const link = `${server}${new URL(found.link).pathname}`;
  const listing = (await (await fetch(link)).json()) as { modules: { module: string }[] };
  out(`   download link lists: ${listing.modules.map((m) => m.module).join(', ')}`);
}
