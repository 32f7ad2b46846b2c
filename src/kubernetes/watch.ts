// Watches the RayServices the config names (or selects) and the Ray pods of
// their namespace with @kubernetes/client-node informers: one list, then a
// watch; a watch that ends reconnects, an expired resourceVersion (410 Gone)
// re-lists, and an error (API server down, 403) restarts the informer with
// exponential back-off. Nothing here decides anything: every change calls
// `onChange`, and the owner rebuilds its view from `rayServices()` / `pods()`.
// It also writes Kubernetes Events on a RayService (the audit trail, mirrored).
import { CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, type Informer, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { KubernetesConfig } from '../config/types.ts';
import type { PodObject, RayServiceObject } from './view.ts';
import type { GatewayClassObject, GatewayObject, HTTPRouteObject, ServiceObject } from './gateway-api.ts';

const RAY = { group: 'ray.io', version: 'v1', plural: 'rayservices' } as const;
const GW = { group: 'gateway.networking.k8s.io', version: 'v1' } as const;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8_000;

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

interface Feed<T extends KubernetesObject> {
  readonly what: string;
  readonly informer: Watched<T>;
  synced: boolean;
  backoffMs: number;
  timer: TimerHandle | null;
  lastError: string | null;
}

export interface WatchStatus {
  /** Both lists arrived at least once. */
  readonly synced: boolean;
  /** Every informer is connected now (no error since its last (re)start). */
  readonly connected: boolean;
  readonly lastError: string | null;
}

export function loadKubeConfig(cfg: KubernetesConfig): KubeConfig {
  const kc = new KubeConfig();
  if (cfg.kubeconfig !== null) kc.loadFromFile(cfg.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

export class KubeWatch {
  readonly #cfg: KubernetesConfig;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #core: CoreV1Api;
  readonly #rs: Feed<KubernetesObject & RayServiceObject>;
  readonly #pods: Feed<KubernetesObject & PodObject>;
  /** Gateway API mode: GatewayClasses, Gateways, HTTPRoutes, Services (null when off). */
  readonly #gw: {
    readonly classes: Feed<KubernetesObject & GatewayClassObject>;
    readonly gateways: Feed<KubernetesObject & GatewayObject>;
    readonly routes: Feed<KubernetesObject & HTTPRouteObject>;
    readonly services: Feed<KubernetesObject & ServiceObject>;
  } | null = null;
  readonly #custom: CustomObjectsApi;
  #stopped = false;
  onChange: () => void = () => {};
  onSynced: () => void = () => {};

  constructor(cfg: KubernetesConfig, kc: KubeConfig, clock: Clock, log: Logger) {
    this.#cfg = cfg;
    this.#clock = clock;
    this.#log = log;
    this.#core = kc.makeApiClient(CoreV1Api);
    const custom = (this.#custom = kc.makeApiClient(CustomObjectsApi));
    const ns = cfg.namespace;
    const rsSelector = cfg.selector ?? undefined;
    const rsInformer = makeInformer<KubernetesObject & RayServiceObject>(
      kc,
      `/apis/${RAY.group}/${RAY.version}/namespaces/${ns}/${RAY.plural}`,
      () => custom.listNamespacedCustomObject({ ...RAY, namespace: ns, ...(rsSelector ? { labelSelector: rsSelector } : {}) }) as never,
      rsSelector,
    );
    // Every Ray pod of the namespace (the label KubeRay puts on all of them): a
    // pod's cluster is one of its labels, so one watch covers every cluster.
    // Gateway API mode needs every pod: a plain Service's selector picks its own.
    const podSelector = cfg.gatewayApi === null ? 'ray.io/cluster' : undefined;
    const podInformer = makeInformer<KubernetesObject & PodObject>(
      kc,
      `/api/v1/namespaces/${ns}/pods`,
      () => this.#core.listNamespacedPod({ namespace: ns, ...(podSelector ? { labelSelector: podSelector } : {}) }) as never,
      podSelector,
    );
    this.#rs = feed('rayservices', rsInformer);
    this.#pods = feed('pods', podInformer);
    for (const f of [this.#rs, this.#pods] as Array<Feed<KubernetesObject>>) this.#wire(f);
    if (cfg.gatewayApi !== null) {
      const gwList = (plural: string) => () => custom.listNamespacedCustomObject({ ...GW, plural, namespace: ns }) as never;
      this.#gw = {
        classes: feed('gatewayclasses', makeInformer(kc, `/apis/${GW.group}/${GW.version}/gatewayclasses`, () => custom.listClusterCustomObject({ ...GW, plural: 'gatewayclasses' }) as never)),
        gateways: feed('gateways', makeInformer(kc, `/apis/${GW.group}/${GW.version}/namespaces/${ns}/gateways`, gwList('gateways'))),
        routes: feed('httproutes', makeInformer(kc, `/apis/${GW.group}/${GW.version}/namespaces/${ns}/httproutes`, gwList('httproutes'))),
        services: feed('services', makeInformer(kc, `/api/v1/namespaces/${ns}/services`, () => this.#core.listNamespacedService({ namespace: ns }) as never)),
      };
      for (const f of this.#gwFeeds()) this.#wire(f);
    }
  }

  #gwFeeds(): Array<Feed<KubernetesObject>> {
    const g = this.#gw;
    return g === null ? [] : ([g.classes, g.gateways, g.routes, g.services] as Array<Feed<KubernetesObject>>);
  }

  /** Gateway API mode: the four feeds listed at least once, and their errors (a missing CRD shows here, not in `status`). */
  gatewayApiStatus(): WatchStatus | null {
    if (this.#gw === null) return null;
    const feeds = this.#gwFeeds();
    return {
      synced: feeds.every((f) => f.synced),
      connected: feeds.every((f) => f.lastError === null),
      lastError: feeds.map((f) => (f.lastError === null ? null : `${f.what}: ${f.lastError}`)).filter((e) => e !== null).join('; ') || null,
    };
  }

  gatewayClasses(): readonly GatewayClassObject[] {
    return this.#gw?.classes.informer.list() ?? [];
  }

  gateways(): readonly GatewayObject[] {
    return this.#gw?.gateways.informer.list() ?? [];
  }

  httpRoutes(): readonly HTTPRouteObject[] {
    return this.#gw?.routes.informer.list() ?? [];
  }

  services(): readonly ServiceObject[] {
    return this.#gw?.services.informer.list() ?? [];
  }

  /**
   * PUT the status subresource of a Gateway API object with the
   * resourceVersion it was read at (a 409 means a newer object is on its way
   * through the watch). Throws the API error.
   */
  async replaceGatewayApiStatus(plural: 'gatewayclasses' | 'gateways' | 'httproutes', obj: KubernetesObject & { status?: unknown }): Promise<void> {
    const name = obj.metadata?.name ?? '';
    const body = { apiVersion: `${GW.group}/${GW.version}`, kind: obj.kind ?? KINDS[plural], metadata: obj.metadata, spec: (obj as { spec?: unknown }).spec, status: obj.status } as object;
    if (plural === 'gatewayclasses') await this.#custom.replaceClusterCustomObjectStatus({ ...GW, plural, name, body });
    else await this.#custom.replaceNamespacedCustomObjectStatus({ ...GW, plural, namespace: this.#cfg.namespace, name, body });
  }

  /** The RayService view's feeds (RayServices, Pods); Gateway API feeds report in gatewayApiStatus(). */
  status(): WatchStatus {
    const feeds = [this.#rs, this.#pods];
    return {
      synced: feeds.every((f) => f.synced),
      connected: feeds.every((f) => f.lastError === null),
      lastError: feeds.map((f) => (f.lastError === null ? null : `${f.what}: ${f.lastError}`)).filter((e) => e !== null).join('; ') || null,
    };
  }

  /** The watched RayServices (those named in the config, or all that the selector picked). */
  rayServices(): readonly RayServiceObject[] {
    const names = this.#cfg.rayservices;
    const all = this.#rs.informer.list();
    return names === null ? all : all.filter((r) => names.includes(r.metadata?.name ?? ''));
  }

  pods(): readonly PodObject[] {
    return this.#pods.informer.list();
  }

  start(): void {
    for (const f of [this.#rs, this.#pods, ...this.#gwFeeds()] as Array<Feed<KubernetesObject>>) this.#start(f);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const f of [this.#rs, this.#pods, ...this.#gwFeeds()] as Array<Feed<KubernetesObject>>) {
      if (f.timer !== null) this.#clock.clearTimeout(f.timer);
      f.timer = null;
      await f.informer.stop().catch(() => {});
    }
  }

  /** A Kubernetes Event on the RayService (best effort: a failure is logged, never thrown). */
  async event(rayservice: { name: string; uid: string }, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date(this.#clock.wallNow());
    try {
      await this.#core.createNamespacedEvent({
        namespace: this.#cfg.namespace,
        body: {
          metadata: { generateName: `${rayservice.name}.`, namespace: this.#cfg.namespace },
          involvedObject: { apiVersion: `${RAY.group}/${RAY.version}`, kind: 'RayService', name: rayservice.name, namespace: this.#cfg.namespace, uid: rayservice.uid },
          type,
          reason,
          message: message.slice(0, 1000),
          source: { component: 'serve-gateway' },
          reportingComponent: 'serve-gateway',
          reportingInstance: process.env['HOSTNAME'] ?? 'serve-gateway',
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.#log.warn({ rayservice: rayservice.name, reason, err: (err as Error).message }, 'could not write a Kubernetes Event');
    }
  }

  #wire(f: Feed<KubernetesObject>): void {
    const changed = () => this.onChange();
    f.informer.on('add', changed);
    f.informer.on('update', changed);
    f.informer.on('delete', changed);
    f.informer.on('connect', () => {
      // (Re)connected: the list that precedes the watch has been applied.
      if (f.lastError !== null) this.#log.info({ what: f.what }, 'kubernetes watch reconnected');
      f.lastError = null;
      f.backoffMs = BACKOFF_MIN_MS;
    });
    f.informer.on('error', (err: unknown) => {
      const message = errorText(err);
      if (f.lastError === null) this.#log.warn({ what: f.what, err: message }, 'kubernetes watch failed; serving from the last known state, retrying with back-off');
      f.lastError = message;
      this.onChange();
      if (this.#stopped) return;
      const delay = f.backoffMs;
      f.backoffMs = Math.min(f.backoffMs * 2, BACKOFF_MAX_MS);
      f.timer = this.#clock.setTimeout(() => {
        f.timer = null;
        this.#start(f);
      }, delay);
      f.timer.unref?.();
    });
  }

  #start(f: Feed<KubernetesObject>): void {
    if (this.#stopped) return;
    f.informer.start().then(
      () => {
        // start() resolves after the list even when it failed ('error' fired, lastError set).
        if (f.lastError !== null) return;
        if (!f.synced) {
          f.synced = true;
          if ((f === this.#rs || f === this.#pods) && this.status().synced) this.onSynced();
        }
        this.onChange();
      },
      () => {
        /* reported through the 'error' callback */
      },
    );
  }
}

const KINDS = { gatewayclasses: 'GatewayClass', gateways: 'Gateway', httproutes: 'HTTPRoute' } as const;

function feed<T extends KubernetesObject>(what: string, informer: Watched<T>): Feed<T> {
  return { what, informer, synced: false, backoffMs: BACKOFF_MIN_MS, timer: null, lastError: null };
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: number | string; statusCode?: number }).statusCode ?? (err as Error & { code?: number | string }).code;
    return code === undefined ? err.message : `${code} ${err.message}`.slice(0, 300);
  }
  return String(err).slice(0, 300);
}

/** One list of the RayServices and Ray pods (for `validate --live`); throws when the API server refuses or is unreachable. */
export async function listOnce(cfg: KubernetesConfig): Promise<{ rayservices: RayServiceObject[]; pods: PodObject[] }> {
  const kc = loadKubeConfig(cfg);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const rs = (await custom.listNamespacedCustomObject({ ...RAY, namespace: cfg.namespace, ...(cfg.selector ? { labelSelector: cfg.selector } : {}) })) as { items?: RayServiceObject[] };
  const pods = await core.listNamespacedPod({ namespace: cfg.namespace, labelSelector: 'ray.io/cluster' });
  const names = cfg.rayservices;
  const items = (rs.items ?? []).filter((r) => names === null || names.includes(r.metadata?.name ?? ''));
  return { rayservices: items, pods: pods.items as PodObject[] };
}
