// Validation of the gateway YAML (already parsed) into the normalised
// GatewayConfig of types.ts. The whole document is checked and every problem
// is reported with the file and key path; unknown keys are errors so that a
// typo never passes silently. docs/configuration.md lists every key.
import { readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { parseServeConfig } from './serve-config.ts';
import { usableCpus } from './cpus.ts';
import { CLUSTER_ROLES } from './types.ts';
import type {
  AccessLogConfig,
  AdmissionConfig,
  AppPolicy,
  ClusterConfig,
  ConfigIssue,
  ConfigResult,
  GatewayConfig,
  HealthConfig,
  HostPort,
  RetryConfig,
  RolloutPolicy,
  KubernetesConfig,
  ServerConfig,
  StickyConfig,
  UpstreamClientKind,
  HttpParserKind,
  ServerEngineKind,
  UpstreamConfig,
} from './types.ts';

export const DEFAULT_ADMIN_TOKEN_ENV = 'SERVE_GATEWAY_ADMIN_TOKEN';

export const DEFAULT_ROLLOUT: RolloutPolicy = {
  steps: [5, 25, 50, 100],
  intervalMs: 30_000,
  maxErrorRate: 0.02,
  maxP99LatencyMs: 5_000,
  maxTtfbP99Ms: null,
  minRequests: 50,
  onFailure: 'rollback',
};

/** Upper bounds of a rollout policy; control/rollout.ts has the same numbers for the admin API. */
export const ROLLOUT_LIMITS = { maxIntervalMs: 86_400_000, maxLatencyMs: 3_600_000, maxMinRequests: 1_000_000 } as const;

export const DEFAULT_APP_POLICY: AppPolicy = {
  weights: null,
  sticky: null,
  rollout: DEFAULT_ROLLOUT,
  spillover: false,
  ingressDeployment: null,
};

export const DEFAULT_ADMISSION: AdmissionConfig = { queueSize: 100, queueTimeoutMs: 30_000, gatewayReplicas: 1 };

export const DEFAULT_UPSTREAM: UpstreamConfig = {
  connectTimeoutMs: 5_000,
  // Long enough for a non-streamed LLM answer (headers come when generation is
  // done) and for long gaps in a stream; short enough that a hung replica
  // cannot hold an admission slot forever. Idle gaps, never a total limit.
  headersTimeoutMs: 300_000,
  bodyTimeoutMs: 300_000,
  idleTimeoutMs: 4_000,
  maxConnectionsPerEndpoint: 0,
  bufferBodyBytes: 65_536,
  client: 'lean',
  parser: 'wasm',
};

export const DEFAULT_HEALTH: HealthConfig = {
  probeIntervalMs: 2_000,
  probeTimeoutMs: 1_000,
  ejectAfterFailures: 3,
  ejectBaseMs: 5_000,
  ejectMaxMs: 60_000,
};

export const DEFAULT_RETRY: RetryConfig = { maxAttempts: 3, budgetRatio: 0.2, minRetryConcurrency: 3 };

export const DEFAULT_SERVER: ServerConfig = {
  maxConnections: defaultMaxConnections(),
  requestHeaderTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 75_000,
  writeTimeoutMs: 60_000,
  engine: 'lean',
  parser: 'wasm',
};

/**
 * Default `server.max_connections`: half the file descriptors left after a
 * reserve of 256 for the admin listener, upstream probes and files (each
 * client connection needs up to one upstream socket too), at most 16384.
 * Reads the soft RLIMIT_NOFILE from /proc (Linux); 4096 elsewhere.
 */
export function defaultMaxConnections(limitsText: string | null = readProcLimits()): number {
  const m = limitsText === null ? null : /^Max open files\s+(\d+|unlimited)/m.exec(limitsText);
  if (m === null) return 4096;
  const soft = m[1] === 'unlimited' ? Infinity : Number(m[1]);
  return Math.max(64, Math.min(16_384, Math.floor((soft - 256) / 2)));
}

function readProcLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

export const DEFAULT_ACCESS_LOG: AccessLogConfig = { sampleRate: 1 };

/** Serve's keep_alive_timeout_s default in recent Ray; pooled connections must close before it. */
const MAX_IDLE_TIMEOUT_MS = 90_000;

const TOP_KEYS = [
  'listen',
  'admin',
  'source',
  'state_dir',
  'clusters',
  'applications',
  'admission',
  'upstream',
  'health',
  'retry',
  'access_log',
  'headers',
  'dashboard_poll_interval',
  'shutdown',
  'server',
  'workers',
  'kubernetes',
] as const;

/**
 * Validates a parsed gateway config document. `file` names the file in issues;
 * `baseDir` resolves relative paths (state_dir, serve_config files); `readFile`
 * reads serve_config files (throws on failure). `stateBase` (from
 * SERVE_GATEWAY_STATE_DIR, state-dir.ts), when given, replaces `baseDir` for the
 * state paths (state_dir, kubernetes.last_known_good) and is the default state_dir.
 */
export function validateConfig(
  doc: unknown,
  file: string,
  baseDir: string,
  readFile: (p: string) => string,
  stateBase: string | null = null,
): ConfigResult {
  const v = new Checker(file);
  if (doc === null || doc === undefined) {
    v.issue('', 'the config is empty (expected a mapping with at least "clusters")');
    return { ok: false, issues: v.issues };
  }
  if (!isObject(doc)) {
    v.issue('', 'must be a mapping');
    return { ok: false, issues: v.issues };
  }
  v.unknownKeys(doc, '', TOP_KEYS);

  const listen = v.hostPort(doc['listen'], 'listen', '0.0.0.0:8000');

  const adminRaw = v.section(doc, 'admin', ['listen', 'token_env', 'allowed_hosts']);
  const allowedHosts = parseAllowedHosts(v, adminRaw['allowed_hosts'], 'admin.allowed_hosts');
  const admin = {
    listen: v.hostPort(adminRaw['listen'], 'admin.listen', '127.0.0.1:9901'),
    tokenEnv: v.envName(adminRaw['token_env'], 'admin.token_env', DEFAULT_ADMIN_TOKEN_ENV),
    ...(allowedHosts.length > 0 ? { allowedHosts } : {}),
  };

  let source: 'file' | 'kubernetes' = 'file';
  const src = doc['source'];
  if (src !== undefined && src !== null) {
    if (src === 'file') source = 'file';
    else if (src === 'kubernetes') source = 'kubernetes';
    else v.issue('source', `must be "file" or "kubernetes" (got ${show(src)})`);
  }

  const stateBaseDir = stateBase ?? baseDir;
  let stateDir = stateBase ?? resolve(baseDir, 'var');
  const sd = doc['state_dir'];
  if (sd !== undefined && sd !== null) {
    if (typeof sd !== 'string' || sd === '') v.issue('state_dir', 'must be a non-empty path');
    else stateDir = resolve(stateBaseDir, sd);
  }

  const admission = parseAdmission(v, v.section(doc, 'admission', ['queue_size', 'queue_timeout', 'gateway_replicas']));
  const upstream = parseUpstream(
    v,
    v.section(doc, 'upstream', [
      'connect_timeout',
      'headers_timeout',
      'body_timeout',
      'idle_timeout',
      'max_connections_per_endpoint',
      'buffer_body_bytes',
      'client',
      'parser',
    ]),
  );
  const health = parseHealth(
    v,
    v.section(doc, 'health', ['probe_interval', 'probe_timeout', 'eject_after_failures', 'eject_base', 'eject_max']),
  );
  const retryRaw = v.section(doc, 'retry', ['max_attempts', 'budget_ratio', 'min_retry_concurrency']);
  const retry: RetryConfig = {
    maxAttempts: v.int(retryRaw['max_attempts'], 'retry.max_attempts', DEFAULT_RETRY.maxAttempts, 1),
    budgetRatio: v.number(retryRaw['budget_ratio'], 'retry.budget_ratio', DEFAULT_RETRY.budgetRatio, 0, 1),
    minRetryConcurrency: v.int(
      retryRaw['min_retry_concurrency'],
      'retry.min_retry_concurrency',
      DEFAULT_RETRY.minRetryConcurrency,
      0,
    ),
  };
  const alRaw = v.section(doc, 'access_log', ['sample_rate']);
  const accessLog: AccessLogConfig = {
    sampleRate: v.number(alRaw['sample_rate'], 'access_log.sample_rate', DEFAULT_ACCESS_LOG.sampleRate, 0, 1),
  };
  const hdrRaw = v.section(doc, 'headers', ['serve_cluster']);
  const serveClusterHeader = v.bool(hdrRaw['serve_cluster'], 'headers.serve_cluster', true);
  const dashboardPollMs = v.duration(doc['dashboard_poll_interval'], 'dashboard_poll_interval', 2_000, {
    positive: true,
  });
  const sdRaw = v.section(doc, 'shutdown', ['drain_delay', 'grace_period']);
  const shutdown = {
    drainDelayMs: v.duration(sdRaw['drain_delay'], 'shutdown.drain_delay', 1_000),
    gracePeriodMs: v.duration(sdRaw['grace_period'], 'shutdown.grace_period', 30_000),
  };
  const server = parseServer(
    v,
    v.section(doc, 'server', ['max_connections', 'request_header_timeout', 'request_timeout', 'idle_timeout', 'write_timeout', 'engine', 'parser']),
  );
  const workers = parseWorkers(v, doc['workers']);

  // Cluster names first: applications refer to them, and serve_config parsing
  // needs the ingress overrides from applications.
  // In kubernetes mode clusters are discovered; weights name them by role.
  const clustersRaw = doc['clusters'];
  const kubernetes = source === 'kubernetes' ? parseKubernetes(v, doc['kubernetes'], stateDir, baseDir, stateBaseDir) : null;
  if (kubernetes !== null && isObject(doc['admission']) && doc['admission']['gateway_replicas'] !== undefined && doc['admission']['gateway_replicas'] !== null) {
    v.issue(
      'admission.gateway_replicas',
      kubernetes.leaderLease !== null
        ? 'is counted, not set, with kubernetes.leader_lease: each replica divides the capacity by the live replicas (their member Leases); remove it'
        : 'is counted, not set, in kubernetes mode: give kubernetes.state_configmap and kubernetes.leader_lease for several replicas (they count each other), or run one replica; remove it',
    );
  }
  if (source !== 'kubernetes' && doc['kubernetes'] !== undefined && doc['kubernetes'] !== null) {
    v.issue('kubernetes', 'is only read with source: kubernetes');
  }
  if (source === 'kubernetes' && clustersRaw !== undefined && clustersRaw !== null) {
    v.issue('clusters', 'must be left out with source: kubernetes (clusters are discovered from the RayServices)');
  }
  const clusterNames = source === 'kubernetes' ? new Set<string>(CLUSTER_ROLES) : collectClusterNames(clustersRaw);
  const { defaults, applications } = parseApplications(v, doc['applications'], clusterNames);
  const overrides = new Map<string, string | null>();
  for (const [name, policy] of applications) {
    if (policy.ingressDeployment !== null) overrides.set(name, policy.ingressDeployment);
  }
  const clusters = source === 'kubernetes' ? [] : parseClusters(v, clustersRaw, overrides, baseDir, readFile);

  if (v.issues.length > 0) return { ok: false, issues: v.issues };
  const config: GatewayConfig = {
    listen,
    admin,
    source,
    kubernetes,
    stateDir,
    clusters,
    applications,
    defaults,
    admission,
    upstream,
    health,
    retry,
    accessLog,
    serveClusterHeader,
    dashboardPollMs,
    shutdown,
    server,
    workers,
  };
  return { ok: true, config };
}

/** Most data-plane threads `workers` may ask for. */
export const MAX_WORKERS = 64;

/**
 * `workers: auto | N`: data-plane threads sharing the listen port (default 1).
 * `auto` is one per CPU the process may use (cpus.ts: the affinity mask, capped by a cgroup CPU limit).
 */
function parseWorkers(v: Checker, raw: unknown): number {
  if (raw === undefined || raw === null) return 1;
  if (raw === 'auto') return Math.min(MAX_WORKERS, usableCpus());
  if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 1 && raw <= MAX_WORKERS) return raw;
  v.issue('workers', `must be "auto" or a whole number from 1 to ${MAX_WORKERS}, got ${JSON.stringify(raw)}`);
  return 1;
}

/** Parses "30s", "500ms", "2m", "1h" or a number of seconds into milliseconds; null if malformed. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) return null;
    return Math.round(value * 1000);
  }
  if (typeof value !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = m[2];
  if (unit === undefined) return n === 0 ? 0 : null; // a bare string must carry a unit (except "0")
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
}

/** Parses "host:port" ("[::1]:8000" for IPv6). */
export function parseHostPort(value: string): HostPort | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65_535) return null;
  const host = m[1] ?? m[2];
  if (host === undefined || host === '') return null;
  return { host, port };
}

/** Normalises an http origin ("http://host:port", explicit port, no path); null if not one. */
export function parseOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:') return null;
  if (url.hostname === '' || url.username !== '' || url.password !== '') return null;
  if (url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '')) return null;
  // URL drops the default port; require it to be written out (Serve listens on 8000).
  if (url.port === '' && !/:\d+\/?$/.test(value)) return null;
  return url.origin;
}

// ---------------------------------------------------------------------------

class Checker {
  readonly issues: ConfigIssue[] = [];
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  issue(path: string, message: string): void {
    this.issues.push({ file: this.file, path, message });
  }

  unknownKeys(obj: Record<string, unknown>, at: string, known: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) {
        const hint = closest(key, known);
        this.issue(join(at, key), `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`);
      }
    }
  }

  /** A nested mapping; absent or null → {}; anything else is reported and treated as {}. */
  section(parent: Record<string, unknown>, key: string, known: readonly string[], at = ''): Record<string, unknown> {
    const path = join(at, key);
    const raw = parent[key];
    if (raw === undefined || raw === null) return {};
    if (!isObject(raw)) {
      this.issue(path, 'must be a mapping');
      return {};
    }
    this.unknownKeys(raw, path, known);
    return raw;
  }

  hostPort(raw: unknown, path: string, dflt: string): HostPort {
    const fallback = parseHostPort(dflt) as HostPort;
    if (raw === undefined || raw === null) return fallback;
    const hp = typeof raw === 'string' ? parseHostPort(raw) : null;
    if (!hp) {
      this.issue(path, `must be "host:port" (got ${show(raw)})`);
      return fallback;
    }
    return hp;
  }

  envName(raw: unknown, path: string, dflt: string): string {
    if (raw === undefined || raw === null) return dflt;
    if (typeof raw !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(raw)) {
      this.issue(path, `must be an environment variable name (got ${show(raw)})`);
      return dflt;
    }
    return raw;
  }

  duration(raw: unknown, path: string, dflt: number, opts: { positive?: boolean; max?: number } = {}): number {
    if (raw === undefined || raw === null) return dflt;
    const ms = parseDuration(raw);
    if (ms === null) {
      this.issue(path, `must be a duration like "500ms", "30s", "2m" or a number of seconds (got ${show(raw)})`);
      return dflt;
    }
    if (opts.positive && ms <= 0) {
      this.issue(path, 'must be greater than 0');
      return dflt;
    }
    if (opts.max !== undefined && ms >= opts.max) {
      this.issue(path, `must be less than ${opts.max / 1000}s (got ${show(raw)})`);
      return dflt;
    }
    return ms;
  }

  int(raw: unknown, path: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (raw === undefined || raw === null) return dflt;
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
      this.issue(path, `must be an integer ${range} (got ${show(raw)})`);
      return dflt;
    }
    return raw;
  }

  number(raw: unknown, path: string, dflt: number, min: number, max: number): number {
    if (raw === undefined || raw === null) return dflt;
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < min || raw > max) {
      this.issue(path, `must be a number in ${min}..${max} (got ${show(raw)})`);
      return dflt;
    }
    return raw;
  }

  bool(raw: unknown, path: string, dflt: boolean): boolean {
    if (raw === undefined || raw === null) return dflt;
    if (typeof raw !== 'boolean') {
      this.issue(path, `must be true or false (got ${show(raw)})`);
      return dflt;
    }
    return raw;
  }
}

function parseAdmission(v: Checker, raw: Record<string, unknown>): AdmissionConfig {
  return {
    queueSize: v.int(raw['queue_size'], 'admission.queue_size', DEFAULT_ADMISSION.queueSize, 0),
    queueTimeoutMs: v.duration(raw['queue_timeout'], 'admission.queue_timeout', DEFAULT_ADMISSION.queueTimeoutMs),
    gatewayReplicas: v.int(
      raw['gateway_replicas'],
      'admission.gateway_replicas',
      DEFAULT_ADMISSION.gatewayReplicas,
      1,
    ),
  };
}

function parseUpstream(v: Checker, raw: Record<string, unknown>): UpstreamConfig {
  const d = DEFAULT_UPSTREAM;
  return {
    connectTimeoutMs: v.duration(raw['connect_timeout'], 'upstream.connect_timeout', d.connectTimeoutMs, {
      positive: true,
    }),
    headersTimeoutMs: v.duration(raw['headers_timeout'], 'upstream.headers_timeout', d.headersTimeoutMs),
    bodyTimeoutMs: v.duration(raw['body_timeout'], 'upstream.body_timeout', d.bodyTimeoutMs),
    idleTimeoutMs: v.duration(raw['idle_timeout'], 'upstream.idle_timeout', d.idleTimeoutMs, {
      positive: true,
      max: MAX_IDLE_TIMEOUT_MS,
    }),
    maxConnectionsPerEndpoint: v.int(
      raw['max_connections_per_endpoint'],
      'upstream.max_connections_per_endpoint',
      d.maxConnectionsPerEndpoint,
      0,
    ),
    bufferBodyBytes: v.int(raw['buffer_body_bytes'], 'upstream.buffer_body_bytes', d.bufferBodyBytes, 0),
    client: parseUpstreamClient(v, raw['client'], d.client),
    parser: parseHttpParser(v, raw['parser'], 'upstream.parser', d.parser),
  };
}

function parseHttpParser(v: Checker, raw: unknown, path: string, dflt: HttpParserKind): HttpParserKind {
  if (raw === undefined || raw === null) return dflt;
  if (raw === 'wasm' || raw === 'native') return raw;
  v.issue(path, `must be wasm or native (got ${JSON.stringify(raw)})`);
  return dflt;
}

function parseUpstreamClient(v: Checker, raw: unknown, dflt: UpstreamClientKind): UpstreamClientKind {
  if (raw === undefined || raw === null) return dflt;
  if (raw === 'undici' || raw === 'lean') return raw;
  v.issue('upstream.client', `must be undici or lean (got ${JSON.stringify(raw)})`);
  return dflt;
}

const KUBERNETES_KEYS = ['namespace', 'rayservices', 'selector', 'kubeconfig', 'upgrade', 'last_known_good', 'boot_wait', 'state_configmap', 'leader_lease', 'lease_duration', 'gateway_api'] as const;
const GATEWAY_API_KEYS = ['enabled', 'controller_name', 'service'] as const;
/** GatewayClass spec.controllerName this gateway serves by default (SPEC §11). */
export const DEFAULT_GATEWAY_CONTROLLER = 'serve-gateway.io/gateway-controller';
// Gateway API's ControllerName: a domain-prefixed path (gatewayclass_types.go).
const CONTROLLER_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$/;
const K8S_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_SELECTOR_RE = /^[A-Za-z0-9._\/-]+(\s*(=|==|!=)\s*[A-Za-z0-9._-]*)?(\s*,\s*[A-Za-z0-9._\/-]+(\s*(=|==|!=)\s*[A-Za-z0-9._-]*)?)*$/;

/** The pod's own namespace when running in a cluster, else "default". */
function podNamespace(): string {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

function parseKubernetes(v: Checker, raw: unknown, stateDir: string, baseDir: string, stateBaseDir: string): KubernetesConfig {
  const k = isObject(raw) ? raw : {};
  if (raw === undefined || raw === null) v.issue('kubernetes', 'is required with source: kubernetes (at least rayservices or selector)');
  else if (!isObject(raw)) v.issue('kubernetes', 'must be a mapping');
  else v.unknownKeys(raw, 'kubernetes', KUBERNETES_KEYS);
  // Several replicas: shared traffic state in a ConfigMap, a leader Lease, a member Lease each.
  const names: Record<'state_configmap' | 'leader_lease', string | null> = { state_configmap: null, leader_lease: null };
  for (const key of ['state_configmap', 'leader_lease'] as const) {
    const n = k[key];
    if (n === undefined || n === null) continue;
    if (typeof n !== 'string' || !K8S_NAME_RE.test(n) || n.length > 200) v.issue(`kubernetes.${key}`, `must be an object name: lowercase letters, digits and "-" (got ${show(n)})`);
    else names[key] = n;
  }
  const given = (key: string): boolean => k[key] !== undefined && k[key] !== null;
  for (const [key, other] of [['state_configmap', 'leader_lease'], ['leader_lease', 'state_configmap']] as const) {
    if (given(other) && !given(key)) {
      v.issue(`kubernetes.${key}`, `is required with kubernetes.${other}: replicas share their traffic state (state_configmap) and one of them, the leader_lease holder, drives rollouts`);
    }
  }
  const leaseDurationMs = v.duration(k['lease_duration'], 'kubernetes.lease_duration', 15_000, { positive: true, max: 600_000 });
  if (leaseDurationMs < 1_000) v.issue('kubernetes.lease_duration', 'must be at least 1s');
  let namespace = podNamespace();
  if (k['namespace'] !== undefined && k['namespace'] !== null) {
    if (typeof k['namespace'] !== 'string' || !K8S_NAME_RE.test(k['namespace']) || k['namespace'].length > 63) v.issue('kubernetes.namespace', `must be a namespace name (got ${show(k['namespace'])})`);
    else namespace = k['namespace'];
  }
  let rayservices: string[] | null = null;
  const rs = k['rayservices'];
  if (rs !== undefined && rs !== null) {
    if (!Array.isArray(rs) || rs.length === 0) v.issue('kubernetes.rayservices', 'must be a non-empty list of RayService names');
    else {
      rayservices = [];
      rs.forEach((n, i) => {
        if (typeof n !== 'string' || !K8S_NAME_RE.test(n) || n.length > 63) v.issue(`kubernetes.rayservices[${i}]`, `must be a RayService name (got ${show(n)})`);
        else rayservices!.push(n);
      });
    }
  }
  let selector: string | null = null;
  const sel = k['selector'];
  if (sel !== undefined && sel !== null) {
    if (typeof sel !== 'string' || !LABEL_SELECTOR_RE.test(sel.trim())) v.issue('kubernetes.selector', `must be an equality label selector like "team=llm" (got ${show(sel)})`);
    else selector = sel.trim();
  }
  if (isObject(raw) && rayservices === null && selector === null && rs === undefined && sel === undefined) v.issue('kubernetes', 'needs rayservices (names) or selector (labels)');
  if (rayservices !== null && selector !== null) v.issue('kubernetes.selector', 'give rayservices or selector, not both');
  let kubeconfig: string | null = null;
  if (k['kubeconfig'] !== undefined && k['kubeconfig'] !== null) {
    if (typeof k['kubeconfig'] !== 'string' || k['kubeconfig'] === '') v.issue('kubernetes.kubeconfig', 'must be a file path');
    else kubeconfig = resolve(baseDir, k['kubeconfig']);
  }
  let upgrade: KubernetesConfig['upgrade'] = 'follow';
  const up = k['upgrade'];
  if (up !== undefined && up !== null) {
    if (up === 'follow' || up === 'rollout' || up === 'hold') upgrade = up;
    else v.issue('kubernetes.upgrade', `must be follow, rollout or hold (got ${show(up)})`);
  }
  let lastKnownGood = resolve(stateDir, 'last-known-good.json');
  const lkg = k['last_known_good'];
  if (lkg !== undefined && lkg !== null) {
    if (typeof lkg !== 'string' || lkg === '') v.issue('kubernetes.last_known_good', 'must be a file path');
    else lastKnownGood = resolve(stateBaseDir, lkg);
  }
  const bootWaitMs = v.duration(k['boot_wait'], 'kubernetes.boot_wait', 1_000, { positive: true, max: 600_000 });
  const gatewayApi = parseGatewayApi(v, k['gateway_api']);
  return { namespace, rayservices, selector, kubeconfig, upgrade, lastKnownGood, bootWaitMs, stateConfigMap: names.state_configmap, leaderLease: names.leader_lease, leaseDurationMs, gatewayApi };
}

function parseGatewayApi(v: Checker, raw: unknown): KubernetesConfig['gatewayApi'] {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) {
    v.issue('kubernetes.gateway_api', 'must be a mapping');
    return null;
  }
  v.unknownKeys(raw, 'kubernetes.gateway_api', GATEWAY_API_KEYS);
  const enabled = v.bool(raw['enabled'], 'kubernetes.gateway_api.enabled', true);
  let controllerName = DEFAULT_GATEWAY_CONTROLLER;
  const cn = raw['controller_name'];
  if (cn !== undefined && cn !== null) {
    if (typeof cn !== 'string' || cn.length > 253 || !CONTROLLER_NAME_RE.test(cn)) {
      v.issue('kubernetes.gateway_api.controller_name', `must be a domain-prefixed path like "${DEFAULT_GATEWAY_CONTROLLER}" (got ${show(cn)})`);
    } else controllerName = cn;
  }
  let service: string | null = null;
  const svc = raw['service'];
  if (svc !== undefined && svc !== null) {
    if (typeof svc !== 'string' || !K8S_NAME_RE.test(svc) || svc.length > 63) v.issue('kubernetes.gateway_api.service', `must be the name of the gateway's own Service (got ${show(svc)})`);
    else service = svc;
  }
  return enabled ? { controllerName, service } : null;
}

function parseServerEngine(v: Checker, raw: unknown, dflt: ServerEngineKind): ServerEngineKind {
  if (raw === undefined || raw === null) return dflt;
  if (raw === 'node' || raw === 'lean') return raw;
  v.issue('server.engine', `must be node or lean (got ${JSON.stringify(raw)})`);
  return dflt;
}

function parseServer(v: Checker, raw: Record<string, unknown>): ServerConfig {
  const d = DEFAULT_SERVER;
  const server: ServerConfig = {
    maxConnections: v.int(raw['max_connections'], 'server.max_connections', d.maxConnections, 1),
    requestHeaderTimeoutMs: v.duration(raw['request_header_timeout'], 'server.request_header_timeout', d.requestHeaderTimeoutMs, {
      positive: true,
      max: 600_000,
    }),
    requestTimeoutMs: v.duration(raw['request_timeout'], 'server.request_timeout', d.requestTimeoutMs, { max: 3_600_000 }),
    idleTimeoutMs: v.duration(raw['idle_timeout'], 'server.idle_timeout', d.idleTimeoutMs, { positive: true, max: 3_600_000 }),
    writeTimeoutMs: v.duration(raw['write_timeout'], 'server.write_timeout', d.writeTimeoutMs, { max: 3_600_000 }),
    engine: parseServerEngine(v, raw['engine'], d.engine),
    parser: parseHttpParser(v, raw['parser'], 'server.parser', d.parser),
  };
  if (server.requestTimeoutMs > 0 && server.requestHeaderTimeoutMs > server.requestTimeoutMs) {
    v.issue('server.request_header_timeout', `must not exceed server.request_timeout (${server.requestTimeoutMs / 1000}s); the headers are part of the request`);
  }
  return server;
}

function parseHealth(v: Checker, raw: Record<string, unknown>): HealthConfig {
  const d = DEFAULT_HEALTH;
  const h: HealthConfig = {
    probeIntervalMs: v.duration(raw['probe_interval'], 'health.probe_interval', d.probeIntervalMs, { positive: true }),
    probeTimeoutMs: v.duration(raw['probe_timeout'], 'health.probe_timeout', d.probeTimeoutMs, { positive: true }),
    ejectAfterFailures: v.int(raw['eject_after_failures'], 'health.eject_after_failures', d.ejectAfterFailures, 1),
    ejectBaseMs: v.duration(raw['eject_base'], 'health.eject_base', d.ejectBaseMs, { positive: true }),
    ejectMaxMs: v.duration(raw['eject_max'], 'health.eject_max', d.ejectMaxMs, { positive: true }),
  };
  if (h.ejectMaxMs < h.ejectBaseMs) v.issue('health.eject_max', 'must be >= health.eject_base');
  return h;
}

function collectClusterNames(raw: unknown): Set<string> {
  const names = new Set<string>();
  if (!Array.isArray(raw)) return names;
  for (const c of raw) {
    if (isObject(c) && typeof c['name'] === 'string') names.add(c['name']);
  }
  return names;
}

const CLUSTER_KEYS = ['name', 'endpoints', 'dashboard', 'serve_config'] as const;
const CLUSTER_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function parseClusters(
  v: Checker,
  raw: unknown,
  overrides: ReadonlyMap<string, string | null>,
  baseDir: string,
  readFile: (p: string) => string,
): ClusterConfig[] {
  if (raw === undefined || raw === null) {
    v.issue('clusters', 'at least one cluster is required');
    return [];
  }
  if (!Array.isArray(raw)) {
    v.issue('clusters', 'must be a list of clusters');
    return [];
  }
  if (raw.length === 0) v.issue('clusters', 'at least one cluster is required');
  const clusters: ClusterConfig[] = [];
  const seenNames = new Set<string>();
  const seenEndpoints = new Map<string, string>();
  raw.forEach((c, i) => {
    const at = `clusters[${i}]`;
    if (!isObject(c)) {
      v.issue(at, 'must be a mapping with name and endpoints');
      return;
    }
    v.unknownKeys(c, at, CLUSTER_KEYS);
    const name = c['name'];
    let okName = '';
    if (typeof name !== 'string' || name === '') v.issue(`${at}.name`, 'is required (a non-empty string)');
    else if (name.length > 63 || !CLUSTER_NAME_RE.test(name)) {
      v.issue(`${at}.name`, `must be a DNS label: lower-case letters, digits and "-", at most 63 (got "${name}")`);
    } else if (seenNames.has(name)) v.issue(`${at}.name`, `duplicate cluster name "${name}"`);
    else {
      seenNames.add(name);
      okName = name;
    }

    const endpoints: string[] = [];
    const eps = c['endpoints'];
    if (!Array.isArray(eps) || eps.length === 0) {
      v.issue(`${at}.endpoints`, 'must be a non-empty list of http://host:port origins');
    } else {
      eps.forEach((e, j) => {
        const origin = typeof e === 'string' ? parseOrigin(e) : null;
        if (origin === null) {
          v.issue(`${at}.endpoints[${j}]`, `must be an http:// URL with host and port (got ${show(e)})`);
          return;
        }
        if (endpoints.includes(origin)) {
          v.issue(`${at}.endpoints[${j}]`, `duplicate endpoint ${origin}`);
          return;
        }
        const other = seenEndpoints.get(origin);
        if (other !== undefined) v.issue(`${at}.endpoints[${j}]`, `${origin} is already an endpoint of cluster "${other}"`);
        seenEndpoints.set(origin, okName || at);
        endpoints.push(origin);
      });
    }

    let dashboard: string | null = null;
    const dash = c['dashboard'];
    if (dash !== undefined && dash !== null) {
      dashboard = typeof dash === 'string' ? parseOrigin(dash) : null;
      if (dashboard === null) v.issue(`${at}.dashboard`, `must be an http:// URL with host and port (got ${show(dash)})`);
    }

    let serveApps: ClusterConfig['serveApps'] = null;
    let serveConfigFile: string | null = null;
    const sc = c['serve_config'];
    if (sc !== undefined && sc !== null) {
      const scPath = `${at}.serve_config`;
      let input: unknown = undefined;
      let scFile = v.file;
      if (isObject(sc)) input = sc;
      else if (typeof sc === 'string' && looksInline(sc)) input = sc;
      else if (typeof sc === 'string' && sc.trim() !== '') {
        const p = isAbsolute(sc) ? sc : resolve(baseDir, sc);
        serveConfigFile = p;
        try {
          input = readFile(p);
          scFile = relative(process.cwd(), p) || p;
        } catch (err) {
          v.issue(scPath, `cannot read serve config file "${sc}" (${p}): ${errorText(err)}`);
        }
      } else v.issue(scPath, 'must be a file path, serveConfigV2 YAML text or a mapping');
      if (input !== undefined) {
        // Issues inside a separate file name that file; the path still starts at the key.
        const res = parseServeConfig(input, scFile, scPath, overrides);
        for (const iss of res.issues) v.issues.push(iss);
        serveApps = res.apps;
      }
    }
    clusters.push({ name: okName, endpoints, dashboard, serveApps, serveConfigFile });
  });
  return clusters;
}

/** An inline serveConfigV2 text rather than a file path. */
function looksInline(s: string): boolean {
  return s.includes('\n') || /^\s*[{[]/.test(s) || /^\s*applications\s*:/.test(s);
}

const APP_KEYS = ['weights', 'sticky', 'rollout', 'spillover', 'ingress_deployment'] as const;
const ROLLOUT_KEYS = [
  'steps',
  'interval',
  'max_error_rate',
  'max_p99_latency',
  'max_ttfb_p99',
  'min_requests',
  'on_failure',
] as const;

type PolicyPatch = {
  weights?: AppPolicy['weights'];
  sticky?: AppPolicy['sticky'];
  rollout?: Partial<{ -readonly [K in keyof RolloutPolicy]: RolloutPolicy[K] }>;
  spillover?: boolean;
  ingressDeployment?: string | null;
};

function parseApplications(
  v: Checker,
  raw: unknown,
  clusterNames: ReadonlySet<string>,
): { defaults: AppPolicy; applications: Map<string, AppPolicy> } {
  const applications = new Map<string, AppPolicy>();
  if (raw === undefined || raw === null) return { defaults: DEFAULT_APP_POLICY, applications };
  if (!isObject(raw)) {
    v.issue('applications', 'must be a mapping of application name to policy');
    return { defaults: DEFAULT_APP_POLICY, applications };
  }
  const star = raw['*'];
  const starPatch = star === undefined ? {} : parsePolicy(v, star, 'applications.*', clusterNames, true);
  const defaults = applyPatch(DEFAULT_APP_POLICY, starPatch);
  for (const [name, body] of Object.entries(raw)) {
    if (name === '*') continue;
    const at = `applications.${name}`;
    if (name.trim() === '') {
      v.issue(at, 'application name must not be empty');
      continue;
    }
    applications.set(name, applyPatch(defaults, parsePolicy(v, body, at, clusterNames, false)));
  }
  return { defaults, applications };
}

function applyPatch(base: AppPolicy, p: PolicyPatch): AppPolicy {
  return {
    weights: p.weights !== undefined ? p.weights : base.weights,
    sticky: p.sticky !== undefined ? p.sticky : base.sticky,
    rollout: { ...base.rollout, ...p.rollout },
    spillover: p.spillover ?? base.spillover,
    ingressDeployment: p.ingressDeployment !== undefined ? p.ingressDeployment : base.ingressDeployment,
  };
}

function parsePolicy(
  v: Checker,
  raw: unknown,
  at: string,
  clusterNames: ReadonlySet<string>,
  isStar: boolean,
): PolicyPatch {
  if (raw === null) return {};
  if (!isObject(raw)) {
    v.issue(at, 'must be a mapping');
    return {};
  }
  v.unknownKeys(raw, at, APP_KEYS);
  const p: PolicyPatch = {};

  if ('weights' in raw) {
    const w = raw['weights'];
    if (w === null) p.weights = null;
    else {
      const parsed = parseWeights(v, w, `${at}.weights`, clusterNames);
      if (parsed) p.weights = parsed;
    }
  }

  if ('sticky' in raw) {
    const s = raw['sticky'];
    if (s === null) p.sticky = null;
    else {
      const parsed = parseSticky(v, s, `${at}.sticky`);
      if (parsed) p.sticky = parsed;
    }
  }

  if ('rollout' in raw && raw['rollout'] !== null) {
    const r = raw['rollout'];
    if (!isObject(r)) v.issue(`${at}.rollout`, 'must be a mapping');
    else p.rollout = parseRollout(v, r, `${at}.rollout`);
  }

  if ('spillover' in raw && raw['spillover'] !== null) {
    const s = raw['spillover'];
    if (typeof s !== 'boolean') v.issue(`${at}.spillover`, `must be true or false (got ${show(s)})`);
    else p.spillover = s;
  }

  if ('ingress_deployment' in raw) {
    const d = raw['ingress_deployment'];
    if (isStar && d !== null) {
      v.issue(`${at}.ingress_deployment`, 'is only allowed for a named application, not "*"');
    } else if (d === null) p.ingressDeployment = null;
    else if (typeof d !== 'string' || d === '') v.issue(`${at}.ingress_deployment`, 'must be a deployment name');
    else p.ingressDeployment = d;
  }
  return p;
}

function parseWeights(
  v: Checker,
  raw: unknown,
  at: string,
  clusterNames: ReadonlySet<string>,
): Record<string, number> | null {
  if (!isObject(raw)) {
    v.issue(at, 'must be a mapping of cluster name to weight, e.g. { blue: 100, green: 0 }');
    return null;
  }
  const out: Record<string, number> = {};
  let ok = true;
  let sum = 0;
  for (const [cluster, w] of Object.entries(raw)) {
    if (!clusterNames.has(cluster)) {
      v.issue(`${at}.${cluster}`, `unknown cluster "${cluster}"`);
      ok = false;
    }
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 100) {
      v.issue(`${at}.${cluster}`, `must be an integer in 0..100 (got ${show(w)})`);
      ok = false;
      continue;
    }
    out[cluster] = w;
    sum += w;
  }
  if (Object.keys(raw).length === 0) {
    v.issue(at, 'must name at least one cluster');
    return null;
  }
  const allValid = Object.values(raw).every((w) => typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= 100);
  if (sum !== 100 && allValid) {
    v.issue(at, `must sum to 100 (got ${sum})`);
    ok = false;
  }
  return ok ? out : null;
}

function parseSticky(v: Checker, raw: unknown, at: string): StickyConfig | null {
  if (!isObject(raw)) {
    v.issue(at, 'must be { header: NAME } or { cookie: NAME }');
    return null;
  }
  v.unknownKeys(raw, at, ['header', 'cookie']);
  const keys = Object.keys(raw).filter((k) => k === 'header' || k === 'cookie');
  if (keys.length !== 1) {
    v.issue(at, 'must have exactly one of "header" or "cookie"');
    return null;
  }
  const kind = keys[0] as 'header' | 'cookie';
  const name = raw[kind];
  // Both header and cookie names are RFC 9110 tokens.
  if (typeof name !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    v.issue(`${at}.${kind}`, `must be a valid ${kind} name (got ${show(name)})`);
    return null;
  }
  return { kind, name: kind === 'header' ? name.toLowerCase() : name };
}

/**
 * admin.allowed_hosts: extra names the admin API answers to (Host header),
 * e.g. a Service name. Exact host names or IP literals, no port or wildcard;
 * lower-cased, IPv6 without brackets.
 */
function parseAllowedHosts(v: Checker, raw: unknown, path: string): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    v.issue(path, 'must be a list of host names, e.g. ["serve-gateway-admin.ops.svc"]');
    return [];
  }
  const out: string[] = [];
  raw.forEach((h, i) => {
    const name = typeof h === 'string' ? h.trim().toLowerCase().replace(/\.$/, '') : null;
    const v6 = name === null ? null : /^\[?([0-9a-f]*:[0-9a-f:.]*)\]?$/.exec(name);
    if (v6 !== null) out.push(v6[1]!);
    else if (name !== null && /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(name)) out.push(name);
    else v.issue(`${path}[${i}]`, `must be a host name or IP address without port or wildcard (got ${show(h)})`);
  });
  return out;
}

function parseRollout(v: Checker, raw: Record<string, unknown>, at: string): NonNullable<PolicyPatch['rollout']> {
  v.unknownKeys(raw, at, ROLLOUT_KEYS);
  const r: NonNullable<PolicyPatch['rollout']> = {};
  const has = (k: string) => raw[k] !== undefined && raw[k] !== null;

  if (has('steps')) {
    const s = raw['steps'];
    const path = `${at}.steps`;
    if (!Array.isArray(s) || s.length === 0) v.issue(path, 'must be a non-empty list of weights, e.g. [5, 25, 50, 100]');
    else {
      let ok = true;
      s.forEach((x, i) => {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 100) {
          v.issue(`${path}[${i}]`, `must be an integer in 1..100 (got ${show(x)})`);
          ok = false;
        } else if (i > 0 && typeof s[i - 1] === 'number' && x <= (s[i - 1] as number)) {
          v.issue(`${path}[${i}]`, `steps must be strictly ascending (${s[i - 1]} then ${x})`);
          ok = false;
        }
      });
      if (ok && s[s.length - 1] !== 100) {
        v.issue(path, `must end with 100 (got ${s[s.length - 1]})`);
        ok = false;
      }
      if (ok) r.steps = s as number[];
    }
  }
  // Bounded (ROLLOUT_LIMITS): an interval of 11,400 years is a typo, not a policy.
  const bounded = (key: string, max: number): number => {
    const ms = v.duration(raw[key], `${at}.${key}`, -1, { positive: true });
    if (ms > max) {
      v.issue(`${at}.${key}`, `must be at most ${max / 3_600_000}h (got ${show(raw[key])})`);
      return -1;
    }
    return ms;
  };
  const dur = (key: string, field: 'intervalMs' | 'maxP99LatencyMs', max: number) => {
    if (!has(key)) return;
    const ms = bounded(key, max);
    if (ms > 0) r[field] = ms;
  };
  dur('interval', 'intervalMs', ROLLOUT_LIMITS.maxIntervalMs);
  dur('max_p99_latency', 'maxP99LatencyMs', ROLLOUT_LIMITS.maxLatencyMs);
  if ('max_ttfb_p99' in raw) {
    if (raw['max_ttfb_p99'] === null) r.maxTtfbP99Ms = null;
    else {
      const ms = bounded('max_ttfb_p99', ROLLOUT_LIMITS.maxLatencyMs);
      if (ms > 0) r.maxTtfbP99Ms = ms;
    }
  }
  if (has('max_error_rate')) {
    const n = v.number(raw['max_error_rate'], `${at}.max_error_rate`, -1, 0, 1);
    if (n >= 0) r.maxErrorRate = n;
  }
  if (has('min_requests')) {
    const n = v.int(raw['min_requests'], `${at}.min_requests`, -1, 0, ROLLOUT_LIMITS.maxMinRequests);
    if (n >= 0) r.minRequests = n;
  }
  if (has('on_failure')) {
    const f = raw['on_failure'];
    if (f === 'rollback' || f === 'pause') r.onFailure = f;
    else v.issue(`${at}.on_failure`, `must be "rollback" or "pause" (got ${show(f)})`);
  }
  return r;
}

// ---------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(at: string, key: string): string {
  return at === '' ? key : `${at}.${key}`;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}

/** The known key closest to a typo (edit distance ≤ 2), for "did you mean". */
function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] as number;
      prev[j] = Math.min(tmp + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length] as number;
}
