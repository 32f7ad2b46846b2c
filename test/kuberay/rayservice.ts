// RayServices for the KubeRay suite, written with the calls `kubectl apply`
// and `kubectl patch` make, and read back by a watch that timestamps every
// change of their status (so a test knows when KubeRay promoted a cluster).
import { CoreV1Api, CustomObjectsApi, makeInformer, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CoreV1Event, Informer, KubeConfig, KubernetesObject, ObjectCache } from '@kubernetes/client-node';
import { SERVE_CONFIG_V2 } from '../k8s/kuberay-player.ts';

const RS = { group: 'ray.io', version: 'v1', plural: 'rayservices' } as const;
const RC = { group: 'ray.io', version: 'v1', plural: 'rayclusters' } as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface RayServiceSpecOptions {
  readonly name: string;
  /** Bumped by each upgrade: an env var of the head container, so rayClusterConfig's hash changes (NewCluster). */
  readonly generation: number;
  readonly deletionDelaySeconds: number;
  readonly workers?: number;
  readonly serveConfigV2?: string;
  /** upgradeStrategy NewClusterWithIncrementalUpgrade with these clusterUpgradeOptions (and enableInTreeAutoscaling, which KubeRay requires with it). */
  readonly incremental?: { readonly gatewayClassName: string; readonly stepSizePercent: number; readonly intervalSeconds: number; readonly maxSurgePercent: number };
}

/** A RayService like KubeRay's ray-service.sample.yaml: one head, one worker group, the suite's two apps. */
export function rayServiceManifest(o: RayServiceSpecOptions): Record<string, unknown> {
  const workers = o.workers ?? 2;
  return {
    apiVersion: 'ray.io/v1',
    kind: 'RayService',
    metadata: { name: o.name },
    spec: {
      rayClusterDeletionDelaySeconds: o.deletionDelaySeconds,
      serveConfigV2: o.serveConfigV2 ?? SERVE_CONFIG_V2,
      rayClusterConfig: rayClusterConfig(o.generation, workers, o.incremental !== undefined),
      ...(o.incremental ? { upgradeStrategy: { type: 'NewClusterWithIncrementalUpgrade', clusterUpgradeOptions: { ...o.incremental } } } : {}),
    },
  };
}

function rayClusterConfig(generation: number, workers: number, autoscaling = false): Record<string, unknown> {
  return {
    rayVersion: '2.53.0',
    ...(autoscaling ? { enableInTreeAutoscaling: true } : {}),
    headGroupSpec: {
      rayStartParams: {},
      template: {
        spec: {
          containers: [
            {
              name: 'ray-head',
              image: 'rayproject/ray:2.53.0',
              env: [{ name: 'SG_GENERATION', value: String(generation) }],
              resources: { limits: { cpu: '2', memory: '4Gi' }, requests: { cpu: '1', memory: '2Gi' } },
            },
          ],
        },
      },
    },
    workerGroupSpecs: [
      {
        groupName: 'small-group',
        replicas: workers,
        minReplicas: workers,
        maxReplicas: workers,
        rayStartParams: {},
        template: {
          spec: {
            containers: [{ name: 'ray-worker', image: 'rayproject/ray:2.53.0', resources: { limits: { cpu: '1', memory: '2Gi' }, requests: { cpu: '500m', memory: '1Gi' } } }],
          },
        },
      },
    ],
  };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface RayServiceObject extends KubernetesObject {
  spec?: Record<string, any>;
  status?: Record<string, any>;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface StatusChange {
  /** performance.now() when the watch delivered it. */
  readonly at: number;
  readonly active: string | null;
  readonly pending: string | null;
  readonly activeApps: string;
  readonly pendingApps: string;
  readonly ready: string;
  readonly upgrading: string;
  readonly endpoints: number | null;
}

function apps(s: Record<string, { status?: string }> | undefined): string {
  if (!s) return '-';
  return Object.entries(s)
    .map(([k, v]) => `${k}:${v?.status ?? '?'}`)
    .sort()
    .join(',');
}

function condition(st: Record<string, unknown> | undefined, type: string): string {
  const c = ((st?.['conditions'] ?? []) as Array<{ type: string; status: string; reason?: string }>).find((x) => x.type === type);
  return c ? `${c.status}/${c.reason ?? ''}` : '-';
}

/** A RayService the test created, with a watch on it. */
export class RayServiceUnderTest {
  readonly name: string;
  readonly namespace: string;
  readonly changes: StatusChange[] = [];
  generation = 1;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #informer: Informer<RayServiceObject> & ObjectCache<RayServiceObject>;
  readonly #opts: RayServiceSpecOptions;
  #waiters: Array<() => void> = [];

  constructor(kc: KubeConfig, namespace: string, o: Omit<RayServiceSpecOptions, 'generation'>) {
    this.name = o.name;
    this.namespace = namespace;
    this.#opts = { ...o, generation: 1 };
    this.#custom = kc.makeApiClient(CustomObjectsApi);
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#informer = makeInformer<RayServiceObject>(
      kc,
      `/apis/ray.io/v1/namespaces/${namespace}/rayservices`,
      () => this.#custom.listNamespacedCustomObject({ ...RS, namespace }) as never,
    );
    const onChange = (obj: RayServiceObject): void => {
      if (obj.metadata?.name !== o.name) return;
      const st = obj.status ?? {};
      const c: StatusChange = {
        at: performance.now(),
        active: st['activeServiceStatus']?.['rayClusterName'] || null,
        pending: st['pendingServiceStatus']?.['rayClusterName'] || null,
        activeApps: apps(st['activeServiceStatus']?.['applicationStatuses']),
        pendingApps: apps(st['pendingServiceStatus']?.['applicationStatuses']),
        ready: condition(st, 'Ready'),
        upgrading: condition(st, 'UpgradeInProgress'),
        endpoints: typeof st['numServeEndpoints'] === 'number' ? st['numServeEndpoints'] : null,
      };
      const last = this.changes[this.changes.length - 1];
      if (last && JSON.stringify({ ...last, at: 0 }) === JSON.stringify({ ...c, at: 0 })) return;
      this.changes.push(c);
      const w = this.#waiters;
      this.#waiters = [];
      for (const f of w) f();
    };
    this.#informer.on('add', onChange);
    this.#informer.on('update', onChange);
  }

  /** `kubectl create -f` of the manifest, then the watch. */
  async create(): Promise<void> {
    await this.#informer.start();
    await this.#custom.createNamespacedCustomObject({ ...RS, namespace: this.namespace, body: rayServiceManifest(this.#opts) });
  }

  /**
   * `kubectl patch --type=merge` of spec.rayClusterConfig (a new generation:
   * KubeRay starts a new cluster), and optionally of serveConfigV2.
   */
  async upgrade(serveConfigV2?: string): Promise<number> {
    this.generation++;
    const spec: Record<string, unknown> = { rayClusterConfig: rayClusterConfig(this.generation, this.#opts.workers ?? 2, this.#opts.incremental !== undefined) };
    if (serveConfigV2 !== undefined) spec['serveConfigV2'] = serveConfigV2;
    await this.#custom.patchNamespacedCustomObject({ ...RS, namespace: this.namespace, name: this.name, body: { spec } }, mergePatch);
    return this.generation;
  }

  latest(): StatusChange | null {
    return this.changes[this.changes.length - 1] ?? null;
  }

  /** Waits for a status change for which `pred` holds (or one already seen after `from`). */
  async waitFor(what: string, timeoutMs: number, pred: (c: StatusChange) => boolean, from = 0, observe?: () => string): Promise<StatusChange> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.changes.find((c) => c.at >= from && pred(c));
      if (hit) return hit;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for RayService ${this.name}: ${what}\nstatus changes:\n${this.history()}${observe ? `\n${observe()}` : ''}`);
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  history(t0 = this.changes[0]?.at ?? 0): string {
    return this.changes
      .map((c) => `  +${Math.round(c.at - t0)} ms active=${c.active} [${c.activeApps}] pending=${c.pending} [${c.pendingApps}] Ready=${c.ready} UpgradeInProgress=${c.upgrading} endpoints=${c.endpoints}`)
      .join('\n');
  }

  /** RayClusters that exist now (names). */
  async rayClusters(): Promise<string[]> {
    const list = (await this.#custom.listNamespacedCustomObject({ ...RC, namespace: this.namespace })) as { items: KubernetesObject[] };
    return list.items
      .filter((c) => c.metadata?.labels?.['ray.io/originated-from-cr-name'] === this.name)
      .map((c) => c.metadata!.name!)
      .sort();
  }

  /** Pods of a RayCluster that exist now (terminating ones included). */
  async pods(cluster: string): Promise<number> {
    const list = await this.#core.listNamespacedPod({ namespace: this.namespace, labelSelector: `ray.io/cluster=${cluster}` });
    return list.items.length;
  }

  /** Kubernetes Events whose involved object is this RayService. */
  async events(): Promise<CoreV1Event[]> {
    const list = await this.#core.listNamespacedEvent({ namespace: this.namespace, fieldSelector: `involvedObject.name=${this.name}` });
    return list.items;
  }


  async stop(): Promise<void> {
    await this.#informer.stop().catch(() => {});
  }
}
