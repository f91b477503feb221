/**
 * The customers' side of the soak bench (bench/soak.ts), run from the bench process against a
 * Relais api on 127.0.0.1: activations of the keys the connector delivered (read back from
 * the return files in the ISP outboxes and from the mails the SMTP relay accepted), some typed
 * wrong first, check-ins of the activated devices, download link opens and installer
 * downloads, and a guesser trying random keys.
 *
 * Each simulated device has an address of its own, sent as X-Forwarded-For (the bench's api
 * trusts the proxy header), so the real guessing guard runs with its shipped limits: a
 * customer's one typo never locks anyone out, and the guesser, on one address, is locked out
 * as it would be in production. Load is open-loop: requests start on a fixed schedule whether
 * or not earlier ones have answered, so a slow server shows as latency, not as fewer requests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCharacter, generateKey, KEY_ALPHABET } from '../licensing/activation-key.js';
import { refOf } from '../test/generators/isp-exports.js';
import type { TestRelay } from '../test/harness/smtp.js';
import { isChurner } from './soak-feeds.js';
import type { Recorder } from './soak-stats.js';

/** A key as the customer received it. */
export interface Issued {
  ispId: string;
  ref: string;
  key: string;
  downloadUrl: string;
}

interface Device {
  issued: Issued;
  fingerprint: string;
  address: string;
  licenceId: string;
  lastCheckInMs: number;
}

/** Requests a second per kind; `installer` downloads follow link opens. */
export interface Rates {
  activate: number;
  reactivate: number;
  checkIn: number;
  guess: number;
  openLink: number;
  installer: number;
}

/** A device checks in at most this often, well inside the guard's 120 a minute per address. */
const CHECK_IN_EVERY_MS = 5_000;
/** Share of first activations typed wrong once before the right key. */
const TYPO_SHARE = 0.1;
/** Requests of one kind in flight beyond which a tick is skipped (and counted). */
const MAX_IN_FLIGHT = 64;
const KEY_PATTERN = /\b[0-9A-Z]{5}(?:-[0-9A-Z]{5}){4}\b/;
const LINK_PATTERN = /https?:\/\/\S+\/v1\/downloads\/\S+/;
const REF_IN_ADDRESS = /\.(\d+)@/;

/** Keys delivered so far: return files of the ISPs that get them, mails of the one mailed. */
export class KeyHarvest {
  private readonly seenFiles = new Set<string>();
  private readonly fresh: Issued[] = [];
  harvested = 0;
  skippedChurners = 0;

  constructor(
    private readonly outboxes: { ispId: string; dir: string }[],
    private readonly mailed: { ispId: string; relay: TestRelay } | undefined,
  ) {}

  /** Reads what arrived since the last call. */
  collect(): void {
    for (const { ispId, dir } of this.outboxes) {
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => /^keys-.*\.csv$/.test(n));
      } catch {
        continue; // the outbox is made with the first file
      }
      for (const name of names) {
        const path = join(dir, name);
        if (this.seenFiles.has(path)) continue;
        this.seenFiles.add(path);
        const lines = readFileSync(path, 'utf8').split(/\r?\n/).slice(1);
        for (const line of lines) {
          if (line === '') continue;
          const [ref = '', key = '', downloadUrl = ''] = line.split(';').map(unquote);
          this.offer({ ispId, ref, key, downloadUrl });
        }
      }
    }
    if (this.mailed) {
      const { ispId, relay } = this.mailed;
      for (const mail of relay.received.splice(0)) {
        const text = mail.parsed.text ?? '';
        const index = REF_IN_ADDRESS.exec(mail.to[0] ?? '')?.[1];
        const key = KEY_PATTERN.exec(text)?.[0];
        const downloadUrl = LINK_PATTERN.exec(text)?.[0];
        if (!index || !key || !downloadUrl) throw new Error('a key mail without key, link or ref');
        this.offer({ ispId, ref: refOf(Number(index)), key, downloadUrl });
      }
    }
  }

  /** A random unused key, so the three ISPs' keys are activated side by side. */
  take(random: () => number): Issued | undefined {
    if (this.fresh.length === 0) return undefined;
    const at = Math.floor(random() * this.fresh.length);
    const taken = this.fresh[at] as Issued;
    this.fresh[at] = this.fresh[this.fresh.length - 1] as Issued;
    this.fresh.pop();
    return taken;
  }

  get available(): number {
    return this.fresh.length;
  }

  private offer(issued: Issued): void {
    this.harvested++;
    // A churner may be suspended or gone by the time its key is tried: not a fair request.
    if (isChurner(issued.ref)) this.skippedChurners++;
    else this.fresh.push(issued);
  }
}

function unquote(cell: string): string {
  return cell.startsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell;
}

/** The key with one body character replaced: the check character catches it (a typo). */
export function mistype(key: string, random: () => number): string {
  const chars = key.replace(/-/g, '').split('');
  const at = Math.floor(random() * (chars.length - 1));
  const was = chars[at] as string;
  let now = was;
  while (now === was) now = KEY_ALPHABET[Math.floor(random() * KEY_ALPHABET.length)] as string;
  chars[at] = now;
  return chars.join('');
}

/** A random well-formed key that nobody holds (valid check character). */
function guessedKey(): string {
  const body = generateKey().replace(/-/g, '').slice(0, 24);
  return body + checkCharacter(body);
}

function addressOf(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** What an answer must be for the request to count as a success; undefined when it is. */
type Expectation = (status: number, body: string) => string | undefined;

const expectStatus =
  (...statuses: number[]): Expectation =>
  (status, body) =>
    statuses.includes(status) ? undefined : `status ${status}: ${body.slice(0, 300)}`;

/** A refusal with one of `codes` (the error body's code), as the API documents them. */
const expectRefusal =
  (...codes: string[]): Expectation =>
  (status, body) => {
    let code = '';
    try {
      code = (JSON.parse(body) as { code?: string }).code ?? '';
    } catch {
      // not JSON: reported below
    }
    return codes.includes(code) ? undefined : `status ${status}: ${body.slice(0, 300)}`;
  };

export class LoadGenerator {
  private readonly devices: Device[] = [];
  private readonly activatedLinks: string[] = [];
  private readonly installerUrls: string[] = [];
  private readonly inFlight = new Map<string, number>();
  private checkInCursor = 0;
  private addresses = 0;
  skipped = new Map<string, number>();
  readonly guesserAddress = '192.0.2.7';

  constructor(
    private readonly apiUrl: string,
    private readonly recorder: Recorder,
    private readonly keys: KeyHarvest,
    private readonly random: () => number,
  ) {}

  get activatedDevices(): number {
    return this.devices.length;
  }

  /** One HTTP request, timed from its start to the end of its body. */
  async request(
    kind: string,
    url: string,
    init: RequestInit,
    expect: Expectation,
  ): Promise<{ status: number; body: string } | undefined> {
    const sentAt = this.recorder.elapsedMs();
    const started = performance.now();
    this.inFlight.set(kind, (this.inFlight.get(kind) ?? 0) + 1);
    try {
      const response = await fetch(url, init);
      const body = await response.text();
      const latency = performance.now() - started;
      const problem = expect(response.status, body);
      this.recorder.record(kind, sentAt, latency, String(response.status), problem);
      return { status: response.status, body };
    } catch (err) {
      const latency = performance.now() - started;
      this.recorder.record(kind, sentAt, latency, 'network', `no answer: ${String(err)}`);
      return undefined;
    } finally {
      this.inFlight.set(kind, (this.inFlight.get(kind) ?? 1) - 1);
    }
  }

  /** Runs `fire` unless too many of `kind` are in flight (then counts a skip). */
  private launch(kind: string, fire: () => Promise<unknown> | undefined): void {
    if ((this.inFlight.get(kind) ?? 0) >= MAX_IN_FLIGHT) {
      this.skip(kind);
      return;
    }
    const running = fire();
    if (running === undefined) this.skip(kind);
  }

  private skip(kind: string): void {
    this.skipped.set(kind, (this.skipped.get(kind) ?? 0) + 1);
  }

  private postJson(body: unknown, address: string): RequestInit {
    return {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
      body: JSON.stringify(body),
    };
  }

  /** A customer's first activation, sometimes after typing the key wrong once. */
  activate(): Promise<unknown> | undefined {
    const issued = this.keys.take(this.random);
    if (!issued) return undefined;
    const address = addressOf(++this.addresses);
    const fingerprint = `soak-device-${issued.ispId}-${issued.ref}`;
    return (async () => {
      if (this.random() < TYPO_SHARE) {
        const typed = mistype(issued.key, this.random);
        await this.request(
          'activate, typo first',
          `${this.apiUrl}/v1/activations`,
          this.postJson({ key: typed, fingerprint }, address),
          expectRefusal('ACTIVATION_KEY_INVALID'),
        );
      }
      const answer = await this.request(
        'activate',
        `${this.apiUrl}/v1/activations`,
        this.postJson({ key: issued.key, fingerprint }, address),
        (status, body) =>
          status === 200 && body.includes('"outcome":"activated"')
            ? undefined
            : `status ${status} for ${issued.ispId} ${issued.ref}: ${body.slice(0, 300)}`,
      );
      if (answer?.status !== 200) return;
      const { licenceId } = JSON.parse(answer.body) as { licenceId: string };
      this.devices.push({ issued, fingerprint, address, licenceId, lastCheckInMs: Date.now() });
      this.activatedLinks.push(issued.downloadUrl);
    })();
  }

  /** The same device activating its key again (a reinstall): no seat used. */
  reactivate(): Promise<unknown> | undefined {
    const device = this.pickDevice();
    if (!device) return undefined;
    return this.request(
      'reactivate',
      `${this.apiUrl}/v1/activations`,
      this.postJson({ key: device.issued.key, fingerprint: device.fingerprint }, device.address),
      (status, body) =>
        status === 200 && body.includes('"outcome":"reactivated"')
          ? undefined
          : `status ${status}: ${body.slice(0, 300)}`,
    );
  }

  /** The next device due a check-in, round robin; none when every one checked in lately. */
  checkIn(): Promise<unknown> | undefined {
    for (let tries = 0; tries < Math.min(this.devices.length, 50); tries++) {
      const device = this.devices[this.checkInCursor++ % this.devices.length] as Device;
      if (Date.now() - device.lastCheckInMs < CHECK_IN_EVERY_MS) continue;
      device.lastCheckInMs = Date.now();
      return this.request(
        'check-in',
        `${this.apiUrl}/v1/licences/${device.licenceId}/check-in`,
        this.postJson({ fingerprint: device.fingerprint }, device.address),
        expectStatus(200),
      );
    }
    return undefined;
  }

  /** A random key from the guesser's one address: refused, then locked out. */
  guess(): Promise<unknown> {
    return this.request(
      'guess (wrong key)',
      `${this.apiUrl}/v1/activations`,
      this.postJson(
        { key: guessedKey(), fingerprint: 'soak-guesser-0000000000' },
        this.guesserAddress,
      ),
      expectRefusal('ACTIVATION_KEY_INVALID', 'ACTIVATION_LOCKED', 'RATE_LIMITED'),
    );
  }

  /** A customer opening the download link of an activated key: JSON or a browser's HTML. */
  openLink(): Promise<unknown> | undefined {
    if (this.activatedLinks.length === 0) return undefined;
    const url = this.activatedLinks[Math.floor(this.random() * this.activatedLinks.length)];
    const browser = this.random() < 0.5;
    return (async () => {
      const answer = await this.request(
        browser ? 'download link (html)' : 'download link (json)',
        url as string,
        { headers: { accept: browser ? 'text/html' : 'application/json' } },
        expectStatus(200),
      );
      if (answer?.status !== 200 || browser) return;
      // Antivirus is in every offer: the offer changes the feeds keep making never withdraw it
      // between the listing and the download.
      const listing = JSON.parse(answer.body) as { modules: { module: string; url: string }[] };
      const antivirus = listing.modules.find((m) => m.module === 'antivirus');
      if (antivirus && this.installerUrls.length < 2000) this.installerUrls.push(antivirus.url);
    })();
  }

  /** An installer from a listing, streamed to the end. */
  installer(): Promise<unknown> | undefined {
    const url = this.installerUrls.shift();
    if (!url) return undefined;
    return this.request('installer download', url, {}, expectStatus(200));
  }

  private pickDevice(): Device | undefined {
    if (this.devices.length === 0) return undefined;
    return this.devices[Math.floor(this.random() * this.devices.length)];
  }

  /**
   * Sends each kind at its rate until `untilMs` (recorder time), checking every 50 ms how many
   * requests are due, so the rates hold whatever the answers take.
   */
  async run(rates: Rates, untilMs: number, onTick?: () => void): Promise<void> {
    const kinds: [keyof Rates, () => Promise<unknown> | undefined][] = [
      ['activate', () => this.activate()],
      ['reactivate', () => this.reactivate()],
      ['checkIn', () => this.checkIn()],
      ['guess', () => this.guess()],
      ['openLink', () => this.openLink()],
      ['installer', () => this.installer()],
    ];
    const sent = new Map<string, number>();
    const began = this.recorder.elapsedMs();
    while (this.recorder.elapsedMs() < untilMs) {
      const elapsedS = (this.recorder.elapsedMs() - began) / 1000;
      for (const [kind, fire] of kinds) {
        const due = Math.floor(rates[kind] * elapsedS) - (sent.get(kind) ?? 0);
        for (let n = 0; n < due; n++) this.launch(kind, fire);
        if (due > 0) sent.set(kind, (sent.get(kind) ?? 0) + due);
      }
      onTick?.();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Requests still in flight, to wait for at the end. */
  get pending(): number {
    let n = 0;
    for (const v of this.inFlight.values()) n += v;
    return n;
  }
}
