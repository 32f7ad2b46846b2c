// GET /api/v1/status: one read-only view of clusters, apps, capacity and
// rollouts, built from live state at request time.
import type { Gateway } from '../main.ts';
import { isAvailable } from '../health/outlier.ts';
import type { StateWriteFailure } from '../control/traffic-controller.ts';
import { rolloutFitsDeletionDelay } from '../kubernetes/upgrade-policy.ts';

export function buildStatus(gw: Gateway): object {
  const now = gw.clock.now();
  const snap = gw.reconciler.current;
  const clusters = gw.config.clusters.map((cfg) => {
    const c = gw.reconciler.clusters.get(cfg.name);
    const known = gw.reconciler.clusterApps(cfg.name);
    const dash = gw.dashboardStates.get(cfg.name);
    const drained = gw.traffic.clusterDrained(cfg.name);
    return {
      name: cfg.name,
      endpoints: (c?.endpoints ?? []).map((e) => ({
        url: e.origin,
        healthy: !c!.circuitOpen && isAvailable(e.health, now),
        probe: e.health.probeOk === null ? 'pending' : e.health.probeOk ? 'ok' : 'failing',
        probe_message: e.health.probeMessage,
        ejected_for_ms: Math.max(0, Math.round(e.health.ejectedUntilMs - now)),
        consecutive_failures: e.health.consecutiveFailures,
        in_flight: e.inFlight,
        connections: e.connections,
        idle_connections: e.idleConnections,
      })),
      circuit: c?.circuitOpen ? 'open' : 'closed',
      dashboard:
        cfg.dashboard === null
          ? null
          : {
              url: cfg.dashboard,
              reachable: dash?.reachable ?? false,
              last_success_ms_ago: dash?.lastSuccessMs == null ? null : Math.round(gw.clock.now() - dash.lastSuccessMs),
              error: dash?.lastError ?? null,
            },
      apps_source: known?.source ?? 'none',
      apps_stale: known?.stale ?? false,
      in_flight: c?.inFlight ?? 0,
      open_streams: c?.openStreams ?? 0,
      drained,
      // KubeRay users ask for this before deleting an old RayCluster (kuberay #4126, #4799).
      safe_to_delete: drained && (c?.inFlight ?? 0) === 0 && (c?.openStreams ?? 0) === 0,
    };
  });
  const apps = snap === null ? [] : [...snap.apps.values()].map((app) => ({
    name: app.name,
    route_prefix: app.routePrefix,
    sticky: app.sticky,
    spillover: app.spillover,
    weights: Object.fromEntries(app.split.clusters.map((c, i) => [c, app.split.weights[i]])),
    clusters: app.targets.map((t, i) => ({
      cluster: t.cluster.name,
      weight: app.split.weights[i],
      deployed: t.serveApp !== null,
      status: t.serveApp?.status ?? 'NOT_DEPLOYED',
      ingress_deployment: t.serveApp?.ingressDeployment ?? null,
      replicas: t.serveApp?.replicas ?? null,
      max_ongoing_requests: t.serveApp?.maxOngoingRequests ?? null,
      max_queued_requests: t.serveApp?.maxQueuedRequests ?? null,
      capacity: t.limit,
      queue_capacity: t.queueCapacity,
      in_flight: t.limiter.inFlight,
      queued: t.limiter.queued,
      ready: gw.traffic.notReadyReason(app.name, t.cluster.name) === null,
      not_ready_reason: gw.traffic.notReadyReason(app.name, t.cluster.name),
      step: t.stats.snapshot(),
    })),
    rollout: gw.traffic.rolloutOf(app.name),
    // Set while the rollout is held on its step because its next step could not be saved.
    rollout_write_error: writeFailure(gw.traffic.rolloutStall(app.name)),
  }));
  return {
    ready: snap !== null && snap.apps.size > 0 && !gw.draining,
    draining: gw.draining,
    snapshot_version: snap?.version ?? 0,
    config: { last_reload: gw.lastReload, warnings: snap?.warnings ?? [] },
    // null while traffic-state writes work; else the failure (changes are refused until one succeeds).
    state: { dir: gw.config.stateDir, write_error: writeFailure(gw.traffic.writeFailure) },
    clusters,
    apps,
    kubernetes: kubernetesStatus(gw),
  };
}

/** Kubernetes mode: where the view came from, the RayServices, their clusters with roles. */
function kubernetesStatus(gw: Gateway): object | null {
  const src = gw.kubernetes;
  if (src === null) return null;
  const st = src.status();
  const view = src.view;
  const policyOf = (app: string) => (gw.config.applications.get(app) ?? gw.config.defaults).rollout;
  const wall = gw.clock.wallNow();
  return {
    source: st.source,
    synced: st.synced,
    connected: st.connected,
    last_error: st.lastError,
    view_age_ms: st.viewAtMs === null ? null : Math.max(0, Math.round(wall - st.viewAtMs)),
    namespace: src.cfg.namespace,
    upgrade: src.cfg.upgrade,
    rayservices: view.rayservices.map((rs) => {
      const deadline = rs.previousSinceMs === null ? null : rs.previousSinceMs + rs.deletionDelayMs;
      return {
        name: rs.name,
        upgrade_phase: rs.phase,
        active: rs.active,
        pending: rs.pending,
        previous: rs.previous,
        deletion_delay_ms: rs.deletionDelayMs,
        // Time left before KubeRay deletes the previous cluster (from when the flip was seen).
        deletion_deadline_ms: deadline === null ? null : Math.max(0, Math.round(deadline - wall)),
        apps: rs.apps.map((a) => {
          const p = policyOf(a.name);
          return { name: a.name, rollout_fits_deletion_delay: rolloutFitsDeletionDelay(p.steps, p.intervalMs, rs.deletionDelayMs) };
        }),
        clusters: view.clusters
          .filter((c) => c.rayservice === rs.name)
          .map((c) => ({ name: c.name, role: c.role, ready_endpoints: c.endpoints.length, pods: c.pods, dashboard: c.dashboard, app_statuses: c.appStatuses })),
      };
    }),
  };
}

function writeFailure(f: StateWriteFailure | null): object | null {
  if (f === null) return null;
  return {
    message: f.message,
    since: new Date(f.sinceMs).toISOString(),
    last: new Date(f.lastMs).toISOString(),
    attempts: f.attempts,
    app: f.app,
    action: f.action,
  };
}
