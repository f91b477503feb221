/**
 * Loads the whole configuration once at start-up: `relais.yaml`, then every `isps/*.yaml`.
 * All problems of all files are collected before anything fails, so an integrator fixes a
 * config in one round trip: an invalid relais.yaml does not hide the ISP files' problems, which
 * are checked in the folder it names (or the default one) against default deployment values.
 * The result is resolved (absolute paths, derived defaults) and deep-frozen: nothing downstream
 * reads YAML, the environment or `process.env` again.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import type { TransportOptions } from '../connectors/transports/registry.js';
import { ConfigError } from '../platform/errors.js';
import { packageRoot } from '../platform/package-root.js';
import { type DeploymentSettings, deploymentSchema } from './deployment-schema.js';
import { ISP_ID_PATTERN, type IspSettings, ispSchema } from './isp-schema.js';
import {
  type ConfigProblem,
  type ConfigSource,
  type FieldPosition,
  formatProblem,
  parseYamlConfig,
} from './yaml-source.js';

export const DEFAULT_CONFIG_FILE = 'config/relais.yaml';

/** Deployment settings with every path absolute and every derived default filled in. */
export interface Deployment extends DeploymentSettings {
  readonly configFile: string;
  readonly http: DeploymentSettings['http'] & { publicUrl: string };
  readonly paths: DeploymentSettings['paths'];
  readonly signing: { keysDir: string };
  readonly server: DeploymentSettings['server'] & { url: string; installersDir: string };
}

/** One ISP's settings plus what the file name and deployment decide. */
export interface IspConfig extends IspSettings {
  readonly id: string;
  readonly file: string;
  /** Private working folder of this ISP: staging, outbox, rejects. */
  readonly workDir: string;
}

export interface RelaisConfig {
  readonly deployment: Deployment;
  readonly isps: ReadonlyMap<string, IspConfig>;
}

export interface LoadOptions {
  /** Path of relais.yaml; default RELAIS_CONFIG, else config/relais.yaml under `cwd`. */
  file?: string;
  env?: ConfigSource;
  cwd?: string;
}

export interface LoadResult {
  config?: RelaisConfig;
  problems: ConfigProblem[];
}

function display(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel.startsWith('..') || isAbsolute(rel) ? file : rel;
}

function readText(file: string, cwd: string): { text?: string; problem?: ConfigProblem } {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'file unreadable';
    return { problem: { file: display(file, cwd), line: 1, column: 1, path: '', message: reason } };
  }
}

function resolveDeployment(settings: DeploymentSettings, configFile: string): Deployment {
  const base = dirname(configFile);
  const dataDir = resolve(base, settings.paths.dataDir);
  const publicUrl = settings.http.publicUrl ?? `http://${settings.http.host}:${settings.http.port}`;
  return {
    ...settings,
    configFile,
    http: { ...settings.http, publicUrl },
    paths: { dataDir, ispConfigDir: resolve(base, settings.paths.ispConfigDir) },
    signing: { keysDir: resolve(base, settings.signing.keysDir ?? join(dataDir, 'keys')) },
    server: {
      ...settings.server,
      url: (settings.server.url ?? publicUrl).replace(/\/+$/, ''),
      installersDir: resolve(
        base,
        settings.server.installersDir ?? join(packageRoot(), 'installers'),
      ),
    },
  };
}

function resolveTransport(
  transport: TransportOptions,
  base: string,
  workDir: string,
): TransportOptions {
  switch (transport.type) {
    case 'local':
      return { ...transport, inbox: resolve(base, transport.inbox ?? join(workDir, 'inbox')) };
    case 'sftp':
      return transport.privateKeyFile
        ? { ...transport, privateKeyFile: resolve(base, transport.privateKeyFile) }
        : transport;
    case 'http':
      return transport;
  }
}

function resolveIsp(
  id: string,
  file: string,
  settings: IspSettings,
  deployment: Deployment,
): IspConfig {
  const workDir = join(deployment.paths.dataDir, 'isps', id);
  const { intake } = settings;
  return {
    ...settings,
    id,
    file,
    workDir,
    intake: {
      ...intake,
      transport: resolveTransport(intake.transport, dirname(file), workDir),
      schedule: { ...intake.schedule, timeZone: intake.schedule.timeZone ?? settings.timeZone },
    },
  };
}

/** Loads and validates one ISP file; used for installed ISPs and for `--isp-config` drafts. */
export function loadIspFile(
  file: string,
  deployment: Deployment,
  options: { env?: ConfigSource; cwd?: string } = {},
): { isp?: IspConfig; problems: ConfigProblem[] } {
  const cwd = options.cwd ?? process.cwd();
  const absolute = resolve(cwd, file);
  const id = basename(absolute, extname(absolute));
  const shown = display(absolute, cwd);
  if (!ISP_ID_PATTERN.test(id)) {
    const message = `the file name is the ISP id and must match ${ISP_ID_PATTERN.source} (got "${id}")`;
    return { problems: [{ file: shown, line: 1, column: 1, path: '', message }] };
  }
  const { text, problem } = readText(absolute, cwd);
  if (problem) return { problems: [problem] };
  const parsed = parseYamlConfig(text as string, shown, ispSchema, options.env ?? process.env);
  if (!parsed.value) return { problems: parsed.problems };
  return { isp: deepFreeze(resolveIsp(id, absolute, parsed.value, deployment)), problems: [] };
}

const ISP_CONFIG_DIR: readonly string[] = ['paths', 'ispConfigDir'];

/**
 * The ISP files of the folder, or why there are none to read. A missing folder is a problem, not
 * zero ISPs: a typo in `paths.ispConfigDir` must not start a deployment that serves nobody.
 */
function listIspFiles(dir: string): { files: string[]; reason?: string } {
  try {
    const names = readdirSync(dir).filter((name) => /\.ya?ml$/.test(name));
    return { files: names.sort().map((name) => join(dir, name)) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT' ? 'not found' : code === 'ENOTDIR' ? 'is not a folder' : 'unreadable';
    return { files: [], reason };
  }
}

function ispDirProblem(
  dir: string,
  reason: string,
  where: FieldPosition,
  file: string,
  cwd: string,
): ConfigProblem {
  const folder = `ISP config folder ${display(dir, cwd)} ${reason}`;
  const message = where.isSet
    ? folder
    : `${folder} (the default; create it or set paths.ispConfigDir)`;
  const { line, column } = where;
  return { file: display(file, cwd), line, column, path: ISP_CONFIG_DIR.join('.'), message };
}

/** `paths.ispConfigDir` as written in a relais.yaml that failed validation, if it is a path. */
function rawIspConfigDir(raw: unknown): string | undefined {
  const dir = (raw as { paths?: { ispConfigDir?: unknown } } | undefined)?.paths?.ispConfigDir;
  return typeof dir === 'string' && dir !== '' ? dir : undefined;
}

/**
 * Deployment values to check ISP files against when relais.yaml is invalid: its ISP folder when
 * that setting at least is a path, every other value at its default.
 */
function fallbackSettings(ispConfigDir: string | undefined): DeploymentSettings {
  return deploymentSchema.parse(ispConfigDir ? { paths: { ispConfigDir } } : {});
}

export function defaultConfigFile(env: ConfigSource, cwd: string): string {
  return resolve(cwd, env.RELAIS_CONFIG || DEFAULT_CONFIG_FILE);
}

/** Loads relais.yaml and every ISP file; returns all problems instead of throwing. */
export function loadConfig(options: LoadOptions = {}): LoadResult {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = options.file ? resolve(cwd, options.file) : defaultConfigFile(env, cwd);

  const { text, problem } = readText(file, cwd);
  if (problem) return { problems: [problem] };
  const parsed = parseYamlConfig(text as string, display(file, cwd), deploymentSchema, env);
  const rawDir = parsed.value ? undefined : rawIspConfigDir(parsed.raw);
  const deployment = deepFreeze(resolveDeployment(parsed.value ?? fallbackSettings(rawDir), file));

  const problems: ConfigProblem[] = [...parsed.problems];
  const isps = new Map<string, IspConfig>();
  const { files, reason } = listIspFiles(deployment.paths.ispConfigDir);
  const where = parsed.locate(ISP_CONFIG_DIR);
  // A folder setting that is not a path is reported already; the default folder only stood in.
  const standsIn = !parsed.value && where.isSet && rawDir === undefined;
  if (reason && !standsIn) {
    problems.push(ispDirProblem(deployment.paths.ispConfigDir, reason, where, file, cwd));
  }
  for (const ispFile of files) {
    const result = loadIspFile(ispFile, deployment, { env, cwd });
    problems.push(...result.problems);
    if (result.isp) isps.set(result.isp.id, result.isp);
  }
  if (problems.length > 0) return { problems };
  return { config: Object.freeze({ deployment, isps }), problems };
}

/** Loads the config or throws one ConfigError listing every problem; for start-up paths. */
export function loadConfigOrThrow(options: LoadOptions = {}): RelaisConfig {
  const { config, problems } = loadConfig(options);
  if (config) return config;
  throw configProblemsError(problems);
}

export function configProblemsError(problems: ConfigProblem[]): ConfigError {
  const lines = problems.map(formatProblem).join('\n');
  const code = problems.some((p) => p.message === 'file not found')
    ? 'CONFIG_NOT_FOUND'
    : 'CONFIG_INVALID';
  return new ConfigError(code, `configuration has ${problems.length} problem(s):\n${lines}`, {
    problems,
  });
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
