// The normalised gateway configuration: what `loadConfig()` returns after
// validating the YAML (docs/configuration.md lists the YAML keys). Durations
// are milliseconds, names carry their unit. Nothing here is mutated after
// loading; a reload produces a new GatewayConfig.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** One Serve application as the gateway knows it on one cluster. */
export interface ServeApp {
  readonly name: string;
  /** null = not exposed over HTTP (no route). */
  readonly routePrefix: string | null;
  /** Deployment whose capacity limits admission (docs/configuration.md says how it is chosen). */
  readonly ingressDeployment: string;
  readonly maxOngoingRequests: number;
  /** -1 = unlimited (Serve's default). */
  readonly maxQueuedRequests: number;
  /** RUNNING replicas of the ingress deployment (dashboard), or the configured count (serve config). */
  readonly replicas: number;
  /** Serve ApplicationStatus, or UNKNOWN when only the serve config is known / dashboard unreachable. */
  readonly status: ServeAppStatus;
}

export type ServeAppStatus =
  | 'NOT_STARTED'
  | 'DEPLOYING'
  | 'DEPLOY_FAILED'
  | 'RUNNING'
  | 'UNHEALTHY'
  | 'DELETING'
  | 'UNKNOWN';

export interface ClusterConfig {
  readonly name: string;
  /** Serve proxy origins, e.g. "http://127.0.0.1:8101" (no trailing slash, no path). */
  readonly endpoints: readonly string[];
  /** Dashboard origin serving GET /api/serve/applications/, or null. */
  readonly dashboard: string | null;
  /** Apps parsed from `serve_config` (serveConfigV2), or null when none was given. */
  readonly serveApps: readonly ServeApp[] | null;
  /** Absolute path of the serve_config file (watched for reloads), or null when inline/absent. */
  readonly serveConfigFile?: string | null;
  /**
   * Gateway API mode: a plain Kubernetes Service named by an HTTPRoute (not a
   * Ray cluster): no Serve apps, no /-/healthz probes, only passive health.
   */
  readonly plainService?: boolean;
}

export type StickyConfig =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

export interface RolloutPolicy {
  /** Target-cluster weights to walk through, ascending, last one 100. */
  readonly steps: readonly number[];
  readonly intervalMs: number;
  /** Gate: upstream error rate on the target during a step (0..1). */
  readonly maxErrorRate: number;
  readonly maxP99LatencyMs: number;
  /** Gate on time to first byte p99 (streams); null = not gated. */
  readonly maxTtfbP99Ms: number | null;
  readonly minRequests: number;
  readonly onFailure: 'rollback' | 'pause';
}

export interface AppPolicy {
  /** Initial weights by cluster name (sum 100); null = all to the first cluster serving the app. */
  readonly weights: Readonly<Record<string, number>> | null;
  readonly sticky: StickyConfig | null;
  readonly rollout: RolloutPolicy;
  /** Send to the other cluster when the chosen one's queue is full. */
  readonly spillover: boolean;
  /** Overrides the ingress deployment used for admission; null = automatic. */
  readonly ingressDeployment: string | null;
}

export interface AdmissionConfig {
  /** Per app and cluster, unless Serve's max_queued_requests says less. */
  readonly queueSize: number;
  readonly queueTimeoutMs: number;
  /** File mode: how many gateway replicas share each app's capacity (default 1). */
  readonly gatewayReplicas: number;
}

export interface UpstreamConfig {
  readonly connectTimeoutMs: number;
  /** Time to response headers; 0 = none (LLM prefill can be long). */
  readonly headersTimeoutMs: number;
  /** Max gap between body chunks; 0 = none. */
  readonly bodyTimeoutMs: number;
  /** Idle pooled connection lifetime; keep below Serve's keep_alive_timeout_s (5 s before Ray 2.48). */
  readonly idleTimeoutMs: number;
  /** Cap on connections per endpoint; 0 = no cap. */
  readonly maxConnectionsPerEndpoint: number;
  /** Request bodies up to this size with a content-length are buffered (replayable on retry). */
  readonly bufferBodyBytes: number;
  /** HTTP/1.1 client for proxied requests: undici's Client, or the lean llhttp client (src/upstream/h1-client.ts). */
  readonly client: UpstreamClientKind;
  /** The lean client's response parser: llhttp in WebAssembly (wasm) or Node's llhttp binding (native). */
  readonly parser: HttpParserKind;
}

export type UpstreamClientKind = 'undici' | 'lean';
export type ServerEngineKind = 'node' | 'lean';
export type HttpParserKind = 'wasm' | 'native';

export interface HealthConfig {
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  /** Consecutive connect failures (passive or probe) that eject an endpoint. */
  readonly ejectAfterFailures: number;
  readonly ejectBaseMs: number;
  readonly ejectMaxMs: number;
}

export interface RetryConfig {
  /** Total tries per request including the first. */
  readonly maxAttempts: number;
  /** Retries may add at most this fraction of live requests (Envoy retry budget). */
  readonly budgetRatio: number;
  /** Retries always allowed regardless of budget (Envoy min_retry_concurrency). */
  readonly minRetryConcurrency: number;
}

export interface AccessLogConfig {
  /** 0..1 share of successful requests logged; errors and local replies are always logged. */
  readonly sampleRate: number;
}

export interface GatewayConfig {
  readonly listen: HostPort;
  readonly admin: {
    readonly listen: HostPort;
    readonly tokenEnv: string;
    /** Extra Host names the admin API answers to (admin.allowed_hosts); absent = none. */
    readonly allowedHosts?: readonly string[];
  };
  readonly source: 'file' | 'kubernetes';
  /** `source: kubernetes` only: where the RayServices are and how upgrades are followed. */
  readonly kubernetes: KubernetesConfig | null;
  readonly stateDir: string;
  readonly clusters: readonly ClusterConfig[];
  /** Per app name; `defaults` holds "*" merged over built-in defaults. */
  readonly applications: ReadonlyMap<string, AppPolicy>;
  readonly defaults: AppPolicy;
  readonly admission: AdmissionConfig;
  readonly upstream: UpstreamConfig;
  readonly health: HealthConfig;
  readonly retry: RetryConfig;
  readonly accessLog: AccessLogConfig;
  /** Add x-serve-cluster to proxied responses. */
  readonly serveClusterHeader: boolean;
  readonly dashboardPollMs: number;
  readonly shutdown: { readonly drainDelayMs: number; readonly gracePeriodMs: number };
  readonly server: ServerConfig;
  /** Data-plane threads sharing the listen port (`workers`, "auto" resolved); 1 = the main thread only. */
  readonly workers: number;
}

/** Cluster roles that config weights and admin calls may use in kubernetes mode. */
export const CLUSTER_ROLES = ['active', 'pending', 'previous'] as const;
export type ClusterRole = (typeof CLUSTER_ROLES)[number];

export interface KubernetesConfig {
  readonly namespace: string;
  /** RayService names, or null when `selector` picks them. */
  readonly rayservices: readonly string[] | null;
  /** Label selector ("team=llm"), or null when `rayservices` names them. */
  readonly selector: string | null;
  /** null: in-cluster service account, else $KUBECONFIG / ~/.kube/config. */
  readonly kubeconfig: string | null;
  readonly upgrade: 'follow' | 'rollout' | 'hold';
  /** Absolute path of the last-known-good view (written on every change, read at boot without an API server). */
  readonly lastKnownGood: string;
  /** How long the gateway waits for the first list from the API server before it boots from last_known_good. */
  readonly bootWaitMs: number;
  /** The ConfigMap all replicas keep their traffic state in, or null (one replica: state_dir). */
  readonly stateConfigMap: string | null;
  /** The Lease whose holder drives rollouts (and the prefix of the replicas' member Leases), or null. */
  readonly leaderLease: string | null;
  /** Leader and member Lease duration: a replica whose Lease is older is gone. */
  readonly leaseDurationMs: number;
  /** Gateway API mode (SPEC §11), or null when off. */
  readonly gatewayApi: GatewayApiConfig | null;
}

export interface GatewayApiConfig {
  /** GatewayClass spec.controllerName this gateway serves. */
  readonly controllerName: string;
  /** The gateway's own Service (its ClusterIP goes into Gateway status.addresses), or null. */
  readonly service: string | null;
}

/** The data-plane listener's limits toward clients (docs/security.md). 0 = off where allowed. */
export interface ServerConfig {
  /** Open client connections accepted at once; further ones are closed on accept. */
  readonly maxConnections: number;
  /** Time to receive the request line and headers. */
  readonly requestHeaderTimeoutMs: number;
  /** Time to receive the whole request (headers and body) from its first byte; 0 = none. */
  readonly requestTimeoutMs: number;
  /** Keep-alive: an idle client connection is closed after this. */
  readonly idleTimeoutMs: number;
  /** HTTP/1.1 server for the data plane: node:http, or the lean llhttp server (src/proxy/h1-server.ts). Needs a restart. */
  readonly engine: ServerEngineKind;
  /** The lean server's request parser: llhttp in WebAssembly (wasm) or Node's llhttp binding (native). Needs a restart. */
  readonly parser: HttpParserKind;
  /** A response write the client leaves undrained this long closes the connection; 0 = none. */
  readonly writeTimeoutMs: number;
}

/** One validation problem, reported with the file and YAML key path. */
export interface ConfigIssue {
  readonly file: string;
  /** e.g. "clusters[1].endpoints[0]" or "applications.llm-app.weights" */
  readonly path: string;
  readonly message: string;
  /** 1-based line in `file` of the offending key, when known (added by load.ts). */
  readonly line?: number;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };
