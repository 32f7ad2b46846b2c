// Configuration of `serve-gateway sim`: simulated Ray Serve clusters.
// docs/simulator.md documents the keys. Validation reports every problem with
// its key path; the serve_config of each cluster is parsed with the gateway's
// own serveConfigV2 parser so both sides agree on apps and limits.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseServeConfig } from '../config/serve-config.ts';
import type { ConfigIssue, HostPort, ServeApp } from '../config/types.ts';

/** Generic behaviour of a simulated app (import_path is not executable). */
export interface AppBehaviour {
  /** Time before the response (JSON) or the first SSE token. */
  readonly latencyMs: number;
  /** SSE frames per streamed response. */
  readonly tokens: number;
  readonly tokenIntervalMs: number;
}

export const DEFAULT_BEHAVIOUR: AppBehaviour = { latencyMs: 0, tokens: 8, tokenIntervalMs: 10 };

export interface SimClusterConfig {
  readonly name: string;
  /** One simulated Serve proxy per address (index 0 plays the head node). */
  readonly proxies: readonly HostPort[];
  readonly dashboard: HostPort | null;
  /** Apps as the gateway's parser sees them. */
  readonly apps: readonly ServeApp[];
  /** The parsed serveConfigV2 document (for the dashboard's deployment list). */
  readonly serveDoc: unknown;
  /** Serve http_options.request_timeout_s (null = none). */
  readonly requestTimeoutS: number | null;
  /** Behaviour per app name ("*" = default for the others). */
  readonly behaviour: ReadonlyMap<string, AppBehaviour>;
}

export interface SimConfig {
  readonly control: HostPort | null;
  readonly clusters: readonly SimClusterConfig[];
}

export type SimConfigResult =
  | { readonly ok: true; readonly config: SimConfig }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** Reads and validates a sim YAML file. */
export function readSimConfigFile(path: string): SimConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, issues: [{ file: path, path: '', message: `cannot read: ${(err as Error).message}` }] };
  }
  return parseSimConfig(text, { file: path, baseDir: dirname(resolve(path)) });
}

/**
 * Validates a sim config given as YAML text or a parsed object.
 * `baseDir` resolves relative serve_config file paths.
 */
export function parseSimConfig(input: string | unknown, where: { file: string; baseDir: string }): SimConfigResult {
  const { file, baseDir } = where;
  const issues: ConfigIssue[] = [];
  const issue = (path: string, message: string): void => {
    issues.push({ file, path, message });
  };
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = parseYaml(input);
    } catch (err) {
      return { ok: false, issues: [{ file, path: '', message: `not valid YAML: ${(err as Error).message.split('\n')[0]}` }] };
    }
  }
  if (!isObject(doc)) return { ok: false, issues: [{ file, path: '', message: 'must be a mapping with a "clusters" list' }] };
  for (const key of Object.keys(doc)) {
    if (key !== 'control' && key !== 'clusters') issue(key, 'unknown key');
  }
  let control: HostPort | null = null;
  if (doc['control'] !== undefined && doc['control'] !== null) control = hostPort(doc['control'], 'control', issue);
  const rawClusters = doc['clusters'];
  const clusters: SimClusterConfig[] = [];
  if (!Array.isArray(rawClusters) || rawClusters.length === 0) {
    issue('clusters', 'must be a non-empty list');
  } else {
    const names = new Set<string>();
    const used = new Map<string, string>();
    const claim = (hp: HostPort | null, path: string): void => {
      if (hp === null || hp.port === 0) return;
      const key = `${hp.host}:${hp.port}`;
      const prev = used.get(key);
      if (prev !== undefined) issue(path, `address ${key} is already used by ${prev}`);
      else used.set(key, path);
    };
    claim(control, 'control');
    rawClusters.forEach((raw, i) => {
      const c = parseCluster(raw, `clusters[${i}]`, baseDir, file, issues, issue);
      if (c === null) return;
      if (names.has(c.name)) issue(`clusters[${i}].name`, `duplicate cluster name "${c.name}"`);
      names.add(c.name);
      c.proxies.forEach((p, j) => claim(p, `clusters[${i}].proxies[${j}]`));
      claim(c.dashboard, `clusters[${i}].dashboard`);
      clusters.push(c);
    });
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, config: { control, clusters } };
}

const CLUSTER_KEYS = new Set(['name', 'proxies', 'dashboard', 'serve_config', 'request_timeout_s', 'apps']);
const BEHAVIOUR_KEYS = new Set(['latency_ms', 'tokens', 'token_interval_ms']);

function parseCluster(
  raw: unknown,
  at: string,
  baseDir: string,
  file: string,
  issues: ConfigIssue[],
  issue: (path: string, message: string) => void,
): SimClusterConfig | null {
  if (!isObject(raw)) {
    issue(at, 'must be a mapping');
    return null;
  }
  for (const key of Object.keys(raw)) if (!CLUSTER_KEYS.has(key)) issue(`${at}.${key}`, 'unknown key');
  const name = raw['name'];
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    issue(`${at}.name`, 'is required: letters, digits, ".", "_", "-"');
  }
  const proxies: HostPort[] = [];
  const rawProxies = raw['proxies'];
  if (!Array.isArray(rawProxies) || rawProxies.length === 0) issue(`${at}.proxies`, 'must be a non-empty list of "host:port"');
  else {
    rawProxies.forEach((p, j) => {
      const hp = hostPort(p, `${at}.proxies[${j}]`, issue);
      if (hp) proxies.push(hp);
    });
  }
  let dashboard: HostPort | null = null;
  if (raw['dashboard'] !== undefined && raw['dashboard'] !== null) dashboard = hostPort(raw['dashboard'], `${at}.dashboard`, issue);

  // serve_config: a file path relative to the sim YAML, or an inline mapping / YAML text.
  let serveDoc: unknown = null;
  let serveFile = file;
  const sc = raw['serve_config'];
  if (typeof sc === 'string' && !sc.includes('\n')) {
    serveFile = resolve(baseDir, sc);
    try {
      serveDoc = parseYaml(readFileSync(serveFile, 'utf8'));
    } catch (err) {
      issue(`${at}.serve_config`, `cannot load ${serveFile}: ${(err as Error).message.split('\n')[0]}`);
    }
  } else if (typeof sc === 'string') {
    try {
      serveDoc = parseYaml(sc);
    } catch (err) {
      issue(`${at}.serve_config`, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  } else if (isObject(sc)) {
    serveDoc = sc;
  } else {
    issue(`${at}.serve_config`, 'is required: a serveConfigV2 file path or an inline mapping');
  }
  let apps: ServeApp[] = [];
  if (serveDoc !== null) {
    const parsed = parseServeConfig(serveDoc, serveFile, serveFile === file ? `${at}.serve_config` : '');
    apps = parsed.apps;
    for (const i of parsed.issues) issues.push(i.path.startsWith('.') ? { ...i, path: i.path.slice(1) } : i);
  }

  let requestTimeoutS: number | null = null;
  const rt = raw['request_timeout_s'];
  if (rt !== undefined && rt !== null) {
    if (typeof rt !== 'number' || !(rt > 0)) issue(`${at}.request_timeout_s`, 'must be a number > 0 or null');
    else requestTimeoutS = rt;
  } else if (isObject(serveDoc) && isObject(serveDoc['http_options'])) {
    // Serve's own setting applies when the sim config does not override it (negative = none).
    const v = serveDoc['http_options']['request_timeout_s'];
    if (typeof v === 'number' && v > 0) requestTimeoutS = v;
  }

  const behaviour = new Map<string, AppBehaviour>();
  const rawApps = raw['apps'];
  if (rawApps !== undefined && rawApps !== null) {
    if (!isObject(rawApps)) issue(`${at}.apps`, 'must be a mapping of app name to behaviour');
    else {
      const known = new Set(apps.map((a) => a.name));
      for (const [appName, b] of Object.entries(rawApps)) {
        const bp = `${at}.apps.${appName}`;
        if (appName !== '*' && apps.length > 0 && !known.has(appName)) {
          issue(bp, `no application "${appName}" in serve_config`);
          continue;
        }
        if (!isObject(b)) {
          issue(bp, 'must be a mapping (latency_ms, tokens, token_interval_ms)');
          continue;
        }
        for (const key of Object.keys(b)) if (!BEHAVIOUR_KEYS.has(key)) issue(`${bp}.${key}`, 'unknown key');
        const base = behaviour.get('*') ?? DEFAULT_BEHAVIOUR;
        behaviour.set(appName, {
          latencyMs: nonNegInt(b['latency_ms'], base.latencyMs, `${bp}.latency_ms`, issue),
          tokens: nonNegInt(b['tokens'], base.tokens, `${bp}.tokens`, issue),
          tokenIntervalMs: nonNegInt(b['token_interval_ms'], base.tokenIntervalMs, `${bp}.token_interval_ms`, issue),
        });
      }
    }
  }
  return { name: typeof name === 'string' ? name : '', proxies, dashboard, apps, serveDoc, requestTimeoutS, behaviour };
}

function nonNegInt(v: unknown, dflt: number, path: string, issue: (path: string, message: string) => void): number {
  if (v === undefined || v === null) return dflt;
  if (!Number.isInteger(v) || (v as number) < 0) {
    issue(path, 'must be an integer >= 0');
    return dflt;
  }
  return v as number;
}

/** "host:port", "[v6]:port" or "http://host:port"; port 0 = any free port. */
export function hostPort(v: unknown, path: string, issue: (path: string, message: string) => void): HostPort | null {
  if (typeof v !== 'string') {
    issue(path, 'must be a "host:port" string');
    return null;
  }
  const s = v.startsWith('http://') ? v.slice(7).replace(/\/$/, '') : v;
  const colon = s.lastIndexOf(':');
  let host = colon > 0 ? s.slice(0, colon) : '';
  const portText = colon > 0 ? s.slice(colon + 1) : '';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(portText);
  if (host === '' || !/^\d+$/.test(portText) || port > 65535) {
    issue(path, `"${v}" is not a "host:port" address`);
    return null;
  }
  return { host, port };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
