// The routing snapshot: config + what each cluster serves + traffic weights,
// compiled once into an immutable structure that requests read without
// locks. Only buildSnapshot() creates one; SnapshotStore swaps it in one
// assignment, and each request keeps the snapshot it started with.
import { perGatewayLimit } from '../core/admission-share.ts';
import type { Limiter } from '../admission/limiter.ts';
import type { GatewayConfig, ServeApp, StickyConfig } from '../config/types.ts';
import type { StepStats } from './step-stats.ts';
import type { AppClusterHandles } from '../metrics/instruments.ts';
import type { GwRule } from '../core/gateway-rule.ts';
import { compileGatewayRoutes, type GatewayRoutes } from '../routing/gateway-routes.ts';
import { buildRouteTable, type RouteTable } from '../routing/route-table.ts';
import { buildSplit, type Split, type Weights } from '../routing/traffic-split.ts';
import type { UpstreamCluster } from '../upstream/cluster.ts';

/** What one cluster currently serves, and where that knowledge came from. */
export interface ClusterApps {
  readonly apps: readonly ServeApp[];
  readonly source: 'dashboard' | 'serve_config' | 'none';
  /** Dashboard configured and its last poll failed (values are the last known). */
  readonly stale: boolean;
}

/** One app on one cluster, with the long-lived runtime objects requests use. */
export interface AppTarget {
  readonly cluster: UpstreamCluster;
  readonly limiter: Limiter;
  readonly handles: AppClusterHandles;
  readonly stats: StepStats;
  /** null: the app is not known on this cluster. */
  readonly serveApp: ServeApp | null;
  readonly limit: number;
  readonly queueCapacity: number;
}

export interface AppRoute {
  readonly name: string;
  readonly routePrefix: string;
  readonly split: Split;
  /** Aligned with split.clusters. */
  readonly targets: readonly AppTarget[];
  readonly sticky: StickyConfig | null;
  /** Lower-case header name for header stickiness, else ''. */
  readonly stickyHeader: string;
  readonly spillover: boolean;
  /** Gateway API mode: the HTTPRoute ("ns/name") that owns this app's weights, else null. */
  readonly weightsFrom: string | null;
}

export interface Snapshot {
  readonly version: number;
  readonly config: GatewayConfig;
  readonly routes: RouteTable<AppRoute>;
  readonly apps: ReadonlyMap<string, AppRoute>;
  readonly clusterApps: ReadonlyMap<string, ClusterApps>;
  /** Minified {prefix: app} as Serve's /-/routes returns it. */
  readonly routesJson: string;
  readonly warnings: readonly string[];
  /** Gateway API mode: HTTPRoute rules decide first (SPEC §11); null otherwise. */
  readonly gateway: GatewayRoutes<AppRoute> | null;
}

/** Long-lived runtime objects the snapshot points at (owned by the reconciler). */
export interface SnapshotBindings {
  cluster(name: string): UpstreamCluster;
  limiter(app: string, cluster: string, limit: number, queueCapacity: number, queueTimeoutMs: number): Limiter;
  handles(app: string, cluster: string): AppClusterHandles;
  stats(app: string, cluster: string): StepStats;
}

export interface SnapshotInput {
  readonly version: number;
  readonly config: GatewayConfig;
  readonly clusterApps: ReadonlyMap<string, ClusterApps>;
  /** Weights from the traffic state (operator changes, rollouts) by app; they win over config. */
  readonly weights: ReadonlyMap<string, Weights>;
  /** Gateway API mode: the HTTPRoute rules in precedence order (their weights win over everything); null otherwise. */
  readonly gatewayRules?: readonly GwRule[] | null;
}

/** Requests in flight to a plain Service backend are not limited (no Serve capacity to respect). */
export const PLAIN_SERVICE_LIMIT = 1_000_000;

/** Admission limit for an app on a cluster (SPEC §5); at least 1 so scale-from-zero can start. */
export function admissionLimit(app: ServeApp | null, gatewayReplicas: number): number {
  const ongoing = app?.maxOngoingRequests ?? 5;
  const replicas = app?.replicas ?? 1;
  return perGatewayLimit(ongoing * replicas, gatewayReplicas);
}

export function queueCapacity(app: ServeApp | null, queueSize: number): number {
  const serveMax = app?.maxQueuedRequests ?? -1;
  return serveMax === -1 ? queueSize : Math.min(queueSize, serveMax);
}

/**
 * Weights for an app: traffic state, else the app's config, else "*", else
 * 100 to the first cluster (config order) that serves the app. Weights naming
 * unknown clusters fall through to the next source.
 */
export function resolveWeights(
  app: string,
  input: SnapshotInput,
  clusterOrder: readonly string[],
  servedBy: readonly string[],
): Weights {
  const known = (w: Weights | null | undefined): w is Weights =>
    w != null && Object.keys(w).every((c) => clusterOrder.includes(c)) && Object.values(w).reduce((a, b) => a + b, 0) === 100;
  const fromState = input.weights.get(app);
  if (known(fromState)) return fromState;
  const policy = input.config.applications.get(app);
  if (known(policy?.weights)) return policy.weights;
  if (known(input.config.defaults.weights)) {
    const d = input.config.defaults.weights;
    // "*" weights only make sense if they put weight where the app exists.
    if (Object.entries(d).some(([c, w]) => w > 0 && servedBy.includes(c)) || servedBy.length === 0) return d;
  }
  const first = servedBy[0] ?? clusterOrder[0]!;
  return { [first]: 100 };
}

export function buildSnapshot(input: SnapshotInput, bind: SnapshotBindings): Snapshot {
  const { config } = input;
  const clusterOrder = config.clusters.map((c) => c.name);
  const warnings: string[] = [];
  // Union of apps over clusters, in config order; first cluster naming a prefix wins.
  const prefixOf = new Map<string, string>();
  const appOn = new Map<string, Map<string, ServeApp>>();
  const routeEntries: Array<[string, string]> = [];
  for (const cluster of clusterOrder) {
    const known = input.clusterApps.get(cluster);
    for (const app of known?.apps ?? []) {
      let on = appOn.get(app.name);
      if (on === undefined) appOn.set(app.name, (on = new Map()));
      on.set(cluster, app);
      if (app.routePrefix === null) continue;
      const had = prefixOf.get(app.name);
      if (had !== undefined && had !== app.routePrefix) {
        warnings.push(`app "${app.name}" has route_prefix ${had} on one cluster and ${app.routePrefix} on "${cluster}"; both route to it`);
      }
      if (had === undefined) prefixOf.set(app.name, app.routePrefix);
      routeEntries.push([app.routePrefix, app.name]);
    }
  }
  const apps = new Map<string, AppRoute>();
  for (const [name, on] of appOn) {
    const prefix = prefixOf.get(name);
    if (prefix === undefined) continue; // not exposed over HTTP
    const policy = config.applications.get(name) ?? config.defaults;
    const servedBy = clusterOrder.filter((c) => on.has(c));
    const split = buildSplit(clusterOrder, resolveWeights(name, input, clusterOrder, servedBy));
    const targets = clusterOrder.map((cluster): AppTarget => {
      const serveApp = on.get(cluster) ?? null;
      const limit = admissionLimit(serveApp ?? on.get(servedBy[0]!) ?? null, config.admission.gatewayReplicas);
      const qcap = queueCapacity(serveApp, config.admission.queueSize);
      return {
        cluster: bind.cluster(cluster),
        limiter: bind.limiter(name, cluster, limit, qcap, config.admission.queueTimeoutMs),
        handles: bind.handles(name, cluster),
        stats: bind.stats(name, cluster),
        serveApp,
        limit,
        queueCapacity: qcap,
      };
    });
    split.weights.forEach((w, i) => {
      if (w > 0 && targets[i]!.serveApp === null) {
        warnings.push(`app "${name}" has weight ${w} on cluster "${split.clusters[i]}", which does not serve it`);
      }
    });
    apps.set(name, {
      name,
      routePrefix: prefix,
      split,
      targets,
      sticky: policy.sticky,
      stickyHeader: policy.sticky?.kind === 'header' ? policy.sticky.name.toLowerCase() : '',
      spillover: policy.spillover,
      weightsFrom: null,
    });
  }
  const gateway = input.gatewayRules == null ? null : compileGateway(input.gatewayRules, apps, clusterOrder, config, bind);
  if (gateway !== null) {
    // An HTTPRoute owns the weights of every app its rules reach: the app's split shows them.
    for (const [app, owner] of gateway.owners) {
      const route = apps.get(app)!;
      apps.set(app, { ...route, split: buildSplit(clusterOrder, owner.weights), weightsFrom: owner.route });
    }
  }
  const routes = buildRouteTable<AppRoute>(
    routeEntries.filter(([, app]) => apps.has(app)).map(([p, app]) => [p, apps.get(app)!] as const),
  );
  const routesObj: Record<string, string> = {};
  for (const p of routes.prefixes) routesObj[p] = routes.byPrefix.get(p)!.name;
  return {
    version: input.version,
    config,
    routes,
    apps,
    clusterApps: input.clusterApps,
    routesJson: JSON.stringify(routesObj),
    warnings,
    gateway,
  };
}

function compileGateway(rules: readonly GwRule[], apps: ReadonlyMap<string, AppRoute>, clusterOrder: readonly string[], config: GatewayConfig, bind: SnapshotBindings): GatewayRoutes<AppRoute> {
  // A plain-Service cluster the config does not have (yet) cannot be bound: its share fails like an unresolved one.
  const known = rules.map((r) =>
    r.backends.every((b) => b.kind !== 'service' || clusterOrder.includes(b.cluster))
      ? r
      : { ...r, backends: r.backends.map((b) => (b.kind === 'service' && !clusterOrder.includes(b.cluster) ? { kind: 'invalid' as const, weight: b.weight, reason: 'NotProgrammedYet', service: b.service } : b)) },
  );
  return compileGatewayRoutes<AppRoute>(
    known,
    [...apps.keys()],
    (name, clusters, weights) => {
      const app = apps.get(name)!;
      const targets = clusters.map((c) => app.targets[clusterOrder.indexOf(c)]!);
      if (targets.some((t) => t === undefined) || !targets.some((t) => t.serveApp !== null)) return null;
      return { ...app, split: { clusters, weights }, targets, weightsFrom: null };
    },
    (rule, cluster) => {
      const target: AppTarget = {
        cluster: bind.cluster(cluster),
        limiter: bind.limiter(rule.route, cluster, PLAIN_SERVICE_LIMIT, 0, config.admission.queueTimeoutMs),
        handles: bind.handles(rule.route, cluster),
        stats: bind.stats(rule.route, cluster),
        serveApp: null,
        limit: PLAIN_SERVICE_LIMIT,
        queueCapacity: 0,
      };
      return { name: rule.route, routePrefix: '/', split: { clusters: [cluster], weights: [100] }, targets: [target], sticky: null, stickyHeader: '', spillover: false, weightsFrom: rule.route };
    },
  );
}

export class SnapshotStore {
  #current: Snapshot | null = null;

  get current(): Snapshot | null {
    return this.#current;
  }

  publish(next: Snapshot): void {
    this.#current = next;
  }
}
