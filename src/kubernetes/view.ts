// What the gateway knows from Kubernetes, as one value: the RayServices it
// follows, their clusters with roles (active / pending / previous) and each
// cluster's Serve endpoints (ready serve pods, addressed directly) and dashboard
// (the head pod). Built from the watched objects by `buildView`; the previous
// view is an input because "previous" (the active cluster before KubeRay's
// flip, for as long as it has pods) is history, not state in any object.
// Deterministic (no clock, no I/O); not on the pure list only because it parses
// serveConfigV2 with config/serve-config.ts (yaml).
//
// SPEC §10; KubeRay facts: labels ray.io/cluster, ray.io/serve, ray.io/node-type,
// container ports named "serve" (8000) and "dashboard" (8265), status
// active/pendingServiceStatus.rayClusterName and applicationStatuses.
import type { AppPolicy, ClusterConfig, ClusterRole, ServeApp, ServeAppStatus } from '../config/types.ts';
import { parseServeConfig } from '../config/serve-config.ts';

/** The fields of a RayService (ray.io/v1) the gateway reads. */
export interface RayServiceObject {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly uid?: string; readonly labels?: Record<string, string> };
  readonly spec?: { readonly serveConfigV2?: string; readonly rayClusterDeletionDelaySeconds?: number };
  readonly status?: {
    readonly activeServiceStatus?: ServiceStatus;
    readonly pendingServiceStatus?: ServiceStatus;
  };
}

interface ServiceStatus {
  readonly rayClusterName?: string;
  readonly applicationStatuses?: Record<string, { readonly status?: string }>;
}

/** The fields of a Pod the gateway reads. */
export interface PodObject {
  readonly metadata?: { readonly name?: string; readonly labels?: Record<string, string>; readonly deletionTimestamp?: unknown };
  readonly spec?: { readonly containers?: ReadonlyArray<{ readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort?: number }> }> };
  readonly status?: { readonly podIP?: string; readonly phase?: string; readonly conditions?: ReadonlyArray<{ readonly type?: string; readonly status?: string }> };
}

export interface ViewCluster {
  readonly name: string;
  readonly rayservice: string;
  readonly role: ClusterRole;
  /** Ready serve pods as Serve proxy origins (http://podIP:port), sorted. */
  readonly endpoints: readonly string[];
  /** All pods of the cluster (ready or not). */
  readonly pods: number;
  /** Head pod's dashboard origin, or null. */
  readonly dashboard: string | null;
  /** App statuses KubeRay reported for this cluster, or null when it reported none (status unknown). */
  readonly appStatuses: Readonly<Record<string, string>> | null;
}

export type UpgradePhase = 'initializing' | 'steady' | 'upgrading' | 'draining_previous';

export interface ViewRayService {
  readonly name: string;
  readonly uid: string;
  readonly active: string | null;
  readonly pending: string | null;
  /** The active cluster before the last flip, while it still has pods. */
  readonly previous: string | null;
  /** Wall ms when the flip that made `previous` was seen. */
  readonly previousSinceMs: number | null;
  /** KubeRay deletes an unreferenced cluster this long after the flip (default 60 s). */
  readonly deletionDelayMs: number;
  readonly serveConfig: string | null;
  /** Apps of serveConfigV2 (limits, prefixes), status UNKNOWN; per-cluster statuses come from the clusters. */
  readonly apps: readonly ServeApp[];
  readonly phase: UpgradePhase;
}

export interface KubeView {
  readonly rayservices: readonly ViewRayService[];
  /**
   * Per RayService: previous, active, pending. This is the split's layout
   * order, and the default weights give everything to the first cluster that
   * serves an app: so a flip alone never moves traffic (the old cluster, now
   * previous, keeps it until the upgrade policy moves it, audited).
   */
  readonly clusters: readonly ViewCluster[];
}

export const EMPTY_VIEW: KubeView = { rayservices: [], clusters: [] };
const DEFAULT_SERVE_PORT = 8000;
const DEFAULT_DASHBOARD_PORT = 8265;
const DEFAULT_DELETION_DELAY_S = 60;

export function buildView(rayservices: readonly RayServiceObject[], pods: readonly PodObject[], prev: KubeView, nowWallMs: number): KubeView {
  const byCluster = new Map<string, PodObject[]>();
  for (const p of pods) {
    const c = p.metadata?.labels?.['ray.io/cluster'];
    if (c === undefined || p.metadata?.deletionTimestamp) continue;
    let list = byCluster.get(c);
    if (list === undefined) byCluster.set(c, (list = []));
    list.push(p);
  }
  const outRs: ViewRayService[] = [];
  const outClusters: ViewCluster[] = [];
  const sorted = [...rayservices].filter((r) => r.metadata?.name).sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  for (const rs of sorted) {
    const name = rs.metadata!.name!;
    const was = prev.rayservices.find((r) => r.name === name);
    const activeStatus = rs.status?.activeServiceStatus;
    const pendingStatus = rs.status?.pendingServiceStatus;
    const active = nonEmpty(activeStatus?.rayClusterName);
    const pending = nonEmpty(pendingStatus?.rayClusterName);
    let previous: string | null = null;
    let previousSinceMs: number | null = null;
    if (was !== undefined && was.active !== null && was.active !== active && was.active !== pending && (byCluster.get(was.active)?.length ?? 0) > 0) {
      // KubeRay flipped: the old active cluster lives on until it is deleted.
      previous = was.active;
      previousSinceMs = nowWallMs;
    } else if (was?.previous && was.previous !== active && was.previous !== pending && (byCluster.get(was.previous)?.length ?? 0) > 0) {
      previous = was.previous;
      previousSinceMs = was.previousSinceMs;
    }
    const serveConfig = rs.spec?.serveConfigV2 ?? null;
    const apps = serveConfig === null ? [] : parseServeConfig(serveConfig, name, 'spec.serveConfigV2').apps;
    const delayS = rs.spec?.rayClusterDeletionDelaySeconds;
    const phase: UpgradePhase = active === null ? 'initializing' : pending !== null ? 'upgrading' : previous !== null ? 'draining_previous' : 'steady';
    outRs.push({
      name,
      uid: rs.metadata?.uid ?? '',
      active,
      pending,
      previous,
      previousSinceMs,
      deletionDelayMs: (typeof delayS === 'number' && delayS >= 0 ? delayS : DEFAULT_DELETION_DELAY_S) * 1000,
      serveConfig,
      apps,
      phase,
    });
    const roles: Array<[string | null, ClusterRole, ServiceStatus | undefined]> = [
      [previous, 'previous', undefined],
      [active, 'active', activeStatus],
      [pending, 'pending', pendingStatus],
    ];
    for (const [cluster, role, status] of roles) {
      if (cluster === null || outClusters.some((c) => c.name === cluster)) continue;
      outClusters.push(clusterOf(cluster, name, role, byCluster.get(cluster) ?? [], status));
    }
  }
  return { rayservices: outRs, clusters: outClusters };
}

function clusterOf(name: string, rayservice: string, role: ClusterRole, pods: readonly PodObject[], status: ServiceStatus | undefined): ViewCluster {
  const endpoints: string[] = [];
  let dashboard: string | null = null;
  for (const p of pods) {
    const labels = p.metadata?.labels ?? {};
    const ip = p.status?.podIP;
    if (ip === undefined || ip === '' || p.status?.phase !== 'Running') continue;
    if (labels['ray.io/node-type'] === 'head' && dashboard === null) dashboard = `http://${hostForUrl(ip)}:${portOf(p, 'dashboard', DEFAULT_DASHBOARD_PORT)}`;
    const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    if (labels['ray.io/serve'] === 'true' && ready) endpoints.push(`http://${hostForUrl(ip)}:${portOf(p, 'serve', DEFAULT_SERVE_PORT)}`);
  }
  endpoints.sort();
  let appStatuses: Record<string, string> | null = null;
  const reported = status?.applicationStatuses;
  if (reported !== undefined && reported !== null && Object.keys(reported).length > 0) {
    appStatuses = {};
    for (const [app, s] of Object.entries(reported)) appStatuses[app] = s?.status ?? 'UNKNOWN';
  }
  return { name, rayservice, role, endpoints: [...new Set(endpoints)], pods: pods.length, dashboard, appStatuses };
}

function portOf(p: PodObject, name: string, dflt: number): number {
  for (const c of p.spec?.containers ?? []) for (const port of c.ports ?? []) if (port.name === name && typeof port.containerPort === 'number') return port.containerPort;
  return dflt;
}

function hostForUrl(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

function nonEmpty(s: string | undefined): string | null {
  return s === undefined || s === '' ? null : s;
}

const SERVE_STATUSES = new Set<string>(['NOT_STARTED', 'DEPLOYING', 'DEPLOY_FAILED', 'RUNNING', 'UNHEALTHY', 'DELETING']);

/**
 * The gateway's cluster list for a view: each cluster with its endpoints and
 * dashboard, and the RayService's serveConfigV2 apps with the statuses KubeRay
 * reported for that cluster (UNKNOWN when it reported none: never "deleted").
 */
export function clusterConfigs(view: KubeView): ClusterConfig[] {
  return view.clusters.map((c) => {
    const rs = view.rayservices.find((r) => r.name === c.rayservice);
    const apps = (rs?.apps ?? []).map((a) => {
      const reported = c.appStatuses?.[a.name];
      const status: ServeAppStatus = reported !== undefined && SERVE_STATUSES.has(reported) ? (reported as ServeAppStatus) : 'UNKNOWN';
      return { ...a, status };
    });
    return { name: c.name, endpoints: c.endpoints, dashboard: c.dashboard, serveApps: rs?.serveConfig === null ? null : apps, serveConfigFile: null };
  });
}

/** The cluster that has `role` for the RayService serving `app` (the first one that lists it), or null. */
export function clusterForRole(view: KubeView, app: string, role: ClusterRole): string | null {
  const rs = view.rayservices.find((r) => r.apps.some((a) => a.name === app)) ?? (view.rayservices.length === 1 ? view.rayservices[0] : undefined);
  if (rs === undefined) return null;
  return role === 'active' ? rs.active : role === 'pending' ? rs.pending : rs.previous;
}

/** The RayService whose serveConfigV2 lists `app`, or null. */
export function rayServiceOf(view: KubeView, app: string): ViewRayService | null {
  return view.rayservices.find((r) => r.apps.some((a) => a.name === app)) ?? null;
}

/**
 * Application policies with weights that name roles (`active`, `pending`,
 * `previous`) resolved to the cluster names of the view. A role with no
 * cluster now (no pending cluster yet) makes the weights fall back to the
 * default: all traffic to the first cluster serving the app, the active one.
 */
export function resolveRoleWeights(applications: ReadonlyMap<string, AppPolicy>, defaults: AppPolicy, view: KubeView): Map<string, AppPolicy> {
  const out = new Map(applications);
  const names = new Set<string>([...applications.keys()]);
  for (const rs of view.rayservices) for (const a of rs.apps) names.add(a.name);
  for (const app of names) {
    const policy = applications.get(app) ?? defaults;
    if (policy.weights === null) continue;
    const resolved: Record<string, number> = {};
    let ok = true;
    for (const [key, w] of Object.entries(policy.weights)) {
      const name = (CLUSTER_ROLE_SET as ReadonlySet<string>).has(key) ? clusterForRole(view, app, key as ClusterRole) : key;
      if (name === null) {
        if (w > 0) ok = false;
        continue;
      }
      resolved[name] = (resolved[name] ?? 0) + w;
    }
    out.set(app, { ...policy, weights: ok ? resolved : null });
  }
  return out;
}

const CLUSTER_ROLE_SET = new Set<string>(['active', 'pending', 'previous']);
