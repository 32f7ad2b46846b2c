// serveConfigV2 (Ray Serve multi-application config) → ServeApp[].
// Only what the gateway needs is read; unknown keys are ignored because every
// Ray release adds some. Rules and defaults follow Ray Serve's schema (ray/serve/schema.py) and deployment defaults.
import { parse as parseYaml } from 'yaml';
import type { ConfigIssue, ServeApp } from './types.ts';

export const SERVE_DEFAULT_MAX_ONGOING_REQUESTS = 5;
export const SERVE_DEFAULT_MAX_QUEUED_REQUESTS = -1;

export interface ServeConfigResult {
  readonly apps: ServeApp[];
  readonly issues: ConfigIssue[];
}

/** Serve's route_prefix rule: starts with '/', no trailing '/' unless it is '/', no '{' '}'. */
export function checkRoutePrefix(prefix: string): string | null {
  if (!prefix.startsWith('/')) return `Invalid route_prefix '${prefix}', must start with a forward slash ('/').`;
  if (prefix !== '/' && prefix.endsWith('/')) return `Invalid route_prefix '${prefix}', may not end with a trailing '/'.`;
  if (prefix.includes('{') || prefix.includes('}')) return `Invalid route_prefix '${prefix}', may not contain wildcards.`;
  return null;
}

/**
 * Parses a serveConfigV2 document given as YAML/JSON text or an already parsed
 * object. `file` and `basePath` locate issues ("clusters[0].serve_config").
 */
export function parseServeConfig(
  input: string | unknown,
  file: string,
  basePath: string,
  overrides: ReadonlyMap<string, string | null> = new Map(),
): ServeConfigResult {
  const issues: ConfigIssue[] = [];
  const issue = (path: string, message: string) => issues.push({ file, path: `${basePath}${path}`, message });
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = parseYaml(input);
    } catch (err) {
      issue('', `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
      return { apps: [], issues };
    }
  }
  if (!isObject(doc)) {
    issue('', 'must be a mapping with an "applications" list');
    return { apps: [], issues };
  }
  const list = doc['applications'];
  if (!Array.isArray(list)) {
    issue('.applications', 'must be a list of applications');
    return { apps: [], issues };
  }
  const apps: ServeApp[] = [];
  const prefixes = new Map<string, string>();
  const names = new Set<string>();
  list.forEach((raw, i) => {
    const at = `.applications[${i}]`;
    if (!isObject(raw)) return issue(at, 'must be a mapping');
    const name = raw['name'];
    if (typeof name !== 'string' || name === '') return issue(`${at}.name`, 'is required (a non-empty string)');
    if (names.has(name)) return issue(`${at}.name`, `duplicate application name "${name}"`);
    names.add(name);
    let routePrefix: string | null = '/';
    if ('route_prefix' in raw) {
      const rp = raw['route_prefix'];
      if (rp === null) routePrefix = null;
      else if (typeof rp !== 'string') return issue(`${at}.route_prefix`, 'must be a string or null');
      else {
        const bad = checkRoutePrefix(rp);
        if (bad) return issue(`${at}.route_prefix`, bad);
        routePrefix = rp;
      }
    }
    if (routePrefix !== null) {
      const other = prefixes.get(routePrefix);
      if (other !== undefined) {
        return issue(`${at}.route_prefix`, `Found duplicate applications for route prefix "${routePrefix}" ("${other}" and "${name}")`);
      }
      prefixes.set(routePrefix, name);
    }
    const deployments = raw['deployments'] ?? [];
    if (!Array.isArray(deployments)) return issue(`${at}.deployments`, 'must be a list');
    const parsed: DeploymentLimits[] = [];
    deployments.forEach((d, j) => {
      const dep = parseDeployment(d, (p, m) => issue(`${at}.deployments[${j}]${p}`, m));
      if (dep) parsed.push(dep);
    });
    const wanted = overrides.get(name) ?? null;
    const ingress = chooseIngress(parsed, wanted);
    if (wanted !== null && ingress.name !== wanted) {
      issue(`${at}.deployments`, `ingress_deployment "${wanted}" is not among the app's deployments`);
    }
    apps.push({
      name,
      routePrefix,
      ingressDeployment: ingress.name,
      maxOngoingRequests: ingress.maxOngoingRequests,
      maxQueuedRequests: ingress.maxQueuedRequests,
      replicas: ingress.replicas,
      status: 'UNKNOWN',
    });
  });
  return { apps, issues };
}

export interface DeploymentLimits {
  readonly name: string;
  readonly maxOngoingRequests: number;
  readonly maxQueuedRequests: number;
  readonly replicas: number;
}

/**
 * The deployment that admission is sized from. An explicit choice wins; else
 * the last deployment listed (Serve configs list the ingress last, as KubeRay's
 * samples do); an app with no deployment overrides gets Serve's defaults.
 */
export function chooseIngress(deployments: readonly DeploymentLimits[], wanted: string | null): DeploymentLimits {
  if (wanted !== null) {
    const found = deployments.find((d) => d.name === wanted);
    if (found) return found;
  }
  const last = deployments[deployments.length - 1];
  if (last) return last;
  return {
    name: wanted ?? '(default)',
    maxOngoingRequests: SERVE_DEFAULT_MAX_ONGOING_REQUESTS,
    maxQueuedRequests: SERVE_DEFAULT_MAX_QUEUED_REQUESTS,
    replicas: 1,
  };
}

function parseDeployment(raw: unknown, issue: (path: string, message: string) => void): DeploymentLimits | null {
  if (!isObject(raw)) {
    issue('', 'must be a mapping');
    return null;
  }
  const name = raw['name'];
  if (typeof name !== 'string' || name === '') {
    issue('.name', 'is required (a non-empty string)');
    return null;
  }
  let ok = true;
  const mor = raw['max_ongoing_requests'] ?? raw['max_concurrent_queries'] ?? SERVE_DEFAULT_MAX_ONGOING_REQUESTS;
  if (!Number.isInteger(mor) || (mor as number) <= 0) {
    issue('.max_ongoing_requests', 'must be an integer > 0');
    ok = false;
  }
  const mqr = raw['max_queued_requests'] ?? SERVE_DEFAULT_MAX_QUEUED_REQUESTS;
  if (!Number.isInteger(mqr) || ((mqr as number) !== -1 && (mqr as number) < 1)) {
    issue('.max_queued_requests', 'max_queued_requests must be -1 (no limit) or a positive integer.');
    ok = false;
  }
  const replicas = configuredReplicas(raw, issue);
  if (replicas === null || !ok) return null;
  return { name, maxOngoingRequests: mor as number, maxQueuedRequests: mqr as number, replicas };
}

/**
 * Replicas known from the config alone: num_replicas, or for autoscaling the
 * replica count Serve starts with (initial_replicas, else min_replicas, at
 * least 1 so a scale-from-zero app can still admit its first request).
 */
function configuredReplicas(raw: Record<string, unknown>, issue: (path: string, message: string) => void): number | null {
  const n = raw['num_replicas'];
  const auto = raw['autoscaling_config'];
  if (auto !== undefined && auto !== null) {
    if (typeof n === 'number') {
      issue('.num_replicas', 'Manually setting num_replicas is not allowed when autoscaling_config is provided.');
      return null;
    }
    if (!isObject(auto)) {
      issue('.autoscaling_config', 'must be a mapping');
      return null;
    }
    const min = auto['min_replicas'] ?? 1;
    const initial = auto['initial_replicas'] ?? min;
    if (!Number.isInteger(initial) || (initial as number) < 0) {
      issue('.autoscaling_config', 'min_replicas / initial_replicas must be integers >= 0');
      return null;
    }
    return Math.max(1, initial as number);
  }
  if (n === undefined || n === null) return 1;
  if (n === 'auto') return 1;
  if (!Number.isInteger(n) || (n as number) < 0) {
    issue('.num_replicas', '`num_replicas` must be an int or "auto"');
    return null;
  }
  return n as number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
