// GET /api/v1/status: one read-only view of clusters, apps, capacity and
// rollouts, built from live state at request time. Every key is snake_case
// (the rollout state's KubeRay-style camelCase fields are renamed here, in
// rolloutJson); times are ISO strings (`*_at`) or durations (`*_ms`).
import type { Gateway } from '../main.ts';
import { isAvailable } from '../health/outlier.ts';
import type { StateWriteFailure } from '../control/traffic-controller.ts';
import { describeRollout, type RolloutState } from '../control/rollout.ts';
import type { StatsSnapshot } from '../control/step-stats.ts';
import type { SeriesPoint } from '../control/traffic-series.ts';
import { rolloutFitsDeletionDelay } from '../kubernetes/upgrade-policy.ts';
import type { RolloutPolicy } from '../config/types.ts';

/** The app's badge, as Argo Rollouts users read it. */
export type AppHealth = 'Healthy' | 'Progressing' | 'Paused' | 'Degraded' | 'RolledBack';

export function buildStatus(gw: Gateway): object {
  const now = gw.clock.now();
  const snap = gw.reconciler.current;
  const roleOf = clusterRoles(gw);
  const clusters = gw.config.clusters.map((cfg) => {
    const c = gw.reconciler.clusters.get(cfg.name);
    const load = clusterLoad(gw, cfg.name);
    // With `workers`, every data-plane thread's (the others' as of their reports, refreshed before this).
    const others = gw.workers?.load(cfg.name) ?? { inFlight: 0, openStreams: 0 };
    const inFlight = (c?.inFlight ?? 0) + others.inFlight;
    const streams = (c?.openStreams ?? 0) + others.openStreams;
    const known = gw.reconciler.clusterApps(cfg.name);
    const dash = gw.dashboardStates.get(cfg.name);
    const drained = gw.traffic.clusterDrained(cfg.name);
    return {
      name: cfg.name,
      role: roleOf.get(cfg.name) ?? null,
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
      capacity: load.capacity,
      in_flight: inFlight,
      queued: load.queued,
      open_streams: streams,
      drained,
      // KubeRay users ask for this before deleting an old RayCluster (kuberay #4126, #4799).
      safe_to_delete: drained && inFlight === 0 && streams === 0,
      safe_to_delete_reason: !drained
        ? `still has weight: ${load.weighted.map(([app, w]) => `${app} ${w}%`).join(', ')}`
        : inFlight > 0 || streams > 0
          ? `weight 0 everywhere, but ${inFlight} request(s) and ${streams} stream(s) still in flight`
          : 'weight 0 in every app and nothing in flight',
    };
  });
  const wall = gw.clock.wallNow();
  const apps = snap === null ? [] : [...snap.apps.values()].map((app) => {
    const rollout = gw.traffic.rolloutOf(app.name);
    const weights = Object.fromEntries(app.split.clusters.map((c, i) => [c, app.split.weights[i]!]));
    const stall = gw.traffic.rolloutStall(app.name);
    const health = appHealth(
      rollout,
      weights,
      app.targets.filter((_, i) => app.split.weights[i]! > 0).map((t) => [t.cluster.name, gw.traffic.notReadyReason(app.name, t.cluster.name)] as const),
      stall,
    );
    return {
    name: app.name,
    route_prefix: app.routePrefix,
    status: health.status,
    status_reason: health.reason,
    sticky: app.sticky,
    spillover: app.spillover,
    // What `traffic rollout` uses unless told otherwise (the app's config policy).
    rollout_policy: policyJson((gw.config.applications.get(app.name) ?? gw.config.defaults).rollout),
    weights,
    // Gateway API mode: the HTTPRoute whose backendRef weights these are (the admin API does not set them).
    weights_from: app.weightsFrom === null ? 'gateway' : `httproute ${app.weightsFrom}`,
    clusters: app.targets.map((t, i) => ({
      cluster: t.cluster.name,
      role: roleOf.get(t.cluster.name) ?? null,
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
      step: statsJson(t.stats.snapshot()),
    })),
    rollout: rollout === null ? null : rolloutJson(rollout, gw.reconciler.stats.snapshotFor(app.name, rollout.pendingCluster), wall),
    // Set while the rollout is held on its step because its next step could not be saved.
    rollout_write_error: writeFailure(stall),
  };
  });
  return {
    ready: snap !== null && snap.apps.size > 0 && !gw.draining,
    draining: gw.draining,
    snapshot_version: snap?.version ?? 0,
    generated_at: new Date(wall).toISOString(),
    config: {
      last_reload:
        gw.lastReload === null
          ? null
          : {
              ok: gw.lastReload.ok,
              at: new Date(gw.lastReload.atMs).toISOString(),
              reason: gw.lastReload.reason,
              error: gw.lastReload.error,
              warnings: gw.lastReload.warnings,
            },
      warnings: snap?.warnings ?? [],
    },
    // null while traffic-state writes work; else the failure (changes are refused until one succeeds).
    state: { dir: gw.config.stateDir, write_error: writeFailure(gw.traffic.writeFailure) },
    clusters,
    apps,
    kubernetes: kubernetesStatus(gw),
    // `workers` > 1: the data-plane threads besides the main one; null with one.
    workers: gw.workers === null ? null : { count: gw.config.workers, admission_slots: gw.workers.slots(), threads: gw.workers.status() },
  };
}

/** Kubernetes mode: where the view came from, the RayServices, their clusters with roles. */
function replicasStatus(gw: Gateway): object | null {
  const r = gw.replicas;
  if (r === null) return null;
  const st = r.status();
  return {
    identity: st.identity,
    leader: st.leader,
    is_leader: st.isLeader,
    live: st.live,
    live_count: r.liveCount(),
    last_sync_ms_ago: st.lastSyncMs === null ? null : Math.max(0, Math.round(gw.clock.wallNow() - st.lastSyncMs)),
    last_error: st.lastError,
  };
}

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
    // Several replicas (state_configmap + leader_lease): who leads, who is live, the shared state.
    replicas: replicasStatus(gw),
    shared_state: gw.sharedStateStatus(),
    gateway_api: gw.gatewayApi?.report() ?? null,
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

/**
 * A rollout as the API shows it: snake_case, with the step timeline and the
 * live gate values against their thresholds ("holding: 12 of 50 requests").
 * `obs` is what the gateway measured on the pending cluster this step.
 */
export function rolloutJson(r: RolloutState, obs: StatsSnapshot, nowWallMs: number): object {
  const p = r.policy;
  const d = describeRollout(r, obs, nowWallMs);
  const live = r.phase === 'progressing' || r.phase === 'paused' || r.phase === 'failed_paused';
  return {
    active_cluster: r.activeCluster,
    pending_cluster: r.pendingCluster,
    phase: r.phase,
    reason: r.reason,
    summary: d.summary,
    traffic_routed_percent: r.trafficRoutedPercent,
    step_index: r.stepIndex,
    steps: p.steps,
    next_step_percent: d.nextStepPercent,
    started_at: new Date(r.startedAtMs).toISOString(),
    updated_at: new Date(r.updatedAtMs).toISOString(),
    step_started_at: new Date(r.stepStartedAtMs).toISOString(),
    time_in_step_ms: live ? Math.max(0, Math.round(nowWallMs - r.stepStartedAtMs)) : 0,
    next_step_in_ms: d.intervalLeftMs === null ? null : Math.round(d.intervalLeftMs),
    policy: policyJson(p),
    // The window of the current step (the gates judge these numbers); null once the rollout ended.
    gate: live
      ? {
          requests: obs.requests,
          min_requests: p.minRequests,
          errors: obs.errors,
          error_rate: obs.errorRate,
          max_error_rate: p.maxErrorRate,
          p99_latency_ms: obs.p99LatencyMs,
          max_p99_latency_ms: p.maxP99LatencyMs,
          p99_ttfb_ms: obs.p99TtfbMs,
          max_ttfb_p99_ms: p.maxTtfbP99Ms,
          shed: obs.shed,
          holding: d.holding,
          failing: d.failing,
        }
      : null,
  };
}

function policyJson(p: RolloutPolicy): object {
  return {
    steps: p.steps,
    interval_ms: p.intervalMs,
    max_error_rate: p.maxErrorRate,
    max_p99_latency_ms: p.maxP99LatencyMs,
    max_ttfb_p99_ms: p.maxTtfbP99Ms,
    min_requests: p.minRequests,
    on_failure: p.onFailure,
  };
}

function statsJson(s: StatsSnapshot): object {
  return { requests: s.requests, errors: s.errors, error_rate: s.errorRate, p99_latency_ms: s.p99LatencyMs, p99_ttfb_ms: s.p99TtfbMs, shed: s.shed };
}

/**
 * The badge: Degraded when a cluster with weight cannot serve the app (or a
 * rollout step cannot be saved), else Paused / Progressing while a rollout
 * runs, RolledBack while the weights are still where the last rollback left
 * them, else Healthy.
 */
export function appHealth(
  rollout: RolloutState | null,
  weights: Readonly<Record<string, number>>,
  weighted: ReadonlyArray<readonly [string, string | null]>,
  stall: StateWriteFailure | null,
): { status: AppHealth; reason: string } {
  const bad = weighted.find(([, why]) => why !== null);
  if (bad !== undefined) return { status: 'Degraded', reason: bad[1]! };
  if (stall !== null) return { status: 'Degraded', reason: `the rollout's next step could not be saved: ${stall.message}` };
  if (rollout !== null) {
    if (rollout.phase === 'paused' || rollout.phase === 'failed_paused') return { status: 'Paused', reason: rollout.reason ?? 'paused' };
    if (rollout.phase === 'progressing') {
      return { status: 'Progressing', reason: `rollout to ${rollout.pendingCluster} at ${rollout.trafficRoutedPercent}%` };
    }
    if (rollout.phase === 'rolled_back' && weights[rollout.activeCluster] === 100) {
      return { status: 'RolledBack', reason: rollout.reason ?? `rolled back to ${rollout.activeCluster}` };
    }
  }
  return { status: 'Healthy', reason: 'every cluster with weight serves the app' };
}

/** Per cluster, summed over the apps it serves: admission capacity, queued requests, apps that still send it weight. */
function clusterLoad(gw: Gateway, cluster: string): { capacity: number; queued: number; weighted: Array<[string, number]> } {
  let capacity = 0;
  let queued = 0;
  const weighted: Array<[string, number]> = [];
  for (const app of gw.reconciler.current?.apps.values() ?? []) {
    const i = app.split.clusters.indexOf(cluster);
    const t = app.targets[i];
    if (t === undefined) continue;
    if (t.serveApp !== null) capacity += t.limit;
    queued += t.limiter.queued;
    if (app.split.weights[i]! > 0) weighted.push([app.name, app.split.weights[i]!]);
  }
  return { capacity, queued, weighted };
}

/** Kubernetes mode: cluster name → role (active, pending, previous); empty in file mode. */
function clusterRoles(gw: Gateway): Map<string, string> {
  const view = gw.kubernetes?.view;
  return new Map((view?.clusters ?? []).map((c) => [c.name, c.role]));
}

/**
 * GET /api/v1/series: per cluster, the last 15 minutes in buckets
 * (request rate, error rate, p50/p99 latency and TTFB), oldest first.
 */
export function buildSeries(gw: Gateway): object {
  const series = gw.reconciler.series;
  const point = (p: SeriesPoint) => ({
    at: new Date(p.at).toISOString(),
    span_ms: p.spanMs,
    requests: p.requests,
    errors: p.errors,
    shed: p.shed,
    request_rate: round3((p.requests * 1000) / p.spanMs),
    error_rate: p.requests === 0 ? 0 : round3(p.errors / p.requests),
    p50_latency_ms: roundMs(p.p50Ms),
    p99_latency_ms: roundMs(p.p99Ms),
    p50_ttfb_ms: roundMs(p.ttfbP50Ms),
    p99_ttfb_ms: roundMs(p.ttfbP99Ms),
  });
  return {
    bucket_ms: series.bucketMs,
    clusters: Object.fromEntries(gw.config.clusters.map((c) => [c.name, series.of(c.name).points().map(point)])),
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function roundMs(x: number | null): number | null {
  return x === null ? null : Math.round(x * 10) / 10;
}
