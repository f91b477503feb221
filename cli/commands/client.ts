/**
 * `relais client activate|check-in|status|trust`: a small reference client that plays the
 * desktop software against a subscription server. It checks a typed key locally (the check
 * character catches typos without a call), activates, keeps the signed licence document in its
 * state folder, and verifies the document offline, as the real software must.
 *
 * Trust: documents are verified against a pinned set of server keys, never against keys that
 * arrive with them. The set comes from `--trust-keys FILE` ($RELAIS_TRUST_KEYS), a key list
 * obtained out of band (the real software embeds it), or, without one, from the server at the
 * first activation (trust on first use, said so on stdout). Later it grows only when asked:
 * `relais client trust --refresh`. So a key list written next to a forged document, or a man
 * in the middle after the first activation, cannot make `status` pass.
 *
 * Exit codes: 0 when the licence is valid; 1 when it is not (mistyped key, refused, forged,
 * expired, suspended, untrusted: the reason is printed); 2 for wrong usage or config.
 */
import type { Command } from 'commander';
import { loadConfigOrThrow } from '../../config/load.js';
import { readKey } from '../../licensing/activation-key.js';
import type { PublicSigningKey } from '../../licensing/keystore.js';
import { checkLicenceDocument, type LicenceClaims } from '../../licensing/licence-document.js';
import type { SignedDocument } from '../../licensing/signed-document.js';
import { type Answer, fetchKeys, requestActivation, requestCheckIn } from '../client/server.js';
import {
  DEFAULT_STATE_DIR,
  loadDocument,
  loadTrustedKeys,
  machineFingerprint,
  pinKeys,
  readKeysFile,
  saveDocument,
  TRUSTED_KEYS_FILE,
} from '../client/state.js';
import { EXIT_FAILURE, ExitRequest } from '../exit.js';
import { out } from '../output.js';

interface ClientOptions {
  server?: string;
  state: string;
  fingerprint?: string;
  config?: string;
  trustKeys?: string;
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

/** A key list written out for display: kid and the public key itself, to compare by eye. */
function describeKeys(keys: readonly PublicSigningKey[]): string {
  return keys.map((k) => `${k.kid} (${k.jwk.x})`).join(', ');
}

/**
 * The keys documents are verified with: the `--trust-keys` file when given, else the pinned
 * set; undefined when there is neither (only `activate` may then pin the server's).
 */
function trustAnchor(opts: ClientOptions): PublicSigningKey[] | undefined {
  const file = opts.trustKeys ?? process.env.RELAIS_TRUST_KEYS;
  if (file) {
    const given = readKeysFile(file);
    if (!given.ok) fail(`the trusted keys cannot be read: ${given.reason}`);
    return given.value;
  }
  const pinned = loadTrustedKeys(opts.state);
  if (pinned.ok) return pinned.value;
  if (!pinned.missing) fail(`the trusted keys cannot be read: ${pinned.reason}`);
  return undefined;
}

function requireAnchor(opts: ClientOptions): PublicSigningKey[] {
  const keys = trustAnchor(opts);
  if (keys) return keys;
  return fail(
    `no trusted keys in ${opts.state}/${TRUSTED_KEYS_FILE}: run \`relais client activate\` first, or pass --trust-keys FILE`,
  );
}

/** Why a document is refused, with the way out when it is signed by a key not trusted yet. */
function untrusted(where: string, reason: string): never {
  const hint = reason.startsWith('signed with unknown key')
    ? ' (not a trusted key: if the server rotated its keys, run `relais client trust --refresh` on a network you trust)'
    : '';
  return fail(`the licence document ${where} is not genuine: ${reason}${hint}`);
}

/** Verifies and prints a document; exits 1 when it is forged or does not unlock anything. */
function judge(keys: readonly PublicSigningKey[], document: unknown, where: string): LicenceClaims {
  const check = checkLicenceDocument(keys, document, new Date());
  if (!check.ok) untrusted(where, check.reason);
  printClaims(check.claims);
  if (!check.usable) fail(`the licence is not valid: ${check.reason}`);
  if (Date.parse(check.claims.checkInAfter) <= Date.now()) {
    out('a check-in is due: run `relais client check-in`');
  }
  return check.claims;
}

/** Keeps a fresh document from the server once it verifies against the trusted keys. */
function keep(dir: string, keys: readonly PublicSigningKey[], document: SignedDocument): void {
  const check = checkLicenceDocument(keys, document, new Date());
  if (!check.ok) untrusted('the server sent', check.reason);
  saveDocument(dir, document);
}

export function registerClientCommand(program: Command): void {
  const client = program
    .command('client')
    .description('a reference desktop client: activate a key, check in, verify the licence')
    .option('--server <url>', 'subscription server (default $RELAIS_SERVER_URL or server.url)')
    .option('--state <dir>', 'where the licence document is kept', DEFAULT_STATE_DIR)
    .option('--fingerprint <fp>', 'device fingerprint (default: derived from the machine id)')
    .option('-c, --config <file>', 'relais.yaml to read server.url from')
    .option(
      '--trust-keys <file>',
      'public keys to trust, as GET /v1/licensing/keys serves them (default $RELAIS_TRUST_KEYS, then the keys pinned in the state folder)',
    );

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
      let keys = trustAnchor(opts);
      if (!keys) {
        // Trust on first use: nothing to check the server's keys against yet, so they are
        // taken as they come, pinned, and said so: every later document must match them.
        keys = expect(await fetchKeys(server), 'fetching the public keys').keys;
        keep(opts.state, keys, issued.document);
        pinKeys(opts.state, keys);
        out(`trusting the keys of ${server} from now on: ${describeKeys(keys)}`);
      } else {
        keep(opts.state, keys, issued.document);
        // Keys from --trust-keys are pinned too, so later commands need not repeat the file.
        if (!loadTrustedKeys(opts.state).ok) pinKeys(opts.state, keys);
      }
      out(`activated (${issued.outcome}), kept in ${opts.state}`);
      judge(keys, issued.document, 'received');
    });

  client
    .command('check-in')
    .description('fetch the current licence document from the server')
    .action(async (_options: unknown, command: Command) => {
      const opts = optionsOf(command);
      const keys = requireAnchor(opts);
      const loaded = loadDocument(opts.state);
      if (!loaded.ok) fail(loaded.reason);
      const stored = checkLicenceDocument(keys, loaded.value, new Date());
      if (!stored.ok) untrusted('stored', stored.reason);
      const server = serverUrl(opts);
      const fingerprint = opts.fingerprint ?? machineFingerprint();
      const issued = expect(
        await requestCheckIn(server, stored.claims.licenceId, fingerprint),
        'check-in',
      );
      keep(opts.state, keys, issued.document);
      out(`checked in, kept in ${opts.state}`);
      judge(keys, issued.document, 'received');
    });

  client
    .command('status')
    .description('verify the stored licence offline (no network)')
    .action((_options: unknown, command: Command) => {
      const opts = optionsOf(command);
      const keys = requireAnchor(opts);
      const loaded = loadDocument(opts.state);
      if (!loaded.ok) fail(loaded.reason);
      judge(keys, loaded.value, `in ${opts.state}`);
    });

  client
    .command('trust')
    .description('show the pinned server keys; --refresh pins keys the server added')
    .option('--refresh', "fetch the server's keys and pin the new ones (after a key rotation)")
    .action(async (options: { refresh?: boolean }, command: Command) => {
      const opts = optionsOf(command);
      const given = opts.trustKeys ?? process.env.RELAIS_TRUST_KEYS;
      let offered: PublicSigningKey[] | undefined;
      if (given) {
        const read = readKeysFile(given);
        if (!read.ok) fail(`the trusted keys cannot be read: ${read.reason}`);
        offered = read.value;
      } else if (options.refresh) {
        offered = expect(await fetchKeys(serverUrl(opts)), 'fetching the public keys').keys;
      }
      if (offered) {
        const { added, conflicting } = pinKeys(opts.state, offered);
        out(added.length > 0 ? `pinned ${describeKeys(added)}` : 'no new key to pin');
        if (conflicting.length > 0) {
          fail(
            `refused ${describeKeys(conflicting)}: a pinned key id with other key material is not the server's`,
          );
        }
      }
      const pinned = loadTrustedKeys(opts.state);
      if (!pinned.ok) fail(pinned.missing ? `no keys pinned in ${opts.state}` : pinned.reason);
      out(`trusted keys   ${describeKeys(pinned.value)}`);
    });
}
