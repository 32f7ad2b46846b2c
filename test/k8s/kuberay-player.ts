// Plays KubeRay (the RayService controller) and the kubelet against a real
// kube-apiserver (test/k8s/apiserver.ts), following the blue/green (NewCluster)
// switchover as KubeRay's RayService controller performs it (rayservice_controller.go:
// reconcileServicesToReadyCluster, reconcilePromotionAndServingStatus) and the
// sequence measured with the genuine operator:
//
//   spec change → status.pendingServiceStatus.rayClusterName = <rs>-xxxxx,
//                 UpgradeInProgress=True, activeServiceStatus.applicationStatuses removed
//   → RayCluster + pods (head ray.io/serve=false, workers ray.io/serve=true), Pending
//   → pods Running with a podIP, then Ready; head label ray.io/serve=true after its /-/healthz
//   → pendingServiceStatus.applicationStatuses DEPLOYING → RUNNING
//   → promotion: active := pending, pending := {}, UpgradeInProgress=False
//   → the old RayCluster and its pods are deleted rayClusterDeletionDelaySeconds later.
//
// Every "pod" is a distinct loopback address (127.<a>.<b>.x, a random block per
// player) backed by a simulated Serve proxy (src/sim); the head pod also hosts
// the simulated dashboard. One Sim per RayCluster, named like the RayCluster, so
// the sim's JSON reply names the cluster that answered, as x-serve-cluster does.
//
// Also here, for the k8s suites: the gateway's least-privilege Role, a gateway
// started in kubernetes mode, closed-loop load (JSON + SSE) that records every
// outcome by x-serve-cluster, and status-API polling.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CoreV1Event, KubernetesObject, V1Pod, V1PolicyRule } from '@kubernetes/client-node';
import { parseSimConfig } from '../../src/sim/sim-config.ts';
import { startSim } from '../../src/sim/sim.ts';
import type { Sim } from '../../src/sim/sim.ts';
import type { SimCluster } from '../../src/sim/sim-cluster.ts';
import { startGateway } from '../../src/main.ts';
import type { Gateway } from '../../src/main.ts';
import type { GatewayConfig } from '../../src/config/types.ts';
import { LogRecorder, buildConfig } from '../helpers/stack.ts';
import type { ApiServer } from './apiserver.ts';

// ---------------------------------------------------------------- constants

/** The gateway's Role: read RayServices and Pods, create Events. Nothing else. */
export const GATEWAY_ROLE_RULES: readonly V1PolicyRule[] = [
  { apiGroups: ['ray.io'], resources: ['rayservices'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

/**
 * The Role of gateways that share their state (kubernetes.state_configmap and
 * leader_lease): GATEWAY_ROLE_RULES plus the state ConfigMap by name, its
 * creation, and the Leases (deploy/rbac.yaml, the Helm chart).
 */
export function replicaRoleRules(stateConfigMap: string): V1PolicyRule[] {
  return [
    ...GATEWAY_ROLE_RULES.map((r) => ({ ...r })),
    { apiGroups: [''], resources: ['configmaps'], resourceNames: [stateConfigMap], verbs: ['get', 'update', 'list', 'watch'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] },
  ];
}

/** serveConfigV2 with two apps: `llm` at /llm and `default` at /. */
export const SERVE_CONFIG_V2 = `applications:
  - name: llm
    route_prefix: /llm
    import_path: serve_app.llm:app
    deployments:
      - name: LLMServer
        num_replicas: 2
        max_ongoing_requests: 16
        ray_actor_options:
          num_cpus: 0.1
  - name: default
    route_prefix: /
    import_path: serve_app.web:app
    deployments:
      - name: Web
        num_replicas: 1
        max_ongoing_requests: 32
`;

/** Deployments per app of SERVE_CONFIG_V2 (for applicationStatuses.serveDeploymentStatuses). */
const DEPLOYMENTS: Readonly<Record<string, readonly string[]>> = { llm: ['LLMServer'], default: ['Web'] };

export const ADMIN_TOKEN = 'test-token';

const RS_API = { group: 'ray.io', version: 'v1', plural: 'rayservices' } as const;
const RC_API = { group: 'ray.io', version: 'v1', plural: 'rayclusters' } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** KubeRay's cluster-name suffix alphabet (k8s.io/apimachinery utilrand.String). */
const RAND_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

// ---------------------------------------------------------------- small helpers

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rand5(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += RAND_ALPHABET[Math.floor(Math.random() * RAND_ALPHABET.length)];
  return s;
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const body = (err as { body?: unknown }).body;
    return body === undefined ? err.message : `${err.message} ${typeof body === 'string' ? body.slice(0, 400) : ''}`;
  }
  return String(err);
}

/**
 * Polls `check` (sync or async) until it returns a value other than
 * undefined/false, or the deadline passes; then throws naming `what`, the
 * elapsed time and what `observe()` says (or the last error).
 */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: { everyMs?: number; observe?: () => string } = {},
): Promise<T> {
  const t0 = performance.now();
  let lastErr = '';
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (err instanceof GiveUp) throw new Error(`gave up waiting for ${what} after ${Math.round(performance.now() - t0)} ms: ${err.message}`);
      lastErr = errText(err);
    }
    const elapsed = performance.now() - t0;
    if (elapsed > timeoutMs) {
      const seen = opts.observe ? opts.observe() : '';
      throw new Error(`timed out after ${Math.round(elapsed)} ms waiting for ${what}${seen ? `; observed: ${seen}` : ''}${lastErr ? `; last error: ${lastErr}` : ''}`);
    }
    await sleep(opts.everyMs ?? 20);
  }
}

/**
 * Retries a call the API server answers 429 (e.g. "storage is (re)initializing"
 * right after a CRD is Established), as controller-runtime requeues.
 */
export async function retry429<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: number }).code !== 429 || performance.now() - t0 > timeoutMs) throw err;
      await sleep(250);
    }
  }
}

/** Thrown by an `until` check: stop waiting at once (the awaited thing can no longer happen). */
export class GiveUp extends Error {}

// ---------------------------------------------------------------- the player

export interface PlayerOptions {
  readonly server: ApiServer;
  readonly namespace: string;
  /** RayService name (≤ 47 characters, DNS-1035). */
  readonly name: string;
  /** spec.rayClusterDeletionDelaySeconds (KubeRay's default is 60). */
  readonly deletionDelaySeconds: number;
  /** Worker pods per cluster (default 2); the head is a serve pod too (ray.io/serve=true once healthy). */
  readonly workers?: number;
  readonly serveConfigV2?: string;
  /** Behaviour of the simulated apps (latency, SSE tokens). */
  readonly apps?: Record<string, { latency_ms?: number; tokens?: number; token_interval_ms?: number }>;
  /** Labels of the RayService object. */
  readonly labels?: Record<string, string>;
  /** Prints each step (default: console.log with a "# player" prefix). */
  readonly log?: (line: string) => void;
}

export interface PlayedPod {
  readonly name: string;
  readonly ip: string;
  readonly nodeType: 'head' | 'worker';
  readonly servePort: number;
  /** Head only. */
  readonly dashboardPort: number | null;
  ready: boolean;
  /** The ray.io/serve label. */
  serve: boolean;
}

export interface PlayedCluster {
  readonly name: string;
  readonly sim: Sim;
  readonly pods: PlayedPod[];
  /** uid of the RayCluster object. */
  readonly uid: string;
  /** performance.now() when its pods were deleted, or null. */
  deletedAt: number | null;
  /** Resolves (with deletedAt) once deleteCluster() finished; rejects if the deletion failed. */
  readonly deleted: Promise<number>;
  resolveDeleted(at: number): void;
  rejectDeleted(err: unknown): void;
  deletionTimer: NodeJS.Timeout | null;
}

type AppState = 'NOT_STARTED' | 'DEPLOYING' | 'RUNNING' | 'DEPLOY_FAILED' | 'UNHEALTHY' | 'DELETING';

interface ServiceStatus {
  rayClusterName?: string;
  applicationStatuses?: Record<string, { status: AppState; message?: string; serveDeploymentStatuses?: Record<string, { status: string; message?: string }> }>;
  rayClusterStatus?: Record<string, unknown>;
}

interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface RayServiceObject extends KubernetesObject {
  spec?: Record<string, unknown>;
  status?: {
    activeServiceStatus?: ServiceStatus;
    pendingServiceStatus?: ServiceStatus;
    conditions?: Condition[];
    numServeEndpoints?: number;
    serviceStatus?: string;
    observedGeneration?: number;
    lastUpdateTime?: string;
  };
}

export class KubeRayPlayer {
  readonly ns: string;
  readonly name: string;
  readonly deletionDelaySeconds: number;
  /** 127.<a>.<b>: this player's loopback block; pods get .2, .3, ... */
  readonly block: string;
  readonly clusters = new Map<string, PlayedCluster>();
  /** What KubeRay's status says now. */
  active: string | null = null;
  pending: string | null = null;
  /** Every step, with performance.now(). */
  readonly timeline: Array<{ at: number; what: string }> = [];
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly #opts: PlayerOptions;
  readonly #appStatus = new Map<string, Record<string, AppState>>();
  readonly #conditions = new Map<string, Condition>();
  #nextHost = 2;
  #revision = 0;
  #uid = '';

  constructor(opts: PlayerOptions) {
    this.#opts = opts;
    this.ns = opts.namespace;
    this.name = opts.name;
    this.deletionDelaySeconds = opts.deletionDelaySeconds;
    // 127.0.0.0/16 is left to other tests (127.0.0.1, 127.0.0.2 ...).
    this.block = `127.${10 + Math.floor(Math.random() * 240)}.${Math.floor(Math.random() * 256)}`;
    this.custom = opts.server.kc.makeApiClient(CustomObjectsApi);
    this.core = opts.server.kc.makeApiClient(CoreV1Api);
  }

  #log(what: string): void {
    const at = performance.now();
    this.timeline.push({ at, what });
    (this.#opts.log ?? ((l: string) => console.log(`# player ${this.name}: ${l}`)))(what);
  }

  /** A fresh cluster name as KubeRay ≥ 1.4 makes them: <rs>-<5 random>. */
  newClusterName(): string {
    for (;;) {
      const n = `${this.name}-${rand5()}`;
      if (!this.clusters.has(n)) return n;
    }
  }

  sim(cluster: string): SimCluster {
    return this.#cluster(cluster).sim.cluster(cluster);
  }

  #cluster(name: string): PlayedCluster {
    const c = this.clusters.get(name);
    if (!c) throw new Error(`player: no cluster ${name} (known: ${[...this.clusters.keys()].join(', ') || 'none'})`);
    return c;
  }

  // ------------------------------------------------------------ RayService

  #rayClusterConfig(): Record<string, unknown> {
    const env = [{ name: 'SERVE_REVISION', value: String(this.#revision) }];
    return {
      rayVersion: '2.53.0',
      headGroupSpec: {
        rayStartParams: {},
        template: { spec: { containers: [{ name: 'ray-head', image: 'rayproject/ray:2.53.0', env, resources: { limits: { cpu: '2', memory: '4Gi' }, requests: { cpu: '1', memory: '2Gi' } } }] } },
      },
      workerGroupSpecs: [
        {
          groupName: 'small-group',
          replicas: this.#opts.workers ?? 2,
          minReplicas: 1,
          maxReplicas: 5,
          rayStartParams: {},
          template: { spec: { containers: [{ name: 'ray-worker', image: 'rayproject/ray:2.53.0', env, resources: { limits: { cpu: '1', memory: '2Gi' }, requests: { cpu: '500m', memory: '1Gi' } } }] } },
        },
      ],
    };
  }

  /** Creates the RayService (ray.io/v1) with serveConfigV2 and rayClusterDeletionDelaySeconds. */
  async createRayService(): Promise<RayServiceObject> {
    const body: RayServiceObject = {
      apiVersion: 'ray.io/v1',
      kind: 'RayService',
      metadata: { name: this.name, namespace: this.ns, ...(this.#opts.labels ? { labels: this.#opts.labels } : {}) },
      spec: {
        serveConfigV2: this.#opts.serveConfigV2 ?? SERVE_CONFIG_V2,
        rayClusterDeletionDelaySeconds: this.deletionDelaySeconds,
        rayClusterConfig: this.#rayClusterConfig(),
      },
    };
    const created = (await retry429(() => this.custom.createNamespacedCustomObject({ ...RS_API, namespace: this.ns, body }))) as RayServiceObject;
    this.#uid = created.metadata?.uid ?? '';
    this.#log(`RayService created (generation ${created.metadata?.generation})`);
    return created;
  }

  async getRayService(): Promise<RayServiceObject> {
    return (await retry429(() => this.custom.getNamespacedCustomObject({ ...RS_API, namespace: this.ns, name: this.name }))) as RayServiceObject;
  }

  /** A rayClusterConfig change (new template revision): KubeRay answers it with a new pending cluster. */
  async #changeClusterSpec(): Promise<number> {
    this.#revision++;
    const r = (await this.custom.patchNamespacedCustomObject(
      { ...RS_API, namespace: this.ns, name: this.name, body: { spec: { rayClusterConfig: this.#rayClusterConfig() } } },
      mergePatch,
    )) as RayServiceObject;
    return r.metadata?.generation ?? 0;
  }

  #condition(type: string, status: Condition['status'], reason: string, message: string, generation: number): Condition {
    const prev = this.#conditions.get(type);
    const c: Condition = {
      type,
      status,
      reason,
      message,
      observedGeneration: generation,
      lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    this.#conditions.set(type, c);
    return c;
  }

  #serviceStatus(cluster: string | null, withApps: boolean): ServiceStatus {
    if (cluster === null) return {};
    const c = this.clusters.get(cluster);
    const s: ServiceStatus = { rayClusterName: cluster };
    const apps = this.#appStatus.get(cluster);
    if (withApps && apps) {
      s.applicationStatuses = Object.fromEntries(
        Object.entries(apps).map(([app, st]) => [
          app,
          {
            status: st,
            ...(st === 'RUNNING' ? {} : { message: st === 'DEPLOYING' ? 'Deploying app' : `app is ${st}` }),
            serveDeploymentStatuses: Object.fromEntries(
              (DEPLOYMENTS[app] ?? []).map((d) => [d, { status: st === 'RUNNING' ? 'HEALTHY' : st === 'DEPLOYING' ? 'UPDATING' : 'UNHEALTHY' }]),
            ),
          },
        ]),
      );
    }
    if (c) {
      const head = c.pods.find((p) => p.nodeType === 'head');
      const workers = c.pods.filter((p) => p.nodeType === 'worker');
      s.rayClusterStatus = {
        state: 'ready',
        desiredWorkerReplicas: workers.length,
        availableWorkerReplicas: workers.filter((p) => p.ready).length,
        readyWorkerReplicas: workers.filter((p) => p.ready).length,
        minWorkerReplicas: 1,
        maxWorkerReplicas: 5,
        ...(head ? { head: { podIP: head.ip, podName: head.name, serviceIP: head.ip, serviceName: `${cluster}-head-svc` } } : {}),
      };
    }
    return s;
  }

  /** Ready serve pods of a cluster (what KubeRay counts from the serve Service's endpoints). */
  readyServePods(cluster: string | null): number {
    if (cluster === null) return 0;
    const c = this.clusters.get(cluster);
    return c ? c.pods.filter((p) => p.ready && p.serve).length : 0;
  }

  /**
   * Writes the whole status through the status subresource, as KubeRay's
   * Status().Update() does (GET, then PUT with the resourceVersion read).
   * `activeApps`: whether activeServiceStatus carries applicationStatuses
   * (KubeRay drops them while a pending cluster exists).
   */
  async writeStatus(what: string): Promise<void> {
    const endpoints = this.readyServePods(this.active);
    for (let attempt = 0; ; attempt++) {
      const obj = await this.getRayService();
      const gen = obj.metadata?.generation ?? 1;
      const upgrading = this.active !== null && this.pending !== null;
      const conditions = [
        endpoints > 0
          ? this.#condition('Ready', 'True', 'NonZeroServeEndpoints', 'Number of serve endpoints is greater than 0', gen)
          : this.active === null
            ? this.#condition('Ready', 'False', 'Initializing', 'RayService is initializing', gen)
            : this.#condition('Ready', 'False', 'ZeroServeEndpoints', 'Number of serve endpoints dropped to 0', gen),
        this.active === null
          ? this.#condition('UpgradeInProgress', 'Unknown', 'NoActiveCluster', 'The active cluster is missing', gen)
          : upgrading
            ? this.#condition('UpgradeInProgress', 'True', 'BothActivePendingClustersExist', 'Both active and pending Ray clusters exist', gen)
            : this.#condition('UpgradeInProgress', 'False', 'NoPendingCluster', 'Active Ray cluster exists and no pending Ray cluster', gen),
      ];
      obj.status = {
        activeServiceStatus: this.#serviceStatus(this.active, !upgrading),
        pendingServiceStatus: this.#serviceStatus(this.pending, true),
        conditions,
        numServeEndpoints: endpoints,
        serviceStatus: endpoints > 0 ? 'Running' : '',
        observedGeneration: gen,
        lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      };
      try {
        await this.custom.replaceNamespacedCustomObjectStatus({ ...RS_API, namespace: this.ns, name: this.name, body: obj });
        this.#log(`status: ${what} (active=${this.active ?? '-'} pending=${this.pending ?? '-'} endpoints=${endpoints})`);
        return;
      } catch (err) {
        // 409: someone changed the object between GET and PUT (a spec patch); KubeRay requeues.
        if ((err as { code?: number }).code !== 409 || attempt >= 5) throw err;
      }
    }
  }

  /**
   * Serve's view of the cluster's apps: what its dashboard reports (the sim) and
   * what KubeRay copies into applicationStatuses at its next status write.
   */
  markApps(cluster: string, status: AppState | Record<string, AppState>): Record<string, AppState> {
    const all = typeof status === 'string' ? Object.fromEntries(Object.keys(DEPLOYMENTS).map((a) => [a, status])) : status;
    this.#appStatus.set(cluster, { ...(this.#appStatus.get(cluster) ?? {}), ...all });
    const sc = this.sim(cluster);
    for (const [app, st] of Object.entries(all)) sc.setAppStatus(app, st);
    return all;
  }

  /** KubeRay polls the dashboard and writes applicationStatuses (every app of the serve config). */
  async setAppStatuses(cluster: string, status: AppState | Record<string, AppState>): Promise<void> {
    const all = this.markApps(cluster, status);
    await this.writeStatus(`${cluster} apps ${JSON.stringify(all)}`);
  }

  // ------------------------------------------------------------ clusters and pods

  #nextIp(): string {
    if (this.#nextHost > 254) throw new Error(`player: loopback block ${this.block}.0/24 exhausted`);
    return `${this.block}.${this.#nextHost++}`;
  }

  /**
   * The RayCluster, its simulated Ray nodes and its pods: head (ray.io/serve=false
   * until its proxy answers /-/healthz) and workers (ray.io/serve=true). Pods go
   * Pending → Running with their podIP (Ready=False) → Ready=True when `readyPods`.
   */
  async startCluster(name: string, opts: { readyPods?: boolean } = {}): Promise<PlayedCluster> {
    if (this.clusters.has(name)) throw new Error(`player: cluster ${name} exists`);
    const workers = this.#opts.workers ?? 2;
    const ips = Array.from({ length: 1 + workers }, () => this.#nextIp());
    const parsed = parseSimConfig(
      {
        clusters: [
          {
            name,
            proxies: ips.map((ip) => `${ip}:0`),
            dashboard: `${ips[0]}:0`,
            serve_config: this.#opts.serveConfigV2 ?? SERVE_CONFIG_V2,
            ...(this.#opts.apps ? { apps: this.#opts.apps } : {}),
          },
        ],
      },
      { file: `${name}.sim.yaml`, baseDir: process.cwd() },
    );
    if (!parsed.ok) throw new Error(`sim config: ${JSON.stringify(parsed.issues)}`);
    const sim = await startSim(parsed.config, { control: false });
    try {
      return await this.#createClusterObjects(name, sim, ips, opts);
    } catch (err) {
      if (!this.clusters.has(name)) await sim.close();
      throw err;
    }
  }

  async #createClusterObjects(name: string, sim: Sim, ips: readonly string[], opts: { readyPods?: boolean }): Promise<PlayedCluster> {
    const sc = sim.cluster(name);
    const port = (url: string): number => Number(new URL(url).port);

    // KubeRay: the RayCluster, owned by the RayService.
    const rc = (await retry429(() => this.custom.createNamespacedCustomObject({
      ...RC_API,
      namespace: this.ns,
      body: {
        apiVersion: 'ray.io/v1',
        kind: 'RayCluster',
        metadata: {
          name,
          labels: { 'ray.io/originated-from-cr-name': this.name, 'ray.io/originated-from-crd': 'RayService' },
          annotations: { 'ray.io/kuberay-version': 'v1.5.0', 'ray.io/num-worker-groups': '1' },
          ...(this.#uid ? { ownerReferences: [{ apiVersion: 'ray.io/v1', kind: 'RayService', name: this.name, uid: this.#uid, controller: true, blockOwnerDeletion: true }] } : {}),
        },
        spec: this.#rayClusterConfig(),
      },
    }))) as KubernetesObject;
    const uid = rc.metadata?.uid ?? '';

    let resolveDeleted!: (at: number) => void;
    let rejectDeleted!: (err: unknown) => void;
    const deleted = new Promise<number>((res, rej) => {
      resolveDeleted = res;
      rejectDeleted = rej;
    });
    deleted.catch(() => {});
    const pods: PlayedPod[] = ips.map((ip, i) => ({
      name: i === 0 ? `${name}-head-${rand5()}` : `${name}-small-group-worker-${rand5()}`,
      ip,
      nodeType: i === 0 ? 'head' : 'worker',
      servePort: port(sc.proxyUrls()[i]!),
      dashboardPort: i === 0 ? port(sc.dashboardUrl!) : null,
      ready: false,
      serve: i !== 0,
    }));
    const cluster: PlayedCluster = { name, sim, pods, uid, deletedAt: null, deleted, resolveDeleted, rejectDeleted, deletionTimer: null };
    this.clusters.set(name, cluster);
    // Serve has not deployed the config yet (the sim's route table is fixed: its apps show DEPLOYING).
    this.markApps(name, 'DEPLOYING');

    for (const p of pods) await this.core.createNamespacedPod({ namespace: this.ns, body: this.#podManifest(cluster, p) });
    this.#log(`cluster ${name}: RayCluster and ${pods.length} pods created (Pending) on ${ips.join(', ')}`);
    // kubelet: sandbox up, containers started; readiness probes not passed yet.
    await Promise.all(pods.map((p) => this.#writePodStatus(p)));
    this.#log(`cluster ${name}: pods Running, not Ready`);
    if (opts.readyPods) await this.setPodsReady(name, true);
    return cluster;
  }

  #podManifest(c: PlayedCluster, p: PlayedPod): V1Pod {
    const head = p.nodeType === 'head';
    const ports = head
      ? [
          { name: 'gcs-server', containerPort: 6379, protocol: 'TCP' },
          { name: 'dashboard', containerPort: p.dashboardPort!, protocol: 'TCP' },
          { name: 'client', containerPort: 10001, protocol: 'TCP' },
          { name: 'serve', containerPort: p.servePort, protocol: 'TCP' },
          { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
        ]
      : [
          { name: 'serve', containerPort: p.servePort, protocol: 'TCP' },
          { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
        ];
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: p.name,
        namespace: this.ns,
        labels: {
          'ray.io/cluster': c.name,
          'ray.io/node-type': p.nodeType,
          'ray.io/group': head ? 'headgroup' : 'small-group',
          'ray.io/identifier': `${c.name}-${p.nodeType}`,
          'ray.io/is-ray-node': 'yes',
          'ray.io/serve': String(p.serve),
          'app.kubernetes.io/name': 'kuberay',
          'app.kubernetes.io/created-by': 'kuberay-operator',
        },
        ownerReferences: [{ apiVersion: 'ray.io/v1', kind: 'RayCluster', name: c.name, uid: c.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        nodeName: `node-${p.ip.replaceAll('.', '-')}`,
        containers: [{ name: head ? 'ray-head' : 'ray-worker', image: 'rayproject/ray:2.53.0', ports }],
      },
    };
  }

  /** kubelet: phase Running, podIP, conditions and container readiness as `p.ready` says. */
  async #writePodStatus(p: PlayedPod): Promise<void> {
    const now = new Date();
    const ready = p.ready ? 'True' : 'False';
    await this.core.patchNamespacedPodStatus(
      {
        name: p.name,
        namespace: this.ns,
        body: {
          status: {
            phase: 'Running',
            hostIP: p.ip,
            podIP: p.ip,
            podIPs: [{ ip: p.ip }],
            startTime: now,
            conditions: [
              { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
              { type: 'Initialized', status: 'True', lastTransitionTime: now },
              { type: 'ContainersReady', status: ready, lastTransitionTime: now },
              { type: 'Ready', status: ready, lastTransitionTime: now },
            ],
            containerStatuses: [
              {
                name: p.nodeType === 'head' ? 'ray-head' : 'ray-worker',
                image: 'rayproject/ray:2.53.0',
                imageID: '',
                ready: p.ready,
                started: true,
                restartCount: 0,
                state: { running: { startedAt: now } },
              },
            ],
          },
        },
      },
      mergePatch,
    );
  }

  /**
   * kubelet: the pod's Ready condition. For the head, KubeRay then checks its
   * proxy (GET http://podIP:serve/-/healthz, 2 s timeout) and sets
   * ray.io/serve=true|false (rayservice_controller.go updateHeadPodServeLabel).
   */
  async setPodReady(cluster: string, pod: string | number, ready: boolean): Promise<void> {
    const c = this.#cluster(cluster);
    const p = typeof pod === 'number' ? c.pods[pod] : c.pods.find((x) => x.name === pod);
    if (!p) throw new Error(`player: cluster ${cluster} has no pod ${pod}`);
    p.ready = ready;
    await this.#writePodStatus(p);
    if (p.nodeType === 'head') await this.#updateHeadServeLabel(p);
  }

  /** All pods of the cluster Ready (or not), in parallel. */
  async setPodsReady(cluster: string, ready: boolean): Promise<void> {
    const c = this.#cluster(cluster);
    await Promise.all(c.pods.map((p) => this.setPodReady(cluster, p.name, ready)));
    this.#log(`cluster ${cluster}: pods ${ready ? 'Ready' : 'not Ready'}`);
  }

  async #updateHeadServeLabel(p: PlayedPod): Promise<void> {
    let healthy = false;
    try {
      const r = await fetch(`http://${p.ip}:${p.servePort}/-/healthz`, { signal: AbortSignal.timeout(2000) });
      healthy = r.status === 200 && (await r.text()).includes('success');
    } catch {
      healthy = false;
    }
    if (healthy === p.serve) return;
    p.serve = healthy;
    await this.core.patchNamespacedPod({ name: p.name, namespace: this.ns, body: { metadata: { labels: { 'ray.io/serve': String(healthy) } } } }, mergePatch);
  }

  // ------------------------------------------------------------ the switchover

  /**
   * First deployment of a new RayService: pending cluster, pods Ready, apps
   * DEPLOYING → RUNNING, promotion. Returns the cluster name.
   */
  async deployFirstCluster(): Promise<string> {
    const name = this.newClusterName();
    this.pending = name;
    await this.writeStatus(`first cluster ${name} pending`);
    await this.startCluster(name, { readyPods: true });
    await this.setAppStatuses(name, 'DEPLOYING');
    // GET → every app RUNNING, and promotion in the same reconcile (one status write).
    this.markApps(name, 'RUNNING');
    await this.promote();
    return name;
  }

  /**
   * §2.4 step 1: the spec changes (rayClusterConfig), KubeRay names a pending
   * cluster and drops the active cluster's applicationStatuses. Returns its name.
   * Nothing exists for it yet: call startCluster().
   */
  async beginUpgrade(): Promise<string> {
    if (this.active === null) throw new Error('player: no active cluster to upgrade');
    const gen = await this.#changeClusterSpec();
    const name = this.newClusterName();
    this.pending = name;
    await this.writeStatus(`spec changed (generation ${gen}); pending cluster ${name}`);
    return name;
  }

  /**
   * §2.4 step 4: active := pending (with its applicationStatuses), pending := {}.
   * Schedules the old active cluster's deletion rayClusterDeletionDelaySeconds
   * from now (KubeRay keeps that timer in memory). Returns the old active cluster.
   */
  async promote(): Promise<string | null> {
    if (this.pending === null) throw new Error('player: nothing pending to promote');
    const old = this.active;
    this.active = this.pending;
    this.pending = null;
    await this.writeStatus(`promoted ${this.active}${old ? ` (was ${old})` : ''}`);
    if (old !== null) this.scheduleDeletion(old);
    return old;
  }

  /**
   * Spec change mid-upgrade: a newer pending cluster replaces the current
   * pending one without any promotion (seen with the real operator); the
   * abandoned cluster is deleted after the deletion delay. Starts the new
   * cluster (pods Running, not Ready). Returns { abandoned, pending }.
   */
  async replacePending(): Promise<{ abandoned: string; pending: string }> {
    const abandoned = this.pending;
    if (abandoned === null) throw new Error('player: no pending cluster to replace');
    const gen = await this.#changeClusterSpec();
    const name = this.newClusterName();
    this.pending = name;
    await this.writeStatus(`spec changed again (generation ${gen}); pending ${abandoned} replaced by ${name}`);
    this.scheduleDeletion(abandoned);
    await this.startCluster(name);
    return { abandoned, pending: name };
  }

  /** Deletes `cluster` rayClusterDeletionDelaySeconds from now (await player.clusters.get(c).deleted). */
  scheduleDeletion(cluster: string): void {
    const c = this.#cluster(cluster);
    if (c.deletionTimer !== null || c.deletedAt !== null) return;
    this.#log(`cluster ${cluster}: deletion in ${this.deletionDelaySeconds} s`);
    c.deletionTimer = setTimeout(() => {
      c.deletionTimer = null;
      this.deleteCluster(cluster).catch((err) => {
        this.#log(`cluster ${cluster}: deletion failed: ${errText(err)}`);
        c.rejectDeleted(err);
      });
    }, this.deletionDelaySeconds * 1000);
  }

  /**
   * KubeRay deletes the RayCluster; the garbage collector its pods (gracePeriodSeconds 0:
   * no kubelet here, so only a forced delete is immediate); the Ray nodes die (sim stopped).
   */
  async deleteCluster(name: string): Promise<number> {
    const c = this.#cluster(name);
    if (c.deletionTimer !== null) clearTimeout(c.deletionTimer);
    c.deletionTimer = null;
    if (c.deletedAt !== null) return c.deletedAt;
    try {
      await this.custom.deleteNamespacedCustomObject({ ...RC_API, namespace: this.ns, name });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
    await Promise.all(
      c.pods.map(async (p) => {
        try {
          await this.core.deleteNamespacedPod({ name: p.name, namespace: this.ns, gracePeriodSeconds: 0 });
        } catch (err) {
          if ((err as { code?: number }).code !== 404) throw err;
        }
      }),
    );
    await c.sim.close();
    c.deletedAt = performance.now();
    this.#log(`cluster ${name}: RayCluster and pods deleted, Ray nodes stopped`);
    c.resolveDeleted(c.deletedAt);
    return c.deletedAt;
  }

  /** Kubernetes Events about this RayService (core/v1, involvedObject = the RayService). */
  async events(): Promise<CoreV1Event[]> {
    const r = await this.core.listNamespacedEvent({ namespace: this.ns, fieldSelector: `involvedObject.kind=RayService,involvedObject.name=${this.name}` });
    return r.items;
  }

  /** Stops every timer and simulated node (API objects stay: the server is stopped by the test). */
  async stopAll(): Promise<void> {
    for (const c of this.clusters.values()) {
      if (c.deletionTimer !== null) clearTimeout(c.deletionTimer);
      c.deletionTimer = null;
    }
    await Promise.all([...this.clusters.values()].map((c) => c.sim.close()));
  }
}

// ---------------------------------------------------------------- the gateway

export interface K8sGatewayOptions {
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly rayservices?: readonly string[];
  readonly selector?: string;
  readonly upgrade?: 'follow' | 'rollout' | 'hold';
  /** Default: a file in stateDir. */
  readonly lastKnownGood?: string;
  /** Default: a fresh temp dir (removed by close()). */
  readonly stateDir?: string;
  readonly applications?: Record<string, unknown>;
  /** More top-level keys. */
  readonly extra?: Record<string, unknown>;
  /** kubernetes.gateway_api (Gateway API mode). */
  readonly gatewayApi?: Record<string, unknown>;
  /** More keys of `kubernetes` (e.g. state_configmap, leader_lease, lease_duration). */
  readonly kubernetesExtra?: Record<string, unknown>;
}

export interface K8sGateway {
  readonly gw: Gateway;
  readonly config: GatewayConfig;
  readonly logs: LogRecorder;
  readonly stateDir: string;
  readonly lastKnownGood: string;
  /** performance.now() before startGateway() was called, and when it returned. */
  readonly startedAt: number;
  readonly startReturnedAt: number;
  status(): Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, any> }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Audit events (GET /api/v1/events), oldest first. */
  events(): Promise<Array<Record<string, any>>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Warn and error log lines (for failure messages). */
  problems(max?: number): string;
  close(opts?: { keepStateDir?: boolean }): Promise<void>;
}

/** The gateway config document for kubernetes mode (object form of the YAML). */
export function k8sGatewayDoc(o: K8sGatewayOptions & { stateDir: string; lastKnownGood: string }): Record<string, unknown> {
  const kubernetes: Record<string, unknown> = {
    namespace: o.namespace,
    kubeconfig: o.kubeconfig,
    upgrade: o.upgrade ?? 'follow',
    last_known_good: o.lastKnownGood,
  };
  if (o.gatewayApi !== undefined) kubernetes['gateway_api'] = o.gatewayApi;
  Object.assign(kubernetes, o.kubernetesExtra ?? {});
  if (o.selector !== undefined) kubernetes['selector'] = o.selector;
  else kubernetes['rayservices'] = [...(o.rayservices ?? [])];
  return {
    source: 'kubernetes',
    kubernetes,
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    state_dir: o.stateDir,
    ...(o.applications ? { applications: o.applications } : {}),
    health: { probe_interval: '200ms', probe_timeout: '2s' },
    dashboard_poll_interval: '200ms',
    access_log: { sample_rate: 0 },
    shutdown: { drain_delay: '0s', grace_period: '2s' },
    ...(o.extra ?? {}),
  };
}

/** Starts a gateway in this process, in kubernetes mode (startGateway from src/main.ts). */
export async function startK8sGateway(o: K8sGatewayOptions): Promise<K8sGateway> {
  const ownDir = o.stateDir === undefined;
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'sg-k8s-state-'));
  const lastKnownGood = o.lastKnownGood ?? join(stateDir, 'lkg.json');
  const logs = new LogRecorder();
  let config: GatewayConfig;
  let gw: Gateway;
  const startedAt = performance.now();
  try {
    config = buildConfig(k8sGatewayDoc({ ...o, stateDir, lastKnownGood }));
    gw = await startGateway({ config, logger: logs, adminToken: ADMIN_TOKEN, watch: false });
  } catch (err) {
    if (ownDir) rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  const startReturnedAt = performance.now();
  const admin = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${gw.adminUrl}${path}`, {
      method,
      headers,
      signal: AbortSignal.timeout(10_000),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      /* text */
    }
    return { status: res.status, json: json as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  return {
    gw,
    config,
    logs,
    stateDir,
    lastKnownGood,
    startedAt,
    startReturnedAt,
    admin,
    async status() {
      const r = await admin('GET', '/api/v1/status');
      if (r.status !== 200) throw new Error(`GET /api/v1/status: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      return r.json;
    },
    async events() {
      const r = await admin('GET', '/api/v1/events?limit=1000');
      if (r.status !== 200) throw new Error(`GET /api/v1/events: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      const list = (r.json['events'] ?? []) as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
      return [...list].sort((a, b) => Number(a['id']) - Number(b['id']));
    },
    problems(max = 15) {
      return logs.lines
        .filter((l) => l.level !== 'info')
        .slice(-max)
        .map((l) => `${l.level} ${l.msg ?? ''} ${JSON.stringify(l.obj).slice(0, 300)}`)
        .join('\n');
    },
    async close(opts = {}) {
      await gw.close();
      if (ownDir && !opts.keepStateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- status API views

/* eslint-disable @typescript-eslint/no-explicit-any */
/** status.kubernetes.rayservices[name] (undefined when absent). */
export function rsStatus(status: Record<string, any>, rs: string): Record<string, any> | undefined {
  const list = (status['kubernetes']?.['rayservices'] ?? []) as Array<Record<string, any>>;
  return list.find((r) => r['name'] === rs);
}

/** The clusters the status API lists for a RayService: name → { role, ready_endpoints, ... }. */
export function rsClusters(status: Record<string, any>, rs: string): Map<string, Record<string, any>> {
  const r = rsStatus(status, rs);
  return new Map(((r?.['clusters'] ?? []) as Array<Record<string, any>>).map((c) => [String(c['name']), c]));
}

/** apps[app].weights from the status API ({} when the app is unknown). */
export function appWeights(status: Record<string, any>, app: string): Record<string, number> {
  const a = ((status['apps'] ?? []) as Array<Record<string, any>>).find((x) => x['name'] === app);
  return (a?.['weights'] ?? {}) as Record<string, number>;
}

export function appRollout(status: Record<string, any>, app: string): Record<string, any> | null {
  const a = ((status['apps'] ?? []) as Array<Record<string, any>>).find((x) => x['name'] === app);
  return (a?.['rollout'] ?? null) as Record<string, any> | null;
}

/** Every app's rollout to `to` succeeded and the app is 100 % there. */
export function rolloutsSucceeded(apps: readonly string[], to: string): (s: Record<string, any>) => boolean { // eslint-disable-line @typescript-eslint/no-explicit-any
  return (s) => apps.every((a) => appWeights(s, a)[to] === 100 && appRollout(s, a)?.['phase'] === 'succeeded');
}

/** A reason to stop waiting for rolloutsSucceeded: an app moved without a rollout, or its rollout ended otherwise. */
export function rolloutWentWrong(apps: readonly string[], to: string): (s: Record<string, any>) => string | null { // eslint-disable-line @typescript-eslint/no-explicit-any
  return (s) => {
    for (const a of apps) {
      const r = appRollout(s, a);
      if (appWeights(s, a)[to] === 100 && r === null) return `${a} moved to ${to} 100 % at once, without a rollout`;
      if (r !== null && r['phase'] !== 'progressing' && r['phase'] !== 'succeeded') return `the ${a} rollout is ${r['phase']}: ${r['reason']}`;
    }
    return null;
  };
}

/**
 * What a blue→green switch under load looked like: `seenAt` when the gateway's
 * status showed the switch, `promoteAt` when KubeRay promoted green.
 */
export function switchOutcomes(load: Load, o: { blue: string; green: string; seenAt: number; promoteAt: number }) {
  const { blue, green, seenAt, promoteAt } = o;
  return {
    failed: load.failures(),
    /** Started on the old cluster after the gateway showed the switch. */
    lateOld: load.outcomes.filter((x) => x.cluster === blue && x.start > seenAt),
    /** Answered by the new cluster before KubeRay promoted it. */
    earlyNew: load.outcomes.filter((x) => x.cluster === green && x.end < promoteAt),
    /** SSE streams on the old cluster still open at the promotion. */
    streamsAtSwap: load.outcomes.filter((x) => x.kind === 'sse' && x.cluster === blue && x.end > promoteAt),
    afterSwitch: load.outcomes.filter((x) => x.start > seenAt),
  };
}

/** A one-line summary of the kubernetes part of the status (for messages). */
export function k8sSummary(status: Record<string, any> | null): string {
  if (status === null) return 'no status yet';
  const k = status['kubernetes'];
  const apps = ((status['apps'] ?? []) as Array<Record<string, any>>).map((a) => `${a['name']}=${JSON.stringify(a['weights'])}${a['rollout'] ? `(rollout ${a['rollout']['phase']} ${a['rollout']['traffic_routed_percent']}%)` : ''}`);
  return `kubernetes=${JSON.stringify(k)?.slice(0, 800)} apps=[${apps.join(' ')}]`;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/**
 * Polls GET /api/v1/status until `pred` holds; returns the status and the
 * performance.now() at which the answer arrived (the gateway had the state
 * by then). On timeout says what the last status showed.
 */
export async function statusUntil(
  gw: K8sGateway,
  what: string,
  timeoutMs: number,
  pred: (s: Record<string, any>) => boolean, // eslint-disable-line @typescript-eslint/no-explicit-any
  everyMs = 25,
  /** A reason to stop waiting at once (the state reached can no longer lead to `pred`), or null. */
  giveUpIf: (s: Record<string, any>) => string | null = () => null, // eslint-disable-line @typescript-eslint/no-explicit-any
): Promise<{ status: Record<string, any>; at: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  let last: Record<string, any> | null = null; // eslint-disable-line @typescript-eslint/no-explicit-any
  return until(
    what,
    timeoutMs,
    async () => {
      const s = await gw.status();
      const at = performance.now();
      last = s;
      if (pred(s)) return { status: s, at };
      const why = giveUpIf(s);
      if (why !== null) throw new GiveUp(`${why}; ${k8sSummary(s)}`);
      return undefined;
    },
    { everyMs, observe: () => k8sSummary(last) },
  );
}

// ---------------------------------------------------------------- load

export interface Outcome {
  readonly client: number;
  readonly kind: 'json' | 'sse';
  readonly app: 'llm' | 'default';
  /** performance.now() before the request was sent / when it ended. */
  readonly start: number;
  end: number;
  status: number;
  /** x-serve-cluster ('' when absent). */
  cluster: string;
  /** SSE frames received (json: 0). */
  frames: number;
  /** SSE: got `data: [DONE]`. */
  done: boolean;
  ok: boolean;
  error: string | null;
}

export interface LoadOptions {
  readonly clients?: number;
  /** SSE stream: frames and gap (the sim's /llm/stream?tokens=..&interval_ms=..). */
  readonly sseTokens?: number;
  readonly sseIntervalMs?: number;
  /** Every request gives up after this (a hung request is a failure, not a hung test). */
  readonly requestTimeoutMs?: number;
  /** Pause of a client after a failed request (default 20 ms). */
  readonly pauseAfterErrorMs?: number;
}

/**
 * Closed-loop clients, each cycling: JSON GET /llm/..., SSE GET
 * /llm/stream?..., JSON GET /web/... (app `default`). Every outcome is kept,
 * with x-serve-cluster. A JSON answer must come from the app and cluster it
 * names (the sim's body), a stream must carry every frame and [DONE].
 */
export class Load {
  readonly outcomes: Outcome[] = [];
  readonly inFlight = new Set<Outcome>();
  readonly #url: string;
  readonly #o: Required<LoadOptions>;
  #stop = false;
  #clients: Promise<void>[] = [];
  startedAt = 0;

  constructor(url: string, o: LoadOptions = {}) {
    this.#url = url;
    this.#o = {
      clients: o.clients ?? 4,
      sseTokens: o.sseTokens ?? 20,
      sseIntervalMs: o.sseIntervalMs ?? 40,
      requestTimeoutMs: o.requestTimeoutMs ?? 60_000,
      pauseAfterErrorMs: o.pauseAfterErrorMs ?? 20,
    };
  }

  start(): this {
    this.startedAt = performance.now();
    this.#clients = Array.from({ length: this.#o.clients }, (_, i) => this.#client(i));
    return this;
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await Promise.all(this.#clients);
  }

  async #client(id: number): Promise<void> {
    let n = 0;
    while (!this.#stop) {
      const step = n % 3;
      const o = step === 0 ? await this.#json(id, 'llm', `/llm/c${id}/${n}`) : step === 1 ? await this.#sse(id, n) : await this.#json(id, 'default', `/web/c${id}/${n}`);
      n++;
      // A client that got an error does not hammer: it paces its next request (a fast 500 would spin the loop).
      if (!o.ok) await sleep(this.#o.pauseAfterErrorMs);
    }
  }

  #begin(client: number, kind: Outcome['kind'], app: Outcome['app']): Outcome {
    const o: Outcome = { client, kind, app, start: performance.now(), end: 0, status: 0, cluster: '', frames: 0, done: false, ok: false, error: null };
    this.inFlight.add(o);
    return o;
  }

  #finish(o: Outcome): Outcome {
    o.end = performance.now();
    this.inFlight.delete(o);
    this.outcomes.push(o);
    return o;
  }

  async #json(client: number, app: Outcome['app'], path: string): Promise<Outcome> {
    const o = this.#begin(client, 'json', app);
    try {
      const res = await fetch(`${this.#url}${path}`, { signal: AbortSignal.timeout(this.#o.requestTimeoutMs) });
      o.status = res.status;
      o.cluster = res.headers.get('x-serve-cluster') ?? '';
      const text = await res.text();
      if (res.status === 200) {
        const body = JSON.parse(text) as { app?: string; cluster?: string };
        if (body.app !== app) o.error = `answered by app ${body.app}`;
        else if (body.cluster !== o.cluster) o.error = `x-serve-cluster ${o.cluster} but the sim cluster ${body.cluster} answered`;
        else o.ok = true;
      } else {
        o.error = `HTTP ${res.status} ${res.headers.get('x-gateway-flag') ?? ''} ${text.slice(0, 160)}`;
      }
    } catch (err) {
      o.error = errText(err);
    }
    return this.#finish(o);
  }

  async #sse(client: number, n: number): Promise<Outcome> {
    const o = this.#begin(client, 'sse', 'llm');
    const { sseTokens, sseIntervalMs } = this.#o;
    try {
      const res = await fetch(`${this.#url}/llm/stream?tokens=${sseTokens}&interval_ms=${sseIntervalMs}&c=${client}-${n}`, {
        headers: { accept: 'text/event-stream' },
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
      });
      o.status = res.status;
      o.cluster = res.headers.get('x-serve-cluster') ?? '';
      if (res.status !== 200 || res.body === null) {
        o.error = `HTTP ${res.status} ${res.headers.get('x-gateway-flag') ?? ''} ${(await res.text()).slice(0, 160)}`;
      } else {
        const dec = new TextDecoder();
        let buf = '';
        for await (const chunk of res.body) {
          buf += dec.decode(chunk as Uint8Array, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) !== -1) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (frame === 'data: [DONE]') o.done = true;
            else if (frame.startsWith('data: {')) o.frames++;
          }
        }
        o.ok = o.done && o.frames === sseTokens;
        if (!o.ok) o.error = `stream cut: ${o.frames}/${sseTokens} frames, [DONE] ${o.done ? 'seen' : 'missing'}`;
      }
    } catch (err) {
      o.error = `${errText(err)} after ${o.frames} frames`;
    }
    return this.#finish(o);
  }

  failures(): Outcome[] {
    return this.outcomes.filter((o) => !o.ok);
  }

  /** Counts by cluster: { cluster: { json, sse, failed } }. */
  byCluster(list: readonly Outcome[] = this.outcomes): Record<string, { json: number; sse: number; failed: number }> {
    const r: Record<string, { json: number; sse: number; failed: number }> = {};
    for (const o of list) {
      const k = o.cluster || '(none)';
      const e = (r[k] ??= { json: 0, sse: 0, failed: 0 });
      if (o.kind === 'json') e.json++;
      else e.sse++;
      if (!o.ok) e.failed++;
    }
    return r;
  }

  summary(): string {
    const f = this.failures();
    return `${this.outcomes.length} requests (${this.outcomes.filter((o) => o.kind === 'sse').length} SSE streams) by cluster ${JSON.stringify(this.byCluster())}, failed ${f.length}`;
  }
}

/** A short description of some outcomes (for assertion messages). */
export function describeOutcomes(list: readonly Outcome[], t0 = 0, max = 8): string {
  return list
    .slice(0, max)
    .map((o) => `[c${o.client} ${o.kind} ${o.app} ${Math.round(o.start - t0)}..${Math.round(o.end - t0)} ms ${o.status} ${o.cluster || '-'} ${o.error ?? 'ok'}]`)
    .join(' ');
}

// ---------------------------------------------------------------- status trace

export interface StatusSample {
  /** performance.now() when the request was sent and when the answer arrived. */
  readonly sent: number;
  readonly at: number;
  readonly status: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * Polls GET /api/v1/status in the background (one request at a time) and keeps
 * every answer, to see what the gateway did and when: a sample's `sent` is
 * before the state it shows was read, its `at` after.
 */
export class StatusTrace {
  readonly samples: StatusSample[] = [];
  readonly errors: string[] = [];
  #stop = false;
  readonly #done: Promise<void>;

  constructor(g: K8sGateway, everyMs = 25) {
    this.#done = (async () => {
      while (!this.#stop) {
        const sent = performance.now();
        try {
          const status = await g.status();
          this.samples.push({ sent, at: performance.now(), status });
        } catch (err) {
          this.errors.push(errText(err));
        }
        await sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  /** The first sample (after `from`) for which `pred` holds. */
  first(pred: (s: Record<string, any>) => boolean, from = 0): StatusSample | undefined { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.samples.find((x) => x.sent >= from && pred(x.status));
  }

  /** The last sample before `t` for which `pred` holds. */
  lastBefore(t: number, pred: (s: Record<string, any>) => boolean): StatusSample | undefined { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const x = this.samples[i]!;
      if (x.at < t && pred(x.status)) return x;
    }
    return undefined;
  }

  /** The distinct weights an app went through, in order. */
  weightsSeen(app: string): string[] {
    const out: string[] = [];
    for (const x of this.samples) {
      const w = JSON.stringify(appWeights(x.status, app));
      if (out[out.length - 1] !== w) out.push(w);
    }
    return out;
  }
}
