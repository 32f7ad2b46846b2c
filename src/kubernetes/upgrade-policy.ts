// What `kubernetes.upgrade` does when KubeRay moves a RayService (SPEC §10):
// given the view before and after a change and each app's traffic, the traffic
// actions to take. The caller carries them out through the traffic controller
// (audited, persisted, refused like any operator action). [pure]
//
//   follow   traffic goes where KubeRay points: when the active cluster changes,
//            every app of the RayService switches to it at once (the previous
//            cluster drains: in-flight requests and streams finish there).
//   rollout  once the pending cluster is ready (every app RUNNING, a ready serve
//            pod), each app's configured rollout runs to it, with gates and
//            rollback; after KubeRay's flip the old cluster keeps its share until
//            the rollout ends (a rollout not yet started then starts to the new
//            active cluster).
//   hold     as rollout, but only the operator starts the shift.
// In every mode, when a cluster that still has traffic loses its pods (KubeRay
// deleted it rayClusterDeletionDelaySeconds after the flip), its traffic moves
// to the active cluster and the audit entry says why.
import type { KubeView, ViewRayService } from './view.ts';

export type UpgradeMode = 'follow' | 'rollout' | 'hold';

export interface AppTraffic {
  readonly weights: Readonly<Record<string, number>>;
  readonly rollout: { readonly pendingCluster: string; readonly phase: string } | null;
}

export type UpgradeAction =
  /** Set the weights at once (100 to `to`). */
  | { readonly kind: 'switch'; readonly app: string; readonly rayservice: string; readonly to: string; readonly reason: string }
  /** Start the app's configured rollout to `to`. */
  | { readonly kind: 'start_rollout'; readonly app: string; readonly rayservice: string; readonly to: string; readonly reason: string }
  /** Finish the app's rollout now (its other side is gone). */
  | { readonly kind: 'promote'; readonly app: string; readonly rayservice: string; readonly to: string; readonly reason: string };

const ACTIVE_PHASES = new Set(['progressing', 'paused']);

export function decideUpgrades(mode: UpgradeMode, prev: KubeView, next: KubeView, traffic: (app: string) => AppTraffic | null): UpgradeAction[] {
  const out: UpgradeAction[] = [];
  const present = new Set(next.clusters.filter((c) => c.pods > 0).map((c) => c.name));
  for (const rs of next.rayservices) {
    const was = prev.rayservices.find((r) => r.name === rs.name) ?? null;
    for (const app of rs.apps) {
      const t = traffic(app.name);
      if (t === null) continue;
      const a = decideApp(mode, rs, was, next, present, app.name, t);
      if (a !== null) out.push(a);
    }
  }
  return out;
}

function decideApp(mode: UpgradeMode, rs: ViewRayService, was: ViewRayService | null, next: KubeView, present: ReadonlySet<string>, app: string, t: AppTraffic): UpgradeAction | null {
  const active = rs.active;
  if (active === null) return null;
  const rolloutActive = t.rollout !== null && ACTIVE_PHASES.has(t.rollout.phase);
  const weightOf = (c: string) => t.weights[c] ?? 0;

  // A cluster that still has traffic lost its pods: move it to the active cluster.
  const gone = Object.keys(t.weights).find((c) => weightOf(c) > 0 && c !== active && !present.has(c));
  if (gone !== undefined && present.has(active)) {
    const reason = `cluster ${gone} of RayService ${rs.name} has no pods left (KubeRay deleted it after promoting ${active}); its traffic moves to ${active}`;
    if (rolloutActive && t.rollout!.pendingCluster === active) return { kind: 'promote', app, rayservice: rs.name, to: active, reason };
    if (!rolloutActive) return { kind: 'switch', app, rayservice: rs.name, to: active, reason };
  }

  const flipped = was !== null && was.active !== null && was.active !== active;
  if (mode === 'follow') {
    if (rolloutActive || weightOf(active) === 100) return null;
    // Only when KubeRay moved (or on first sight): an operator's own weights are left alone otherwise.
    if (was !== null && !flipped && was.active === active) return null;
    if (!present.has(active) || next.clusters.find((c) => c.name === active)?.endpoints.length === 0) return null;
    const reason = flipped ? `KubeRay promoted ${active} (was ${was!.active}) for RayService ${rs.name}` : `follows KubeRay's active cluster ${active} of RayService ${rs.name}`;
    return { kind: 'switch', app, rayservice: rs.name, to: active, reason };
  }
  if (mode === 'hold') return null;

  // rollout: to the pending cluster once it is ready; after the flip, to the new active one.
  const tried = (c: string) => t.rollout !== null && t.rollout.pendingCluster === c;
  const pending = rs.pending;
  if (pending !== null && !tried(pending) && !rolloutActive && weightOf(pending) < 100 && clusterReady(next, pending)) {
    return { kind: 'start_rollout', app, rayservice: rs.name, to: pending, reason: `pending cluster ${pending} of RayService ${rs.name} is ready` };
  }
  if (flipped && !tried(active) && !rolloutActive && weightOf(active) < 100 && present.has(active)) {
    return { kind: 'start_rollout', app, rayservice: rs.name, to: active, reason: `KubeRay promoted ${active} (was ${was!.active}) for RayService ${rs.name}` };
  }
  return null;
}

/**
 * Can a rollout with this policy finish before KubeRay deletes the old cluster?
 * Its shortest duration is one interval per step before the last.
 */
export function rolloutFitsDeletionDelay(steps: readonly number[], intervalMs: number, deletionDelayMs: number): boolean {
  return Math.max(0, steps.length - 1) * intervalMs <= deletionDelayMs;
}

/** Ready for traffic as KubeRay judges it (every app RUNNING), plus at least one ready serve pod. */
export function clusterReady(view: KubeView, cluster: string): boolean {
  const c = view.clusters.find((x) => x.name === cluster);
  const rs = c === undefined ? undefined : view.rayservices.find((r) => r.name === c.rayservice);
  if (c === undefined || rs === undefined || c.endpoints.length === 0 || c.appStatuses === null) return false;
  return rs.apps.length > 0 && rs.apps.every((a) => c.appStatuses![a.name] === 'RUNNING');
}
