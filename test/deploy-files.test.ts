/**
 * The deployment files against the code they deploy: docker-compose.yml with the config it
 * mounts (deploy/relais.compose.yaml, deploy/isps), the Dockerfile, and the systemd units.
 * There is no container engine here, so nothing is started: the compose file is parsed with
 * `yaml` and each Relais container's config is loaded through the real loader from a folder
 * laid out the way its mounts lay out the container (secrets included); `docker compose config`
 * (or docker-compose) validates the file itself, and `systemd-analyze verify` the units.
 * docs/operations.md describes what these files do.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXIT_USAGE } from '../cli/exit.js';
import { ROLES } from '../cli/roles.js';
import { deploymentSchema } from '../config/deployment-schema.js';
import { loadConfigOrThrow, type RelaisConfig } from '../config/load.js';
import { packageRoot } from '../platform/package-root.js';

const ROOT = packageRoot();
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string | number | boolean>;
  secrets?: (string | { source: string })[];
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  restart?: string;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { file: string }>;
  volumes?: Record<string, unknown>;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as ComposeFile;
const services = Object.entries(compose.services);
/** The services running the Relais image: they are the ones built from this repository. */
const relaisServices = services.filter(([, s]) => s.build !== undefined);

/** KEY=VALUE lines, as docker compose reads an env file. */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) env[match[1] as string] = (match[2] as string).trim();
  }
  return env;
}

const exampleEnv = parseEnvFile(read('deploy/compose.env.example'));

/** Compose interpolation: `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (whole, name?: string, colon?: string, op?: string, arg?: string) => {
      if (whole === '$$') return '$';
      const set = env[name as string];
      const missing = set === undefined || (colon === ':' && set === '');
      if (!missing) return set as string;
      if (op === '?') throw new Error(`${name} is required: ${arg}`);
      return op === '-' ? (arg as string) : '';
    },
  );
}

function secretNames(service: ComposeService): string[] {
  return (service.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source));
}

/** `source:target[:mode]` of each volume; `bind` when the source is a path. */
function mounts(service: ComposeService) {
  return (service.volumes ?? []).map((volume) => {
    const [source = '', target = ''] = volume.split(':');
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') };
  });
}

/** What a made-up secret file holds: shaped like the real one, so validation passes. */
function dummySecret(name: string): string {
  if (name.includes('fingerprint')) return `SHA256:${'A'.repeat(43)}\n`;
  return 'compose-test-secret-0123456789\n';
}

const views: string[] = [];
afterAll(() => {
  for (const dir of views) rmSync(dir, { recursive: true, force: true });
});

/**
 * The container's file system as far as the config goes: the bind mounts copied to where they
 * are mounted, and each `/run/secrets/<name>` a `*_FILE` variable names written there. Returns
 * the environment the container gets, with paths moved into that folder.
 */
function containerView(service: ComposeService): { root: string; env: Record<string, string> } {
  const root = mkdtempSync(join(tmpdir(), 'relais-compose-'));
  views.push(root);
  for (const { source, target, bind } of mounts(service)) {
    if (bind) cpSync(resolve(ROOT, source), join(root, target), { recursive: true });
  }
  const env: Record<string, string> = {};
  for (const [name, raw] of Object.entries(service.environment ?? {})) {
    const value = interpolate(String(raw), exampleEnv);
    const secret = /^\/run\/secrets\/([\w.-]+)$/.exec(value);
    if (name.endsWith('_FILE') && secret) {
      mkdirSync(join(root, '/run/secrets'), { recursive: true });
      writeFileSync(join(root, value), dummySecret(secret[1] as string));
      env[name] = join(root, value);
    } else {
      env[name] = value;
    }
  }
  return { root, env };
}

/** The service's config, loaded by the real loader as its container would load it. */
function loadServiceConfig(service: ComposeService): { config: RelaisConfig; root: string } {
  const { root, env } = containerView(service);
  expect(env.RELAIS_CONFIG, 'RELAIS_CONFIG names the mounted config').toMatch(/^\//);
  const config = loadConfigOrThrow({ file: join(root, env.RELAIS_CONFIG as string), env });
  return { config, root };
}

/** The role of `relais start --role R`, or `migrate`. */
function commandOf(service: ComposeService): string {
  const [first, ...rest] = service.command ?? [];
  if (first !== 'start') return first ?? '';
  const at = rest.indexOf('--role');
  return at < 0 ? 'all' : (rest[at + 1] ?? '');
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function seconds(duration: string): number {
  const match = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!match) throw new Error(`unreadable duration ${duration}`);
  const n = Number(match[1]);
  return match[2] === 'ms' ? n / 1000 : match[2] === 'm' ? n * 60 : n;
}

describe('docker-compose.yml', () => {
  it('runs each Relais service as a role relais start accepts, plus a one-shot migrate', () => {
    const commands = relaisServices.map(([, s]) => commandOf(s));
    for (const [name, service] of relaisServices) {
      const command = commandOf(service);
      if (command === 'migrate') {
        expect(service.command, name).toEqual(['migrate']);
        continue;
      }
      expect(service.command?.[0], name).toBe('start');
      expect(ROLES as readonly string[], `${name}: relais start --role`).toContain(command);
    }
    expect(commands).toEqual(expect.arrayContaining(['migrate', 'api', 'worker', 'scheduler']));
  });

  it('starts the roles once migrate succeeded on a healthy MariaDB and Redis', () => {
    for (const [name, service] of relaisServices.filter(([, s]) => commandOf(s) !== 'migrate')) {
      expect(service.depends_on, name).toEqual({
        mariadb: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' },
      });
      expect(service.restart ?? 'unless-stopped', name).not.toBe('no');
    }
    const migrate = relaisServices.find(([, s]) => commandOf(s) === 'migrate')?.[1];
    expect(migrate?.depends_on).toEqual({ mariadb: { condition: 'service_healthy' } });
    expect(migrate?.restart).toBe('no');
    for (const dependency of ['mariadb', 'redis']) {
      expect(compose.services[dependency]?.healthcheck?.test, dependency).toBeDefined();
    }
  });

  it.each(relaisServices)('%s loads its mounted config through the real loader', (_, service) => {
    const { config } = loadServiceConfig(service);
    const { mysql, redis, http, paths, signing } = config.deployment;
    expect(Object.keys(compose.services)).toContain(mysql.host);
    expect(Object.keys(compose.services)).toContain(new URL(redis.url).hostname);
    expect(http.host).toBe('0.0.0.0');
    expect(config.isps.size).toBeGreaterThan(0);

    // Data and keys live in named volumes, so they outlive the container.
    const named = mounts(service).filter((m) => !m.bind);
    expect(named.map((m) => m.target)).toEqual(
      expect.arrayContaining([paths.dataDir, signing.keysDir]),
    );
    for (const volume of named) expect(Object.keys(compose.volumes ?? {})).toContain(volume.source);

    // An ISP polled over SFTP reaches a compose service, with a key the container mounts.
    for (const isp of config.isps.values()) {
      const transport = isp.intake.transport;
      if (transport.type !== 'sftp') continue;
      expect(Object.keys(compose.services), isp.id).toContain(transport.host);
      const key = /^\/run\/secrets\/(.+)$/.exec(transport.privateKeyFile ?? '');
      expect(secretNames(service), `${isp.id} privateKeyFile`).toContain(key?.[1]);
    }
  });

  it('hands every *_FILE variable a secret the service mounts and the file declares', () => {
    for (const [name, service] of services) {
      for (const [variable, value] of Object.entries(service.environment ?? {})) {
        const secret = /^\/run\/secrets\/(.+)$/.exec(String(value));
        if (!variable.endsWith('_FILE') || !secret) continue;
        expect(secretNames(service), `${name} ${variable}`).toContain(secret[1]);
        expect(Object.keys(compose.secrets ?? {}), `secret ${secret[1]}`).toContain(secret[1]);
      }
    }
  });

  it('probes each role where its config makes it listen', () => {
    for (const [name, service] of relaisServices.filter(([, s]) => commandOf(s) !== 'migrate')) {
      const { http } = loadServiceConfig(service).config.deployment;
      const probe = service.healthcheck?.test?.at(-1) ?? '';
      const expected = commandOf(service) === 'api' ? http.port : http.opsPort;
      expect(probe, name).toBe(`http://127.0.0.1:${expected}/healthz`);
    }
    const api = relaisServices.find(([, s]) => commandOf(s) === 'api')?.[1] as ComposeService;
    const { http } = loadServiceConfig(api).config.deployment;
    const published = (api.ports ?? []).map((p) => interpolate(p, exampleEnv).split(':').at(-1));
    expect(published).toEqual([String(http.port)]);
    expect(portOf(exampleEnv.RELAIS_PUBLIC_URL as string)).toBe(http.port);
  });

  it('gives a stopping container more time than Relais takes to stop gracefully', () => {
    for (const [name, service] of relaisServices) {
      const { shutdownTimeoutMs } = loadServiceConfig(service).config.deployment;
      expect(seconds(service.stop_grace_period ?? '10s'), name).toBeGreaterThan(
        shutdownTimeoutMs / 1000,
      );
    }
  });

  it('runs Redis with noeviction and the AOF, as BullMQ needs', () => {
    const command = compose.services.redis?.command ?? [];
    const option = (name: string) => command[command.indexOf(`--${name}`) + 1];
    expect(command[0]).toBe('redis-server');
    expect(option('maxmemory-policy')).toBe('noeviction');
    expect(option('appendonly')).toBe('yes');
    expect(option('appendfsync')).toBe('everysec');
  });

  it('lets MariaDB take every Relais connection, LOAD DATA LOCAL and the grants it needs', () => {
    const command = (compose.services.mariadb?.command ?? []).map((c) =>
      interpolate(c, exampleEnv),
    );
    const option = (name: string) =>
      command.find((c) => c.startsWith(`--${name}=`))?.slice(name.length + 3);
    expect(option('local-infile')).toBe('ON');
    expect(option('character-set-server')).toBe('utf8mb4');

    // Every process holds up to poolMax connections to each of the two databases.
    let needed = 0;
    for (const [, service] of relaisServices) {
      const { poolMax } = loadServiceConfig(service).config.deployment.mysql;
      needed += 2 * poolMax * (service.deploy?.replicas ?? 1);
    }
    expect(Number(option('max-connections'))).toBeGreaterThanOrEqual(needed);

    const { mysql } = loadServiceConfig(relaisServices[0]?.[1] as ComposeService).config.deployment;
    const grants = read('deploy/mariadb/initdb/10-relais-grants.sql');
    for (const database of [mysql.connectorDatabase, mysql.licensingDatabase]) {
      const escaped = database.replace(/_/g, '\\_');
      expect(grants).toContain(`ON \`${escaped}\`.* TO '${mysql.user}'@'%'`);
    }
    expect(compose.services.mariadb?.environment?.MARIADB_USER).toBe(mysql.user);
  });

  it('is a valid compose file for docker compose (deploy/check-compose.sh)', () => {
    const plugin = spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0;
    const standalone = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
    if (!plugin && !standalone) {
      throw new Error(
        'neither `docker compose` nor `docker-compose` is installed, so docker-compose.yml cannot be validated: apt-get install docker-compose (or the compose plugin)',
      );
    }
    const script = join(ROOT, 'deploy/check-compose.sh');
    const valid = spawnSync(script, [], { encoding: 'utf8' });
    expect(valid.status, valid.stderr).toBe(0);

    // The check can fail: the same file with a misspelt option is refused.
    const dir = mkdtempSync(join(tmpdir(), 'relais-compose-'));
    views.push(dir);
    const broken = join(dir, 'docker-compose.yml');
    writeFileSync(broken, read('docker-compose.yml').replace('stop_grace_period:', 'stop_grace:'));
    expect(spawnSync(script, [broken], { encoding: 'utf8' }).status).not.toBe(0);
  });
});

/** The instructions of the Dockerfile's last stage, the runtime image. */
function runtimeStage(): string[] {
  const lines = read('Dockerfile')
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const last = lines.map((l, i) => (l.startsWith('FROM ') ? i : -1)).filter((i) => i >= 0);
  return lines.slice(last.at(-1));
}

/** Bare package names imported, statically, by the code reachable from `entry`. */
function runtimePackages(entry: string): Map<string, string> {
  const statement = /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/gm;
  const packages = new Map<string, string>();
  const seen = new Set<string>([entry]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(statement)) {
      const specifier = match[1] as string;
      if (specifier.startsWith('.')) {
        const next = resolve(dirname(file), specifier).replace(/\.js$/, '.ts');
        if (!seen.has(next)) {
          seen.add(next);
          queue.push(next);
        }
        continue;
      }
      if (specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
      const parts = specifier.split('/');
      const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
      if (!packages.has(name)) packages.set(name, relative(ROOT, file));
    }
  }
  return packages;
}

describe('Dockerfile', () => {
  it('builds with npm ci and npm run build, and runs the built CLI as a non-root user', () => {
    const text = read('Dockerfile');
    expect(text).toMatch(/RUN npm ci --no-audit --no-fund\n/);
    expect(text).toMatch(/RUN npm run build\n/);
    expect(text).toMatch(/RUN npm ci --omit=dev/);
    const stage = runtimeStage();
    expect(stage).toContain('USER relais');
    expect(stage).toContain('ENTRYPOINT ["node", "dist/cli/main.js"]');
    expect(stage).toContain('CMD ["start", "--role", "all"]');
    expect(stage.find((l) => l.startsWith('HEALTHCHECK'))).toMatch(/\/healthz/);
  });

  it('copies into the runtime image what the code reads beside dist/ at run time', () => {
    const copied = runtimeStage()
      .filter((l) => l.startsWith('COPY '))
      .flatMap((l) => l.replace(/^COPY (--from=\S+ )?/, '').split(/\s+/));
    // package.json: the package root (platform/package-root.ts); schemas/ (config/json-schema.ts);
    // installers/ (server.installersDir's default); the e-mail templates
    // (connectors/delivery/templates.ts); dist/, whose migrations/ platform/migrations.ts runs.
    for (const path of ['package.json', 'schemas', 'installers', 'config/templates', 'dist']) {
      expect(copied, path).toContain(path);
    }
    const build = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    expect(build.include).toContain('migrations');
  });

  it('needs no devDependency at run time (the image installs with --omit=dev)', () => {
    // What `npm ci --omit=dev` installs: every package of the lockfile not marked dev-only.
    const lock = JSON.parse(read('package-lock.json')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const installed = (name: string) => {
      const entry = lock.packages[`node_modules/${name}`];
      return entry !== undefined && entry.dev !== true;
    };
    const missing = [...runtimePackages(join(ROOT, 'cli/main.ts'))].filter(
      ([name]) => !installed(name),
    );
    expect(
      missing.map(([name, file]) => `${name} (imported by ${file})`),
      'move these to dependencies, or import them lazily where only a dev tool needs them',
    ).toEqual([]);
  });

  it('keeps secrets and local state out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const path of ['.git', 'node_modules', 'dist', 'var', '.env', 'deploy']) {
      expect(ignored, path).toContain(path);
    }
  });
});

/** `Key=value` lines of a unit file, every value of a key in order. */
function unitSettings(path: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const line of read(path).split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!match) continue;
    const [, key, value] = match as unknown as [string, string, string];
    settings.set(key, [...(settings.get(key) ?? []), value]);
  }
  return settings;
}

const UNITS = ['relais@.service', 'relais-worker@.service'];

describe('systemd units', () => {
  const { shutdownTimeoutMs } = deploymentSchema.parse({});

  it.each(UNITS)('%s runs a role, stops in time, and is hardened', (unit) => {
    const s = unitSettings(`deploy/systemd/${unit}`);
    const one = (key: string) => s.get(key)?.at(-1);
    expect(one('ExecStart')).toMatch(
      /\/dist\/cli\/main\.js start --role (%i|worker --ops-port %i) /,
    );
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(seconds(one('TimeoutStopSec') ?? '90s')).toBeGreaterThan(shutdownTimeoutMs / 1000);
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe(String(EXIT_USAGE));
    expect(one('User')).toBe('relais');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ReadWritePaths')).toBe('/var/lib/relais');
    expect(s.get('EnvironmentFile')).toContain('/etc/relais/relais.env');
  });

  it('relais-migrate.service runs relais migrate once', () => {
    const s = unitSettings('deploy/systemd/relais-migrate.service');
    expect(s.get('Type')).toEqual(['oneshot']);
    expect(s.get('ExecStart')?.[0]).toMatch(/\/dist\/cli\/main\.js migrate$/);
  });

  it('pass systemd-analyze verify', () => {
    const found = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
    if (!found) throw new Error('systemd-analyze is not installed: apt-get install systemd');
    const dir = mkdtempSync(join(tmpdir(), 'relais-units-'));
    views.push(dir);
    for (const unit of [...UNITS, 'relais-migrate.service']) {
      // The node of this test stands in for /usr/bin/node, which a host may have elsewhere.
      const text = read(`deploy/systemd/${unit}`).replaceAll('/usr/bin/node', process.execPath);
      writeFileSync(join(dir, unit), text);
    }
    const instances = [
      'relais@api.service',
      'relais-worker@9465.service',
      'relais-migrate.service',
    ];
    const result = spawnSync('systemd-analyze', ['verify', ...instances], {
      cwd: dir,
      encoding: 'utf8',
    });
    // verify only warns about an unknown or misspelt setting: any output is a finding.
    const findings = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.trim());
    expect(findings).toEqual([]);
    expect(result.status).toBe(0);
  });
});
