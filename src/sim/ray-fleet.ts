// Ray as the genuine KubeRay operator sees it: one simulated Ray cluster per
// RayCluster, whose nodes are the addresses of its pods. Whoever plays kubelet
// (test/kuberay/kubelet.ts) calls addNode() when a pod gets its address and
// removeNode() when the pod goes; the fleet then listens on that address:
//
// - head node: the dashboard on :8265 with the Serve REST API KubeRay uses
//   (docs/simulator.md, "KubeRay mode"): GET /api/serve/applications/ (Serve
//   not started: the empty answer; then ServeInstanceDetails, dashboard.ts) and
//   PUT /api/serve/applications/ (the serveConfigV2 as JSON, declarative);
// - every node, once a config is deployed: a Serve proxy on :8000 (serve-proxy.ts,
//   the same code as `serve-gateway sim`), so the head's /-/healthz that KubeRay
//   checks and the workers' readiness answer as Serve's do.
//
// A PUT deploys: the apps are DEPLOYING with no replicas (requests wait, worker
// proxies answer /-/healthz 503 "No replicas are available yet."), and after
// `deployMs` each app ends as `outcome` says: RUNNING with its replicas,
// DEPLOY_FAILED (a broken import_path in real Serve), or DEPLOYING for good
// (replicas that cannot be placed, e.g. a GPU asked of a CPU-only cluster).
// The same config again is a no-op, as Serve's declarative API is. A config
// that differs only in `target_capacity` (KubeRay's incremental upgrade) is
// applied in place as Serve does: nothing is redeployed, each RUNNING app is
// scaled to ceil(num_replicas × target_capacity / 100) replicas (replicas
// that go finish their requests).
//
// Clusters are told apart by address: each listener binds the pod's own
// address, so a connection's local address names the cluster that answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseServeConfig } from '../config/serve-config.ts';
import type { HostPort, ServeAppStatus } from '../config/types.ts';
import type { AppRuntime } from './app-runtime.ts';
import { SERVE_APPLICATIONS_PATH, SimDashboard } from './dashboard.ts';
import type { DashboardSource } from './dashboard.ts';
import { SimCluster } from './sim-cluster.ts';
import { DEFAULT_BEHAVIOUR, isObject } from './sim-config.ts';
import type { AppBehaviour } from './sim-config.ts';
import type { SimProxy } from './serve-proxy.ts';

/** How an app of a deployed config ends up once Serve has tried to start it. */
export type DeployOutcome = 'running' | 'failed' | 'deploying';

export interface RayFleetOptions {
  /** Serve's HTTP port on every node (KubeRay's container port "serve"). Default 8000. */
  readonly servePort?: number;
  /** The dashboard's port on the head node. Default 8265. */
  readonly dashboardPort?: number;
  /** From a PUT to each app's outcome (Serve starting replicas). Default 1000 ms. */
  readonly deployMs?: number;
  /**
   * The outcome of one app of a deployed config (the app's entry of the PUT
   * body). Default: DEPLOYING for good when a deployment asks for GPUs (the
   * simulated nodes have none, so Serve cannot place its replicas), else running.
   */
  readonly outcome?: (cluster: string, app: Readonly<Record<string, unknown>>) => DeployOutcome;
  /** Called with the cluster right after a PUT created its Serve instance (e.g. to set faults). */
  readonly onDeploy?: (cluster: FleetCluster) => void;
  /** Behaviour of the simulated apps, per app name ("*" = the others). */
  readonly behaviour?: ReadonlyMap<string, AppBehaviour>;
  /** Largest PUT body accepted. Default 8 MiB. */
  readonly maxBodyBytes?: number;
}

/** What the fleet did, for tests and diagnostics. */
export interface FleetEvent {
  readonly atMs: number;
  readonly cluster: string;
  readonly what: 'node-added' | 'node-removed' | 'put' | 'put-unchanged' | 'put-target-capacity' | 'put-refused' | 'app-status';
  readonly detail: string;
}

/** RayFleetOptions.outcome's default: apps asking for GPUs never get their replicas. */
export function defaultOutcome(_cluster: string, app: Readonly<Record<string, unknown>>): DeployOutcome {
  const deps = Array.isArray(app['deployments']) ? app['deployments'].filter(isObject) : [];
  const gpus = deps.some((d) => isObject(d['ray_actor_options']) && Number(d['ray_actor_options']['num_gpus'] ?? 0) > 0);
  return gpus ? 'deploying' : 'running';
}

const EMPTY_RUNTIMES: ReadonlyMap<string, AppRuntime> = new Map();
const TEXT = 'text/plain; charset=utf-8';

/** One simulated Ray cluster (one RayCluster). */
export class FleetCluster implements DashboardSource {
  readonly name: string;
  readonly #fleet: RayFleet;
  /** Node address → head? (insertion order; the head is listed first by proxies). */
  readonly nodes = new Map<string, boolean>();
  dashboard: FleetDashboard | null = null;
  /** The deployed Serve instance, or null before the first PUT. */
  serve: SimCluster | null = null;
  /** The last deployed config (canonical JSON), or null. */
  deployedConfig: string | null = null;
  readonly #timers = new Set<NodeJS.Timeout>();
  #deployedAtS = 0;

  constructor(fleet: RayFleet, name: string) {
    this.#fleet = fleet;
    this.name = name;
  }

  // DashboardSource: the Serve instance, or Serve not started.
  get proxies(): readonly SimProxy[] {
    return this.serve?.proxies ?? [];
  }
  get runtimes(): ReadonlyMap<string, AppRuntime> {
    return this.serve?.runtimes ?? EMPTY_RUNTIMES;
  }
  get serveDoc(): unknown {
    return this.serve?.serveDoc ?? null;
  }
  get requestTimeoutS(): number | null {
    return this.serve?.requestTimeoutS ?? null;
  }
  get deployedAtS(): number {
    return this.#deployedAtS;
  }

  /** Largest PUT body the dashboard accepts. */
  get maxBodyBytes(): number {
    return this.#fleet.maxBodyBytes;
  }


  /** Serve's node addresses, the head's first (the proxy with index 0 plays the head's). */
  #orderedNodes(): string[] {
    const all = [...this.nodes.keys()];
    return [...all.filter((a) => this.nodes.get(a)), ...all.filter((a) => !this.nodes.get(a))];
  }

  /** Deploys a config (the PUT body); returns [status, body] of the dashboard's answer. */
  async deploy(doc: unknown): Promise<[number, string]> {
    const fleet = this.#fleet;
    const parsed = parseServeConfig(doc, 'PUT /api/serve/applications/', '');
    if (parsed.issues.length > 0) {
      const why = parsed.issues.map((i) => `${i.path === '' ? '' : `${i.path}: `}${i.message}`).join('; ');
      fleet.record(this.name, 'put-refused', why);
      return [400, `Invalid Serve config: ${why}`];
    }
    const canonical = JSON.stringify(doc);
    if (canonical === this.deployedConfig && this.serve !== null) {
      fleet.record(this.name, 'put-unchanged', `${parsed.apps.length} apps`);
      return [200, ''];
    }
    if (this.serve !== null && this.deployedConfig !== null && withoutCapacity(doc) === withoutCapacity(JSON.parse(this.deployedConfig))) {
      const serve = this.serve;
      serve.serveDoc = doc;
      this.deployedConfig = canonical;
      for (const rt of serve.runtimes.values()) if (rt.status === 'RUNNING') rt.scale(replicasAt(rt.app.replicas, doc));
      fleet.record(this.name, 'put-target-capacity', `target_capacity ${String(targetCapacity(doc))}`);
      return [200, ''];
    }
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const old = this.serve;
    this.serve = null;
    await old?.close();
    const httpOptions = isObject(doc) && isObject(doc['http_options']) ? doc['http_options'] : {};
    const rto = httpOptions['request_timeout_s'];
    const serve = new SimCluster({
      name: this.name,
      proxies: this.#orderedNodes().map((host) => ({ host, port: fleet.servePort })),
      dashboard: null,
      apps: parsed.apps,
      serveDoc: doc,
      requestTimeoutS: typeof rto === 'number' && rto > 0 ? rto : null,
      behaviour: fleet.behaviour,
    });
    for (const rt of serve.runtimes.values()) {
      rt.status = 'DEPLOYING';
      rt.scale(0);
    }
    this.serve = serve;
    this.deployedConfig = canonical;
    this.#deployedAtS = Date.now() / 1000;
    fleet.onDeploy(this);
    await serve.start();
    fleet.record(this.name, 'put', `${parsed.apps.map((a) => a.name).join(',')} on ${serve.proxies.length} nodes`);
    const rawApps = isObject(doc) && Array.isArray(doc['applications']) ? doc['applications'].filter(isObject) : [];
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (this.serve !== serve) return;
      for (const raw of rawApps) {
        const rt = typeof raw['name'] === 'string' ? serve.runtimes.get(raw['name']) : undefined;
        if (rt === undefined) continue;
        const outcome = fleet.outcome(this.name, raw);
        if (outcome === 'running') {
          rt.scale(replicasAt(rt.app.replicas, this.serve.serveDoc));
          rt.status = 'RUNNING';
        } else if (outcome === 'failed') {
          rt.status = 'DEPLOY_FAILED';
        }
        fleet.record(this.name, 'app-status', `${rt.app.name} ${rt.status}`);
      }
    }, fleet.deployMs);
    this.#timers.add(t);
    return [200, ''];
  }

  /** Sets an app's status now (RUNNING also starts its replicas). */
  setAppStatus(app: string, status: ServeAppStatus): void {
    const rt = this.serve?.runtimes.get(app);
    if (rt === undefined) throw new Error(`cluster ${this.name} has no deployed app "${app}"`);
    if (status === 'RUNNING' && rt.runningReplicas === 0) rt.scale(rt.app.replicas);
    rt.status = status;
    this.#fleet.record(this.name, 'app-status', `${app} ${status} (set)`);
  }

  async addNode(address: string, head: boolean): Promise<void> {
    if (this.nodes.has(address)) return;
    this.nodes.set(address, head);
    const fleet = this.#fleet;
    if (head && this.dashboard === null) {
      this.dashboard = new FleetDashboard(this, { host: address, port: fleet.dashboardPort });
      await this.dashboard.start();
    }
    if (this.serve !== null) await this.serve.addProxy({ host: address, port: fleet.servePort }, true);
    fleet.record(this.name, 'node-added', `${head ? 'head' : 'worker'} ${address}`);
  }

  async removeNode(address: string): Promise<void> {
    const head = this.nodes.get(address);
    if (head === undefined) return;
    this.nodes.delete(address);
    if (head && this.dashboard !== null && this.dashboard.address.host === address) {
      // Ray's head is gone: the dashboard and the Serve state it kept.
      await this.dashboard.stop();
      this.dashboard = null;
    }
    await this.serve?.removeProxy(address);
    this.#fleet.record(this.name, 'node-removed', address);
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.all([this.dashboard?.stop(), this.serve?.close()]);
    this.dashboard = null;
  }
}

/** The head node's dashboard: the read side of SimDashboard plus KubeRay's PUT. */
export class FleetDashboard extends SimDashboard {
  readonly cluster: FleetCluster;

  constructor(cluster: FleetCluster, address: HostPort) {
    super(cluster, address);
    this.cluster = cluster;
  }

  protected override serve(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== SERVE_APPLICATIONS_PATH || req.method !== 'PUT') {
      super.serve(req, res);
      return;
    }
    const max = this.cluster.maxBodyBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) chunks.push(c);
    });
    req.on('end', () => {
      if (size > max) {
        reply(res, 413, `Request body larger than ${max} bytes`);
        return;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        reply(res, 400, `Request body is not valid JSON: ${(err as Error).message}`);
        return;
      }
      this.cluster.deploy(doc).then(
        ([status, body]) => reply(res, status, body),
        (err: unknown) => reply(res, 500, `deploy failed: ${(err as Error).message}`),
      );
    });
  }
}

function reply(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': TEXT, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export class RayFleet {
  readonly servePort: number;
  readonly dashboardPort: number;
  readonly deployMs: number;
  readonly behaviour: ReadonlyMap<string, AppBehaviour>;
  readonly maxBodyBytes: number;
  readonly clusters = new Map<string, FleetCluster>();
  readonly events: FleetEvent[] = [];
  #outcome: (cluster: string, app: Readonly<Record<string, unknown>>) => DeployOutcome;
  #onDeploy: (cluster: FleetCluster) => void;
  /** Node address → cluster name. */
  readonly #nodes = new Map<string, string>();
  #closed = false;

  constructor(o: RayFleetOptions = {}) {
    this.servePort = o.servePort ?? 8000;
    this.dashboardPort = o.dashboardPort ?? 8265;
    this.deployMs = o.deployMs ?? 1000;
    this.behaviour = o.behaviour ?? new Map([['*', DEFAULT_BEHAVIOUR]]);
    this.maxBodyBytes = o.maxBodyBytes ?? 8 * 1024 * 1024;
    this.#outcome = o.outcome ?? defaultOutcome;
    this.#onDeploy = o.onDeploy ?? (() => {});
  }

  /** Replaces the hook called after each deploy. */
  setOnDeploy(fn: (cluster: FleetCluster) => void): void {
    this.#onDeploy = fn;
  }

  onDeploy(cluster: FleetCluster): void {
    this.#onDeploy(cluster);
  }

  /** Replaces the outcome rule (applies to deploys whose `deployMs` has not passed yet, too). */
  setOutcome(fn: (cluster: string, app: Readonly<Record<string, unknown>>) => DeployOutcome): void {
    this.#outcome = fn;
  }

  outcome(cluster: string, app: Readonly<Record<string, unknown>>): DeployOutcome {
    return this.#outcome(cluster, app);
  }

  record(cluster: string, what: FleetEvent['what'], detail: string): void {
    this.events.push({ atMs: Date.now(), cluster, what, detail });
    if (this.events.length > 2000) this.events.splice(0, 1000);
  }

  cluster(name: string): FleetCluster | undefined {
    return this.clusters.get(name);
  }

  /** A pod of RayCluster `cluster` got `address`: Ray runs a node there. */
  async addNode(cluster: string, address: string, head: boolean): Promise<void> {
    if (this.#closed) throw new Error('the fleet is closed');
    const known = this.#nodes.get(address);
    if (known !== undefined && known !== cluster) throw new Error(`address ${address} already belongs to cluster ${known}`);
    let c = this.clusters.get(cluster);
    if (c === undefined) this.clusters.set(cluster, (c = new FleetCluster(this, cluster)));
    this.#nodes.set(address, cluster);
    await c.addNode(address, head);
  }

  /** The pod at `address` is gone. A cluster with no nodes left is forgotten (Ray is gone). */
  async removeNode(address: string): Promise<void> {
    const name = this.#nodes.get(address);
    if (name === undefined) return;
    this.#nodes.delete(address);
    const c = this.clusters.get(name);
    if (c === undefined) return;
    await c.removeNode(address);
    if (c.nodes.size === 0) {
      await c.close();
      this.clusters.delete(name);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.clusters.values()].map((c) => c.close()));
    this.clusters.clear();
    this.#nodes.clear();
  }
}

/** The config's target_capacity (0..100), or null when it has none. */
function targetCapacity(doc: unknown): number | null {
  const tc = isObject(doc) ? doc['target_capacity'] : undefined;
  return typeof tc === 'number' && tc >= 0 && tc <= 100 ? tc : null;
}

/** Replicas Serve runs for `replicas` configured at the config's target_capacity. */
function replicasAt(replicas: number, doc: unknown): number {
  const tc = targetCapacity(doc);
  return tc === null ? replicas : Math.ceil((replicas * tc) / 100);
}

function withoutCapacity(doc: unknown): string {
  if (!isObject(doc)) return JSON.stringify(doc);
  const { target_capacity: _tc, ...rest } = doc;
  return JSON.stringify(rest);
}
