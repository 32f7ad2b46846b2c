// One simulated Ray cluster: its apps (one shared replica set each), its
// Serve proxies, its dashboard, and the fault switches the control API and
// tests use.
import type { HostPort, ServeAppStatus } from '../config/types.ts';
import { AppRuntime, NO_FAULTS } from './app-runtime.ts';
import type { AppFaults } from './app-runtime.ts';
import { SimDashboard } from './dashboard.ts';
import type { DashboardSource } from './dashboard.ts';
import { DEFAULT_BEHAVIOUR } from './sim-config.ts';
import type { SimClusterConfig } from './sim-config.ts';
import { SimProxy } from './serve-proxy.ts';
import type { ProxyHost } from './serve-proxy.ts';

export const APP_STATUSES: readonly ServeAppStatus[] = ['NOT_STARTED', 'DEPLOYING', 'DEPLOY_FAILED', 'RUNNING', 'UNHEALTHY', 'DELETING'];

/** Per-app stats as the control API reports them (snake_case JSON). */
export interface AppStatsView {
  readonly route_prefix: string | null;
  readonly ingress_deployment: string;
  readonly max_ongoing_requests: number;
  readonly max_queued_requests: number;
  /** Running replicas of the ingress deployment. */
  readonly replicas: number;
  readonly replica_in_flight: Record<string, number>;
  readonly status: ServeAppStatus;
  readonly faults: { readonly error_rate: number; readonly latency_ms: number; readonly status: number };
  readonly in_flight: number;
  readonly queued: number;
  readonly max_in_flight_seen: number;
  readonly completed: number;
  readonly rejected: number;
  /** Client disconnects (Serve's 499). */
  readonly cancelled: number;
  readonly errors: number;
  readonly timeouts: number;
}

export interface ProxyStatsView {
  readonly index: number;
  readonly address: string;
  readonly up: boolean;
  readonly draining: boolean;
  readonly requests: number;
  readonly cancelled: number;
  /** Responses by status code. */
  readonly responses: Record<string, number>;
  /** Requests of this proxy waiting for a replica, per app. */
  readonly queued: Record<string, number>;
}

export interface ClusterStats {
  readonly name: string;
  readonly dashboard: { readonly address: string; readonly up: boolean } | null;
  readonly request_timeout_s: number | null;
  readonly proxies: ProxyStatsView[];
  readonly apps: Record<string, AppStatsView>;
}

export class SimError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'SimError';
    this.status = status;
  }
}

export class SimCluster implements ProxyHost, DashboardSource {
  readonly name: string;
  readonly config: SimClusterConfig;
  readonly runtimes = new Map<string, AppRuntime>();
  /** Index 0 plays the head node's proxy. */
  readonly proxies: SimProxy[];
  readonly dashboard: SimDashboard | null;
  /** The deployed config; its target_capacity changes in place (RayFleet.deploy). */
  serveDoc: unknown;
  readonly requestTimeoutS: number | null;
  readonly deployedAtS = Date.now() / 1000;
  /** Routed apps, longest prefix first (Serve's LongestPrefixRouter order). */
  readonly #routes: { prefix: string; rt: AppRuntime }[] = [];
  readonly #routesBody: string;

  constructor(config: SimClusterConfig) {
    this.config = config;
    this.name = config.name;
    this.serveDoc = config.serveDoc;
    this.requestTimeoutS = config.requestTimeoutS;
    const table: Record<string, string> = {};
    for (const app of config.apps) {
      const behaviour = config.behaviour.get(app.name) ?? config.behaviour.get('*') ?? DEFAULT_BEHAVIOUR;
      const rt = new AppRuntime(config.name, app, behaviour);
      this.runtimes.set(app.name, rt);
      if (app.routePrefix !== null) {
        this.#routes.push({ prefix: app.routePrefix, rt });
        table[app.routePrefix] = app.name;
      }
    }
    this.#routes.sort((a, b) => b.prefix.length - a.prefix.length);
    this.#routesBody = JSON.stringify(table);
    this.proxies = config.proxies.map((a, i) => new SimProxy(this, i, a));
    this.dashboard = config.dashboard ? new SimDashboard(this, config.dashboard) : null;
  }

  match(path: string): AppRuntime | null {
    for (const { prefix, rt } of this.#routes) {
      if (!path.startsWith(prefix)) continue;
      if (prefix.endsWith('/') || path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* '/' */) return rt;
    }
    return null;
  }

  routesBody(): string {
    return this.#routesBody;
  }

  routeTableEmpty(): boolean {
    return this.#routes.length === 0;
  }

  anyRunningReplicas(): boolean {
    for (const { rt } of this.#routes) if (rt.runningReplicas > 0) return true;
    return false;
  }

  /**
   * A node joined after the cluster started (a KubeRay worker pod that got its
   * address): Serve starts a proxy on it. Starts listening when `start` is true.
   */
  async addProxy(address: HostPort, start: boolean): Promise<SimProxy> {
    const p = new SimProxy(this, this.proxies.length === 0 ? 0 : Math.max(...this.proxies.map((x) => x.index)) + 1, address);
    this.proxies.push(p);
    if (start) await p.start();
    return p;
  }

  /** A node left (its pod was deleted): its proxy stops and is forgotten. */
  async removeProxy(host: string): Promise<void> {
    const i = this.proxies.findIndex((p) => p.address.host === host);
    if (i < 0) return;
    const [p] = this.proxies.splice(i, 1);
    await p!.stop();
  }

  async start(): Promise<void> {
    for (const p of this.proxies) await p.start();
    if (this.dashboard) await this.dashboard.start();
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.map((p) => p.stop()), this.dashboard?.stop()]);
  }

  proxyUrls(): string[] {
    return this.proxies.map((p) => p.url);
  }

  get dashboardUrl(): string | null {
    return this.dashboard ? this.dashboard.url : null;
  }

  proxy(i: number): SimProxy {
    const p = this.proxies[i];
    if (!p) throw new SimError(404, `cluster "${this.name}" has no proxy ${i} (it has ${this.proxies.length})`);
    return p;
  }

  runtime(app: string): AppRuntime {
    const rt = this.runtimes.get(app);
    if (!rt) throw new SimError(404, `cluster "${this.name}" has no application "${app}"`);
    return rt;
  }

  /** Stops the proxy's listener and destroys its connections (node lost). */
  killProxy(i: number): Promise<void> {
    return this.proxy(i).stop();
  }

  /** Listens again on the same address. */
  reviveProxy(i: number): Promise<void> {
    return this.proxy(i).start();
  }

  /** `/-/healthz` answers 503 `This node is being drained.`; requests are still served. */
  drainProxy(i: number): void {
    this.proxy(i).draining = true;
  }

  undrainProxy(i: number): void {
    this.proxy(i).draining = false;
  }

  stopDashboard(): Promise<void> {
    if (!this.dashboard) throw new SimError(404, `cluster "${this.name}" has no dashboard`);
    return this.dashboard.stop();
  }

  startDashboard(): Promise<void> {
    if (!this.dashboard) throw new SimError(404, `cluster "${this.name}" has no dashboard`);
    return this.dashboard.start();
  }

  /** Replaces the app's faults; omitted fields take their no-fault value. */
  setFaults(app: string, faults: Partial<AppFaults>): AppFaults {
    const rt = this.runtime(app);
    const f: AppFaults = { ...NO_FAULTS, ...faults };
    if (!(f.errorRate >= 0 && f.errorRate <= 1)) throw new SimError(400, 'error_rate must be between 0 and 1');
    if (!Number.isInteger(f.latencyMs) || f.latencyMs < 0) throw new SimError(400, 'latency_ms must be an integer >= 0');
    if (!Number.isInteger(f.status) || f.status < 400 || f.status > 599) throw new SimError(400, 'status must be an HTTP error status (400-599)');
    rt.faults = f;
    return f;
  }

  /** Sets the running replicas of the app's ingress deployment. */
  scale(app: string, replicas: number): void {
    if (!Number.isInteger(replicas) || replicas < 0 || replicas > 1000) throw new SimError(400, 'replicas must be an integer 0..1000');
    this.runtime(app).scale(replicas);
  }

  /** The ApplicationStatus the dashboard reports (DEPLOY_FAILED also fails requests with 503). */
  setAppStatus(app: string, status: string): void {
    if (!(APP_STATUSES as readonly string[]).includes(status)) throw new SimError(400, `status must be one of ${APP_STATUSES.join(', ')}`);
    this.runtime(app).status = status as ServeAppStatus;
  }

  /** Clears faults, app statuses, drains and stats (replica counts are restored too). */
  reset(): void {
    for (const rt of this.runtimes.values()) {
      rt.faults = NO_FAULTS;
      rt.status = 'RUNNING';
      if (rt.runningReplicas !== rt.app.replicas) rt.scale(rt.app.replicas);
      rt.resetStats();
    }
    for (const p of this.proxies) {
      p.draining = false;
      p.resetStats();
    }
  }

  stats(): ClusterStats {
    const apps: Record<string, AppStatsView> = {};
    for (const [name, rt] of this.runtimes) {
      const replicaInFlight: Record<string, number> = {};
      for (const r of rt.replicas) replicaInFlight[r.id] = r.inFlight;
      const st = rt.stats;
      apps[name] = {
        route_prefix: rt.app.routePrefix,
        ingress_deployment: rt.app.ingressDeployment,
        max_ongoing_requests: rt.app.maxOngoingRequests,
        max_queued_requests: rt.app.maxQueuedRequests,
        replicas: rt.runningReplicas,
        replica_in_flight: replicaInFlight,
        status: rt.status,
        faults: { error_rate: rt.faults.errorRate, latency_ms: rt.faults.latencyMs, status: rt.faults.status },
        in_flight: st.inFlight,
        queued: st.queued,
        max_in_flight_seen: st.maxInFlightSeen,
        completed: st.completed,
        rejected: st.rejected,
        cancelled: st.cancelled,
        errors: st.errors,
        timeouts: st.timeouts,
      };
    }
    return {
      name: this.name,
      dashboard: this.dashboard ? { address: this.dashboard.url, up: this.dashboard.up } : null,
      request_timeout_s: this.requestTimeoutS,
      proxies: this.proxies.map((p) => {
        const queued: Record<string, number> = {};
        for (const [name, r] of p.routers) queued[name] = r.queued;
        const c = p.counters;
        return { index: p.index, address: p.url, up: p.up, draining: p.draining, requests: c.requests, cancelled: c.cancelled, responses: { ...c.responses }, queued };
      }),
      apps,
    };
  }
}
