// `serve-gateway traffic status` as text: the apps' split, capacity and
// readiness; each app's health badge; running rollouts with their step
// timeline and the live gate values against their thresholds (and why a
// rollout holds); the clusters; config warnings. Reads GET /api/v1/status.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function ms(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (v >= 120_000) {
    const sec = Math.ceil(v / 1000);
    return sec % 60 === 0 ? `${sec / 60} min` : `${Math.floor(sec / 60)} min ${sec % 60} s`;
  }
  return v >= 10_000 ? `${(v / 1000).toFixed(0)} s` : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

function rate(v: number): string {
  return String(Number(v.toFixed(4)));
}

/** The gate line of a running rollout: each measured value against its threshold. */
export function formatGate(g: Json): string {
  const parts = [
    `requests ${g['requests']}/${g['min_requests']}`,
    `error rate ${rate(g['error_rate'])} (max ${rate(g['max_error_rate'])})`,
    `p99 ${ms(g['p99_latency_ms'])} (max ${ms(g['max_p99_latency_ms'])})`,
    `ttfb p99 ${ms(g['p99_ttfb_ms'])} (max ${g['max_ttfb_p99_ms'] === null ? 'off' : ms(g['max_ttfb_p99_ms'])})`,
  ];
  return parts.join(', ');
}

export function formatStatus(s: Json): string {
  const lines: string[] = [];
  const apps = (s['apps'] ?? []) as Json[];
  const rows: string[][] = [['APP', 'PREFIX', 'CLUSTER', 'WEIGHT', 'STATUS', 'CAPACITY', 'IN-FLIGHT', 'QUEUED', 'READY']];
  for (const a of apps) {
    for (const c of a['clusters'] as Json[]) {
      const cluster = c['role'] ? `${c['cluster']} (${c['role']})` : c['cluster'];
      rows.push([a['name'], a['route_prefix'], cluster, `${c['weight']}%`, c['status'], String(c['capacity']), String(c['in_flight']), String(c['queued']), c['ready'] ? 'yes' : `no (${c['not_ready_reason']})`]);
    }
  }
  lines.push(table(rows));
  // Gateway API mode: these weights are an HTTPRoute's, moved by whoever writes it (KubeRay).
  const owned = apps.filter((a) => typeof a['weights_from'] === 'string' && a['weights_from'].startsWith('httproute '));
  for (const a of owned) lines.push(`weights of ${a['name']} from ${a['weights_from']} (set them there, not here)`);
  lines.push('');
  const hr: string[][] = [['APP', 'HEALTH', 'WHY']];
  for (const a of apps) hr.push([a['name'], a['status'], a['status_reason']]);
  lines.push(table(hr));

  const rollouts = apps.filter((a) => a['rollout']);
  if (rollouts.length > 0) {
    lines.push('');
    const rr: string[][] = [['APP', 'FROM', 'TO', 'PHASE', 'AT', 'STEPS', 'IN STEP', 'NEXT']];
    for (const a of rollouts) {
      const r = a['rollout'] as Json;
      const steps = (r['steps'] as number[]).map((p, i) => (i < r['step_index'] ? `${p}` : i === r['step_index'] ? `[${p}]` : `${p}`)).join(',');
      const live = r['gate'] !== null;
      const next = r['next_step_percent'] === null || !live ? '-' : r['phase'] !== 'progressing' ? `${r['next_step_percent']}% (held)` : `${r['next_step_percent']}% in ${ms(r['next_step_in_ms'])}`;
      rr.push([a['name'], r['active_cluster'], r['pending_cluster'], r['phase'], `${r['traffic_routed_percent']}%`, `${steps} (${r['step_index'] + 1}/${r['steps'].length})`, live ? ms(r['time_in_step_ms']) : '-', next]);
    }
    lines.push(table(rr));
    for (const a of rollouts) {
      const r = a['rollout'] as Json;
      if (r['gate'] !== null) lines.push(`  ${a['name']} gate: ${formatGate(r['gate'])}`);
      lines.push(`  ${a['name']}: ${r['summary']}`);
      if (a['rollout_write_error']) lines.push(`  ${a['name']}: HELD, the next step could not be saved: ${a['rollout_write_error']['message']}`);
    }
  }
  lines.push('');
  const cr: string[][] = [['CLUSTER', 'ENDPOINTS UP', 'CIRCUIT', 'DASHBOARD', 'IN-FLIGHT', 'STREAMS', 'SAFE TO DELETE']];
  for (const c of (s['clusters'] ?? []) as Json[]) {
    const eps = c['endpoints'] as Json[];
    const name = c['role'] ? `${c['name']} (${c['role']})` : c['name'];
    cr.push([name, `${eps.filter((e) => e['healthy']).length}/${eps.length}`, c['circuit'], c['dashboard'] === null ? '-' : c['dashboard']['reachable'] ? 'reachable' : 'UNREACHABLE', String(c['in_flight']), String(c['open_streams']), c['safe_to_delete'] ? 'yes' : `no (${c['safe_to_delete_reason']})`]);
  }
  lines.push(table(cr));
  // `workers` > 1: the data-plane threads besides the main one (docs/workers.md).
  const workers = s['workers'] as Json | null | undefined;
  if (workers) {
    const threads = (workers['threads'] ?? []) as Json[];
    const down = threads.filter((t) => !t['running']).length;
    const restarts = threads.reduce((n, t) => n + Number(t['restarts'] ?? 0), 0);
    const slots = workers['admission_slots'] as Json | undefined;
    lines.push('');
    lines.push(
      `workers: ${workers['count']} data-plane threads (main + ${threads.length}${down > 0 ? `, ${down} NOT RUNNING` : ''}), ${restarts} restart(s)` +
        (slots ? `, shared admission slots ${slots['used']}/${slots['total']}` : ''),
    );
  }
  const cfg = (s['config'] ?? {}) as Json;
  const reload = cfg['last_reload'] as Json | null | undefined;
  const warnings: string[] = [];
  if (reload && !reload['ok']) warnings.push(`config reload at ${reload['at']} (${reload['reason']}) was refused; the previous config runs: ${reload['error']}`);
  for (const w of (reload?.['warnings'] ?? []) as string[]) warnings.push(w);
  for (const w of (cfg['warnings'] ?? []) as string[]) warnings.push(w);
  if (s['state']?.['write_error']) warnings.push(`traffic state cannot be saved: ${s['state']['write_error']['message']}`);
  if (warnings.length > 0) {
    lines.push('');
    for (const w of warnings) lines.push(`warning: ${w}`);
  }
  return lines.join('\n');
}
