// Plays the Gateway API half of KubeRay's incremental upgrade
// (NewClusterWithIncrementalUpgrade) against a real kube-apiserver, on top of
// KubeRayPlayer (RayService, RayClusters, pods, simulated Serve): the
// per-cluster `<cluster>-serve-svc` Services, the `<rs>-gateway` Gateway and the
// `<rs>-httproute` HTTPRoute exactly as KubeRay builds them
// (rayservice_controller.go createHTTPRoute / reconcileGateway,
// common/service.go BuildServeService), its readiness checks (utils/util.go
// IsGatewayReady / IsHTTPRouteReady, read back from the API server as KubeRay's
// cache would), and its traffic loop (calculateTrafficRoutedPercent,
// reconcileServeTargetCapacity): target capacity up by maxSurgePercent once
// Gateway and route are ready, weight up by stepSizePercent every
// intervalSeconds capped at that capacity, the active capacity down, promotion
// at 0/100, rollback by the same steps.
//
// Also: the gateway's Role and ClusterRole for Gateway API mode, a plain echo
// backend (pods on loopback addresses) and a counting load.
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubernetesObject, V1PolicyRule } from '@kubernetes/client-node';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { DEFAULT_CRDS, REPO } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { GATEWAY_ROLE_RULES, retry429 } from './kuberay-player.ts';
import type { KubeRayPlayer } from './kuberay-player.ts';

export const GW_API = { group: 'gateway.networking.k8s.io', version: 'v1' } as const;
export const CONTROLLER_NAME = 'serve-gateway.io/gateway-controller';
export const GATEWAY_CLASS = 'serve-gateway';

/** RayService + RayCluster CRDs and the Gateway API standard channel (deploy/crds/gateway-api). */
export const GATEWAY_API_CRDS: readonly string[] = [
  ...DEFAULT_CRDS,
  ...['gatewayclasses', 'gateways', 'httproutes', 'referencegrants'].map((p) => join(REPO, `deploy/crds/gateway-api/gateway.networking.k8s.io_${p}.yaml`)),
];

/** The gateway's Role in Gateway API mode (deploy/rbac.yaml, the Helm chart): GATEWAY_ROLE_RULES and the namespace's Gateway API objects. */
export const GATEWAY_API_ROLE_RULES: readonly V1PolicyRule[] = [
  ...GATEWAY_ROLE_RULES,
  { apiGroups: [GW_API.group], resources: ['gateways', 'httproutes'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GW_API.group], resources: ['gateways/status', 'httproutes/status'], verbs: ['get', 'update', 'patch'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
];

/** GatewayClasses are cluster-scoped: a ClusterRole. */
export const GATEWAY_API_CLUSTER_RULES: readonly V1PolicyRule[] = [
  { apiGroups: [GW_API.group], resources: ['gatewayclasses'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GW_API.group], resources: ['gatewayclasses/status'], verbs: ['get', 'update', 'patch'] },
];

export type Obj = KubernetesObject & { spec?: any; status?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Admin-side calls on Gateway API objects and Services. */
export class GatewayApiObjects {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly ns: string;

  constructor(server: ApiServer, ns: string) {
    this.custom = server.kc.makeApiClient(CustomObjectsApi);
    this.core = server.kc.makeApiClient(CoreV1Api);
    this.ns = ns;
  }

  async createClass(name: string, controllerName = CONTROLLER_NAME, description?: string): Promise<Obj> {
    const body = { apiVersion: `${GW_API.group}/${GW_API.version}`, kind: 'GatewayClass', metadata: { name }, spec: { controllerName, ...(description ? { description } : {}) } };
    return (await retry429(() => this.custom.createClusterCustomObject({ ...GW_API, plural: 'gatewayclasses', body }))) as Obj;
  }

  async getClass(name: string): Promise<Obj> {
    return (await this.custom.getClusterCustomObject({ ...GW_API, plural: 'gatewayclasses', name })) as Obj;
  }

  async get(plural: 'gateways' | 'httproutes', name: string): Promise<Obj> {
    return (await this.custom.getNamespacedCustomObject({ ...GW_API, plural, namespace: this.ns, name })) as Obj;
  }

  async create(plural: 'gateways' | 'httproutes', name: string, spec: object, meta: object = {}): Promise<Obj> {
    const body = { apiVersion: `${GW_API.group}/${GW_API.version}`, kind: plural === 'gateways' ? 'Gateway' : 'HTTPRoute', metadata: { name, namespace: this.ns, ...meta }, spec };
    return (await retry429(() => this.custom.createNamespacedCustomObject({ ...GW_API, plural, namespace: this.ns, body }))) as Obj;
  }

  /** GET, change the spec, PUT with the resourceVersion read (controller-runtime's Update); retried on 409. */
  async updateSpec(plural: 'gateways' | 'httproutes', name: string, edit: (spec: any) => any): Promise<Obj> { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (let attempt = 0; ; attempt++) {
      const obj = await this.get(plural, name);
      obj.spec = edit(obj.spec);
      try {
        return (await this.custom.replaceNamespacedCustomObject({ ...GW_API, plural, namespace: this.ns, name, body: obj })) as Obj;
      } catch (err) {
        if ((err as { code?: number }).code !== 409 || attempt >= 10) throw err;
      }
    }
  }

  async delete(plural: 'gateways' | 'httproutes', name: string): Promise<void> {
    try {
      await this.custom.deleteNamespacedCustomObject({ ...GW_API, plural, namespace: this.ns, name });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }

  async createService(name: string, selector: Record<string, string> | null, ports: ReadonlyArray<{ name?: string; port: number; targetPort?: number | string }>): Promise<void> {
    await retry429(() =>
      this.core.createNamespacedService({
        namespace: this.ns,
        body: { metadata: { name, namespace: this.ns }, spec: { ...(selector ? { selector } : {}), ports: ports.map((p) => ({ protocol: 'TCP', ...p })) } },
      }),
    );
  }

  async deleteService(name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedService({ name, namespace: this.ns });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }
}

/** KubeRay's IsGatewayReady: Accepted=True and Programmed=True (meta.IsStatusConditionTrue). */
export function isGatewayReady(gw: Obj): boolean {
  const conds = (gw.status?.conditions ?? []) as Array<{ type: string; status: string }>;
  return ['Accepted', 'Programmed'].every((t) => conds.some((c) => c.type === t && c.status === 'True'));
}

/** KubeRay's IsHTTPRouteReady: the parent entry for <rs>-gateway (namespace nil or the Gateway's) has Accepted and ResolvedRefs True. */
export function isHTTPRouteReady(route: Obj, gatewayName: string, gatewayNs: string): boolean {
  const parents = (route.status?.parents ?? []) as Array<{ parentRef: { name: string; namespace?: string }; conditions?: Array<{ type: string; status: string }> }>;
  return parents.some(
    (p) =>
      p.parentRef.name === gatewayName &&
      (p.parentRef.namespace === undefined || p.parentRef.namespace === gatewayNs) &&
      ['Accepted', 'ResolvedRefs'].every((t) => (p.conditions ?? []).some((c) => c.type === t && c.status === 'True')),
  );
}

export interface IncrementalOptions {
  readonly stepSizePercent: number;
  readonly intervalSeconds: number;
  readonly maxSurgePercent: number;
  /** KubeRay requeues every 2 s; the loop here checks this often. */
  readonly reconcileMs?: number;
  readonly log?: (line: string) => void;
}

export interface WeightWrite {
  readonly at: number;
  readonly weights: Readonly<Record<string, number>>;
}

/** KubeRay's incremental-upgrade objects and traffic loop for one RayService (played by `p`). */
export class IncrementalPlayer {
  readonly p: KubeRayPlayer;
  readonly api: GatewayApiObjects;
  readonly gatewayName: string;
  readonly routeName: string;
  readonly o: IncrementalOptions;
  /** Every HTTPRoute weight write, with performance.now(). */
  readonly writes: WeightWrite[] = [];
  pendingCapacity = 0;
  activeCapacity = 100;
  pendingWeight = 0;

  constructor(p: KubeRayPlayer, server: ApiServer, o: IncrementalOptions) {
    this.p = p;
    this.api = new GatewayApiObjects(server, p.ns);
    this.gatewayName = `${p.name}-gateway`;
    this.routeName = `${p.name}-httproute`;
    this.o = o;
  }

  #log(line: string): void {
    (this.o.log ?? ((l: string) => console.log(`# kuberay-incremental ${this.p.name}: ${l}`)))(line);
  }

  /** BuildServeService for one cluster: `<cluster>-serve-svc`, selector {ray.io/cluster, ray.io/serve: "true"}, port serve 8000. */
  async createServeService(cluster: string): Promise<void> {
    await this.api.createService(`${cluster}-serve-svc`, { 'ray.io/cluster': cluster, 'ray.io/serve': 'true' }, [{ name: 'serve', port: 8000, targetPort: 'serve' }]);
    this.#log(`Service ${cluster}-serve-svc created`);
  }

  /** reconcileGateway: one HTTP listener on port 80, nothing else. */
  async createGateway(gatewayClassName: string): Promise<Obj> {
    const gw = await this.api.create('gateways', this.gatewayName, { gatewayClassName, listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] });
    this.#log(`Gateway ${this.gatewayName} created`);
    return gw;
  }

  #routeSpec(backends: ReadonlyArray<readonly [string, number]>): object {
    return {
      parentRefs: [{ name: this.gatewayName, namespace: this.p.ns }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/' } }],
          backendRefs: backends.map(([cluster, weight]) => ({ name: `${cluster}-serve-svc`, namespace: this.p.ns, port: 8000, weight })),
        },
      ],
    };
  }

  /** createHTTPRoute / reconcileHTTPRoute: one PathPrefix "/" rule, the active (and pending) serve Service with weights. */
  async writeRoute(backends: ReadonlyArray<readonly [string, number]>): Promise<void> {
    const spec = this.#routeSpec(backends);
    let exists = true;
    try {
      await this.api.get('httproutes', this.routeName);
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      exists = false;
    }
    if (exists) await this.api.updateSpec('httproutes', this.routeName, () => spec);
    else await this.api.create('httproutes', this.routeName, spec);
    const weights = Object.fromEntries(backends.map(([c, w]) => [c, w]));
    this.writes.push({ at: performance.now(), weights });
    this.#log(`HTTPRoute ${exists ? 'updated' : 'created'}: ${backends.map(([c, w]) => `${c}=${w}`).join(' ')}`);
  }

  /** Both readiness checks KubeRay makes before it raises the pending target capacity, read from the API server. */
  async ready(): Promise<boolean> {
    const [gw, route] = await Promise.all([this.api.get('gateways', this.gatewayName), this.api.get('httproutes', this.routeName)]);
    return isGatewayReady(gw) && isHTTPRouteReady(route, this.gatewayName, this.p.ns);
  }

  /**
   * One interval of the incremental loop (KubeRay's calculateTrafficRoutedPercent and
   * reconcileServeTargetCapacity, one step per call). Returns the new pending weight, or
   * null when it stalled (Gateway or HTTPRoute not ready).
   */
  async step(active: string, pending: string): Promise<number | null> {
    if (!(await this.ready())) return null;
    const surge = this.o.maxSurgePercent;
    if (this.pendingWeight === this.pendingCapacity) {
      if (this.pendingCapacity > 0 && this.activeCapacity + this.pendingCapacity > 100) {
        this.activeCapacity = Math.max(0, this.activeCapacity - surge);
        this.#log(`target_capacity: ${active}=${this.activeCapacity}`);
      }
      if (this.pendingCapacity < 100) {
        this.pendingCapacity = Math.min(100, this.pendingCapacity + surge);
        this.#log(`target_capacity: ${pending}=${this.pendingCapacity}`);
      }
    }
    const next = Math.min(this.pendingCapacity, this.pendingWeight + this.o.stepSizePercent);
    if (next !== this.pendingWeight) {
      this.pendingWeight = next;
      await this.writeRoute([
        [active, 100 - next],
        [pending, next],
      ]);
    }
    if (this.pendingWeight === 100) this.activeCapacity = 0;
    return this.pendingWeight;
  }

  /** Rollback (KubeRay 1.7): the pending weight moves back toward 0 by the same step, whatever the pending cluster's state. */
  async stepBack(active: string, pending: string): Promise<number> {
    this.pendingWeight = Math.max(0, this.pendingWeight - this.o.stepSizePercent);
    await this.writeRoute([
      [active, 100 - this.pendingWeight],
      [pending, this.pendingWeight],
    ]);
    return this.pendingWeight;
  }
}

// ---------------------------------------------------------------- plain backends

/** An echo backend like the conformance suite's echo-basic: answers JSON {path, method, host, headers, namespace, pod, service}. */
export interface EchoPod {
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  readonly server: Server;
}

export async function startEcho(ip: string, pod: string, namespace: string, service: string): Promise<EchoPod> {
  const server = createServer((req, res) => {
    const body = JSON.stringify({ path: req.url, method: req.method, host: req.headers.host ?? '', headers: req.headers, namespace, pod, service });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, ip, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { name: pod, ip, port, server };
}

/** A Pod object for an echo backend (Running, Ready, its loopback address), with a container port named "http". */
export async function createEchoPod(core: CoreV1Api, ns: string, echo: EchoPod, labels: Record<string, string>): Promise<void> {
  await retry429(() =>
    core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: echo.name, namespace: ns, labels }, spec: { containers: [{ name: 'echo', image: 'echo-basic', ports: [{ name: 'http', containerPort: echo.port }] }] } },
    }),
  );
  const now = new Date();
  await core.patchNamespacedPodStatus(
    {
      name: echo.name,
      namespace: ns,
      body: { status: { phase: 'Running', hostIP: echo.ip, podIP: echo.ip, podIPs: [{ ip: echo.ip }], startTime: now, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

// ---------------------------------------------------------------- load

export interface Sample {
  readonly start: number;
  readonly end: number;
  readonly status: number;
  readonly cluster: string;
  readonly error: string | null;
}

/** Closed-loop JSON requests to both apps, every outcome kept with the cluster that answered (x-serve-cluster). */
export class CountingLoad {
  readonly samples: Sample[] = [];
  #stop = false;
  #clients: Promise<void>[] = [];

  readonly url: string;
  readonly clients: number;

  constructor(url: string, clients = 8) {
    this.url = url;
    this.clients = clients;
  }

  start(): this {
    for (let c = 0; c < this.clients; c++) {
      this.#clients.push(
        (async () => {
          for (let i = 0; !this.#stop; i++) {
            const path = i % 2 === 0 ? `/llm/c${c}-${i}` : `/web/c${c}-${i}`;
            const start = performance.now();
            try {
              const r = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(15_000) });
              await r.arrayBuffer();
              this.samples.push({ start, end: performance.now(), status: r.status, cluster: r.headers.get('x-serve-cluster') ?? '', error: r.status === 200 ? null : `${r.status}` });
            } catch (err) {
              this.samples.push({ start, end: performance.now(), status: 0, cluster: '', error: (err as Error).message });
            }
          }
        })(),
      );
    }
    return this;
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await Promise.all(this.#clients);
  }

  failures(): Sample[] {
    return this.samples.filter((s) => s.error !== null);
  }

  /** Requests started in [from, to) that completed, by cluster. */
  countIn(from: number, to: number): { n: number; by: Map<string, number> } {
    const by = new Map<string, number>();
    let n = 0;
    for (const s of this.samples) {
      if (s.start < from || s.start >= to || s.error !== null) continue;
      n++;
      by.set(s.cluster, (by.get(s.cluster) ?? 0) + 1);
    }
    return { n, by };
  }
}
