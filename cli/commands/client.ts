/**
 * `relais client activate|check-in|status`: a small reference client that plays the desktop
 * software against a subscription server. It checks a typed key locally (the check character
 * catches typos without a call), activates, keeps the signed licence document and the server's
 * public keys in its state folder, and verifies the document offline, as the real software
 * must. The demo uses it; integrators use it to try a server by hand.
 *
 * Exit codes: 0 when the licence is valid; 1 when it is not (mistyped key, refused, forged,
 * expired, suspended: the reason is printed); 2 for wrong usage or config.
 */
import type { Command } from 'commander';
import { loadConfigOrThrow } from '../../config/load.js';
import { readKey } from '../../licensing/activation-key.js';
import type { PublicSigningKey } from '../../licensing/keystore.js';
import { checkLicenceDocument, type LicenceClaims } from '../../licensing/licence-document.js';
import {
  type Answer,
  fetchKeys,
  type Issued,
  requestActivation,
  requestCheckIn,
} from '../client/server.js';
import {
  type ClientState,
  DEFAULT_STATE_DIR,
  loadState,
  machineFingerprint,
  saveState,
} from '../client/state.js';
import { EXIT_FAILURE, ExitRequest } from '../exit.js';
import { out } from '../output.js';

interface ClientOptions {
  server?: string;
  state: string;
  fingerprint?: string;
  config?: string;
}

function fail(reason: string): never {
  process.stderr.write(`${reason}\n`);
  throw new ExitRequest(EXIT_FAILURE);
}

function serverUrl(options: ClientOptions): string {
  const given = options.server ?? process.env.RELAIS_SERVER_URL;
  if (given) return given.replace(/\/+$/, '');
  return loadConfigOrThrow({ file: options.config }).deployment.server.url;
}

function expect<T>(answer: Answer<T>, doing: string): T {
  if (answer.ok) return answer.body;
  const wait = answer.retryAfterS ? ` (retry after ${answer.retryAfterS} s)` : '';
  return fail(`${doing} refused: ${answer.code}: ${answer.message}${wait}`);
}

function printClaims(claims: LicenceClaims): void {
  out(`licence        ${claims.licenceId}`);
  out(`status         ${claims.status}`);
  out(`modules        ${claims.modules.length > 0 ? claims.modules.join(', ') : '(none)'}`);
  out(`valid until    ${claims.validUntil ?? 'no end date'}`);
  out(`device         ${claims.device.id} (${claims.deviceLimit} seat(s) on the licence)`);
  out(`check in after ${claims.checkInAfter}`);
}

/** Verifies and prints a document; exits 1 when it is forged or does not unlock anything. */
function judge(keys: readonly PublicSigningKey[], document: unknown, where: string): LicenceClaims {
  const check = checkLicenceDocument(keys, document, new Date());
  if (!check.ok) fail(`the licence document ${where} is not genuine: ${check.reason}`);
  printClaims(check.claims);
  if (!check.usable) fail(`the licence is not valid: ${check.reason}`);
  if (Date.parse(check.claims.checkInAfter) <= Date.now()) {
    out('a check-in is due: run `relais client check-in`');
  }
  return check.claims;
}

/** Takes a fresh document from the server: verified with fresh keys, then kept. */
async function keep(
  server: string,
  dir: string,
  issued: Issued,
): Promise<{ state: ClientState; claims: LicenceClaims }> {
  const { keys } = expect(await fetchKeys(server), 'fetching the public keys');
  const check = checkLicenceDocument(keys, issued.document, new Date());
  if (!check.ok) fail(`the server sent a licence document that is not genuine: ${check.reason}`);
  const state = { document: issued.document, keys };
  saveState(dir, state);
  return { state, claims: check.claims };
}

export function registerClientCommand(program: Command): void {
  const client = program
    .command('client')
    .description('a reference desktop client: activate a key, check in, verify the licence')
    .option('--server <url>', 'subscription server (default $RELAIS_SERVER_URL or server.url)')
    .option('--state <dir>', 'where the licence document is kept', DEFAULT_STATE_DIR)
    .option('--fingerprint <fp>', 'device fingerprint (default: derived from the machine id)')
    .option('-c, --config <file>', 'relais.yaml to read server.url from');

  const optionsOf = (command: Command) => command.optsWithGlobals() as ClientOptions;

  client
    .command('activate')
    .description('activate an activation key on this device')
    .requiredOption('--key <key>', 'the activation key, as printed (dashes and case do not matter)')
    .action(async (options: { key: string }, command: Command) => {
      const opts = optionsOf(command);
      const reading = readKey(options.key);
      if (!reading.ok) fail(`the key is mistyped (${reading.reason}); nothing was sent`);
      const server = serverUrl(opts);
      const fingerprint = opts.fingerprint ?? machineFingerprint();
      const issued = expect(
        await requestActivation(server, options.key, fingerprint),
        'activation',
      );
      const { state } = await keep(server, opts.state, issued);
      out(`activated (${(issued as Issued & { outcome: string }).outcome}), kept in ${opts.state}`);
      judge(state.keys, state.document, 'received');
    });

  client
    .command('check-in')
    .description('fetch the current licence document from the server')
    .action(async (_options: unknown, command: Command) => {
      const opts = optionsOf(command);
      const loaded = loadState(opts.state);
      if (!loaded.ok) fail(loaded.reason);
      const stored = checkLicenceDocument(loaded.state.keys, loaded.state.document, new Date());
      if (!stored.ok) fail(`the stored licence document is not genuine: ${stored.reason}`);
      const server = serverUrl(opts);
      const fingerprint = opts.fingerprint ?? machineFingerprint();
      const issued = expect(
        await requestCheckIn(server, stored.claims.licenceId, fingerprint),
        'check-in',
      );
      const { state } = await keep(server, opts.state, issued);
      out(`checked in, kept in ${opts.state}`);
      judge(state.keys, state.document, 'received');
    });

  client
    .command('status')
    .description('verify the stored licence offline (no network)')
    .action((_options: unknown, command: Command) => {
      const opts = optionsOf(command);
      const loaded = loadState(opts.state);
      if (!loaded.ok) fail(loaded.reason);
      judge(loaded.state.keys, loaded.state.document, `in ${opts.state}`);
    });
}
