// The Kubernetes objects gateway replicas share (kubernetes mode with
// `state_configmap` and `leader_lease`), as plain calls: the state ConfigMap
// (read, write over a resourceVersion, watch) and coordination.k8s.io/v1
// Leases (read, create, replace over a resourceVersion, list by label).
// Nothing here decides anything: control/shared-store.ts keeps the state,
// replicas.ts elects the leader and counts the members.
import { CoordinationV1Api, CoreV1Api, V1MicroTime, Watch } from '@kubernetes/client-node';
import type { KubeConfig, V1ConfigMap, V1Lease } from '@kubernetes/client-node';
import { SharedDocConflict } from '../core/shared-doc.ts';
import type { SharedDoc } from '../core/shared-doc.ts';

/** The HTTP status of a client-node error, or undefined. */
function codeOf(err: unknown): number | undefined {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'serve-gateway' } as const;

/** The state ConfigMap as a SharedDoc (optimistic concurrency on resourceVersion). */
export class ConfigMapDoc implements SharedDoc {
  readonly where: string;
  readonly #core: CoreV1Api;
  readonly #kc: KubeConfig;
  readonly #ns: string;
  readonly #name: string;
  #stop: (() => void) | null = null;
  #stopped = false;

  constructor(kc: KubeConfig, namespace: string, name: string) {
    this.#kc = kc;
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#ns = namespace;
    this.#name = name;
    this.where = `ConfigMap ${namespace}/${name}`;
  }

  async read(): Promise<{ data: Record<string, string>; version: string } | null> {
    try {
      const cm = await this.#core.readNamespacedConfigMap({ namespace: this.#ns, name: this.#name });
      return { data: cm.data ?? {}, version: cm.metadata?.resourceVersion ?? '' };
    } catch (err) {
      if (codeOf(err) === 404) return null;
      throw err;
    }
  }

  async write(data: Readonly<Record<string, string>>, version: string | null): Promise<string> {
    const body: V1ConfigMap = { metadata: { name: this.#name, namespace: this.#ns, labels: { ...MANAGED_BY } }, data: { ...data } };
    try {
      if (version === null) {
        const made = await this.#core.createNamespacedConfigMap({ namespace: this.#ns, body });
        return made.metadata?.resourceVersion ?? '';
      }
      body.metadata!.resourceVersion = version;
      const put = await this.#core.replaceNamespacedConfigMap({ namespace: this.#ns, name: this.#name, body });
      return put.metadata?.resourceVersion ?? '';
    } catch (err) {
      const code = codeOf(err);
      if (code === 409) throw new SharedDocConflict(`${this.where} changed since version ${version ?? '(none)'}`);
      if (code === 404 && version !== null) throw new SharedDocConflict(`${this.where} was deleted`);
      throw err;
    }
  }

  /**
   * Watches the ConfigMap (a watch with a field selector on its name, so the
   * Role may name it); every version seen is passed on. A watch that ends or
   * fails starts again after `retryMs`; the first event of each (re)start is
   * the object as it is (ADDED), so nothing is missed while disconnected.
   */
  watch(onChange: (data: Record<string, string>, version: string) => void, onError: (err: unknown) => void, retryMs = 1000): void {
    const w = new Watch(this.#kc);
    const start = (): void => {
      if (this.#stopped) return;
      w.watch(
        `/api/v1/namespaces/${this.#ns}/configmaps`,
        { fieldSelector: `metadata.name=${this.#name}` },
        (type: string, obj: V1ConfigMap) => {
          if (type === 'ADDED' || type === 'MODIFIED') onChange(obj.data ?? {}, obj.metadata?.resourceVersion ?? '');
        },
        (err: unknown) => {
          if (this.#stopped) return;
          if (err) onError(err);
          setTimeout(start, retryMs).unref?.();
        },
      ).then(
        (req: { abort(): void }) => {
          this.#stop = () => req.abort();
          if (this.#stopped) req.abort();
        },
        (err: unknown) => {
          onError(err);
          if (!this.#stopped) setTimeout(start, retryMs).unref?.();
        },
      );
    };
    start();
  }

  stopWatch(): void {
    this.#stopped = true;
    this.#stop?.();
  }
}

/** A Lease as the replicas use it. */
export interface LeaseRecord {
  readonly name: string;
  readonly holder: string | null;
  /** Wall ms of the last renewal (spec.renewTime), or null. */
  readonly renewedAtMs: number | null;
  readonly durationS: number;
  readonly transitions: number;
  readonly annotations: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly resourceVersion: string;
}

export interface LeaseWrite {
  readonly name: string;
  readonly holder: string;
  readonly durationS: number;
  readonly renewedAtMs: number;
  readonly acquiredAtMs: number;
  readonly transitions: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The Lease calls (an interface, so replicas.ts is tested without a server). */
export interface LeaseApi {
  get(name: string): Promise<LeaseRecord | null>;
  /** Creates; false when it exists already (someone was first). */
  create(l: LeaseWrite): Promise<boolean>;
  /** Replaces over `resourceVersion`; false on a conflict (someone wrote first). */
  replace(l: LeaseWrite, resourceVersion: string): Promise<boolean>;
  list(labelSelector: string): Promise<LeaseRecord[]>;
  delete(name: string): Promise<void>;
}

/** Lease times are MicroTime: RFC 3339 with six fractional digits (a plain Date's three are refused). */
function micro(ms: number): Date {
  return new V1MicroTime(ms);
}

function record(l: V1Lease): LeaseRecord {
  const renew = l.spec?.renewTime as unknown;
  const renewedAtMs = renew instanceof Date ? renew.getTime() : typeof renew === 'string' ? Date.parse(renew) : null;
  return {
    name: l.metadata?.name ?? '',
    holder: l.spec?.holderIdentity ?? null,
    renewedAtMs: renewedAtMs !== null && Number.isFinite(renewedAtMs) ? renewedAtMs : null,
    durationS: l.spec?.leaseDurationSeconds ?? 0,
    transitions: l.spec?.leaseTransitions ?? 0,
    annotations: l.metadata?.annotations ?? {},
    labels: l.metadata?.labels ?? {},
    resourceVersion: l.metadata?.resourceVersion ?? '',
  };
}

export class KubeLeases implements LeaseApi {
  readonly #api: CoordinationV1Api;
  readonly #ns: string;

  constructor(kc: KubeConfig, namespace: string) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#ns = namespace;
  }

  #body(l: LeaseWrite, resourceVersion?: string): V1Lease {
    return {
      metadata: {
        name: l.name,
        namespace: this.#ns,
        labels: { ...MANAGED_BY, ...(l.labels ?? {}) },
        ...(l.annotations ? { annotations: { ...l.annotations } } : {}),
        ...(resourceVersion !== undefined ? { resourceVersion } : {}),
      },
      spec: {
        holderIdentity: l.holder,
        leaseDurationSeconds: l.durationS,
        acquireTime: micro(l.acquiredAtMs),
        renewTime: micro(l.renewedAtMs),
        leaseTransitions: l.transitions,
      },
    };
  }

  async get(name: string): Promise<LeaseRecord | null> {
    try {
      return record(await this.#api.readNamespacedLease({ namespace: this.#ns, name }));
    } catch (err) {
      if (codeOf(err) === 404) return null;
      throw err;
    }
  }

  async create(l: LeaseWrite): Promise<boolean> {
    try {
      await this.#api.createNamespacedLease({ namespace: this.#ns, body: this.#body(l) });
      return true;
    } catch (err) {
      if (codeOf(err) === 409) return false;
      throw err;
    }
  }

  async replace(l: LeaseWrite, resourceVersion: string): Promise<boolean> {
    try {
      await this.#api.replaceNamespacedLease({ namespace: this.#ns, name: l.name, body: this.#body(l, resourceVersion) });
      return true;
    } catch (err) {
      if (codeOf(err) === 409 || codeOf(err) === 404) return false;
      throw err;
    }
  }

  async list(labelSelector: string): Promise<LeaseRecord[]> {
    const list = await this.#api.listNamespacedLease({ namespace: this.#ns, labelSelector });
    return list.items.map(record);
  }

  async delete(name: string): Promise<void> {
    try {
      await this.#api.deleteNamespacedLease({ namespace: this.#ns, name });
    } catch (err) {
      if (codeOf(err) !== 404) throw err;
    }
  }
}
