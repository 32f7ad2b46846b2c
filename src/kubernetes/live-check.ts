// `serve-gateway validate --live` in kubernetes mode: lists the RayServices the
// config names (or selects) and their Ray pods once, and reports what the
// gateway would route: clusters with roles, ready serve pods, apps with route
// prefixes, statuses and capacities, and whether each app's rollout policy
// can finish before KubeRay deletes the old cluster (the deletion-deadline rule).
import type { GatewayConfig } from '../config/types.ts';
import { buildView, clusterConfigs, EMPTY_VIEW } from './view.ts';
import { rolloutFitsDeletionDelay } from './upgrade-policy.ts';
import { listOnce } from './watch.ts';

export interface LiveReport {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
  readonly rayservices: readonly object[];
}

export async function liveCheck(config: GatewayConfig): Promise<LiveReport> {
  const k = config.kubernetes;
  if (k === null) return { ok: false, problems: ['--live needs source: kubernetes'], warnings: [], rayservices: [] };
  let listed;
  try {
    listed = await listOnce(k);
  } catch (err) {
    const e = err as Error & { code?: number };
    return { ok: false, problems: [`kubernetes API: ${e.code ?? ''} ${e.message}`.trim()], warnings: [], rayservices: [] };
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const name of k.rayservices ?? []) {
    if (!listed.rayservices.some((r) => r.metadata?.name === name)) problems.push(`RayService ${k.namespace}/${name} not found`);
  }
  if (k.selector !== null && listed.rayservices.length === 0) problems.push(`no RayService in ${k.namespace} matches selector "${k.selector}"`);
  const view = buildView(listed.rayservices, listed.pods, EMPTY_VIEW, 0);
  const configs = clusterConfigs(view);
  const rayservices = view.rayservices.map((rs) => {
    if (rs.active === null) warnings.push(`RayService ${rs.name} has no active cluster yet`);
    const apps = rs.apps.map((a) => {
      const p = (config.applications.get(a.name) ?? config.defaults).rollout;
      const fits = rolloutFitsDeletionDelay(p.steps, p.intervalMs, rs.deletionDelayMs);
      if (!fits && k.upgrade !== 'follow') {
        warnings.push(`app ${a.name}: its rollout (${p.steps.length - 1} × ${p.intervalMs / 1000}s) cannot finish within rayClusterDeletionDelaySeconds ${rs.deletionDelayMs / 1000} of RayService ${rs.name}; the old cluster is deleted first and the rest of the traffic then moves at once`);
      }
      return { name: a.name, route_prefix: a.routePrefix, rollout_fits_deletion_delay: fits };
    });
    const clusters = view.clusters.filter((c) => c.rayservice === rs.name).map((c) => {
      const cfg = configs.find((x) => x.name === c.name)!;
      if (c.endpoints.length === 0) warnings.push(`cluster ${c.name} (${c.role}) has no ready serve pod`);
      return {
        name: c.name,
        role: c.role,
        ready_endpoints: c.endpoints,
        dashboard: c.dashboard,
        apps: (cfg.serveApps ?? []).map((a) => ({ name: a.name, status: a.status, capacity: a.maxOngoingRequests * a.replicas })),
      };
    });
    return { name: rs.name, upgrade_phase: rs.phase, deletion_delay_s: rs.deletionDelayMs / 1000, apps, clusters };
  });
  return { ok: problems.length === 0, problems, warnings, rayservices };
}

export function renderLiveReport(r: LiveReport): string {
  const lines: string[] = ['', 'Kubernetes (live):'];
  for (const rs of r.rayservices as Array<Record<string, any>>) { // eslint-disable-line @typescript-eslint/no-explicit-any
    lines.push(`  RayService ${rs['name']} (${rs['upgrade_phase']}, deletion delay ${rs['deletion_delay_s']}s)`);
    for (const c of rs['clusters']) {
      lines.push(`    ${c.role.padEnd(8)} ${c.name}: ${c.ready_endpoints.length} ready serve pod(s), dashboard ${c.dashboard ?? 'none'}`);
      for (const a of c.apps) lines.push(`      ${a.name}: ${a.status}, capacity ${a.capacity}`);
    }
  }
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  return `${lines.join('\n')}\n`;
}
