// `serve-gateway traffic …`: a thin client of the admin API (SPEC §3, §7).
// Exit codes: 0 done, 1 refused by the gateway, 2 usage error, 3 admin API unreachable.

const HELP = `Usage:
  serve-gateway traffic status
  serve-gateway traffic set APP CLUSTER=WEIGHT... [--force] [--reason TEXT]
  serve-gateway traffic rollout APP --to CLUSTER [--steps 5,25,50,100] [--interval 30s]
        [--max-error-rate 0.02] [--max-p99-latency 5s] [--max-ttfb-p99 2s] [--min-requests 50]
        [--on-failure rollback|pause] [--force]
  serve-gateway traffic pause|resume|promote|rollback APP [--force]
        (--force: promote / resume even when the target cluster is not ready)
  serve-gateway traffic events [--limit N]
Options: --admin URL (default http://127.0.0.1:9901, or $SERVE_GATEWAY_ADMIN), --json.
The bearer token comes from $SERVE_GATEWAY_ADMIN_TOKEN.
Exit codes: 0 ok, 1 refused, 2 usage, 3 admin API unreachable.
`;

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const BOOLEAN_FLAGS = new Set(['json', 'force', 'help']);

function parse(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h') flags.set('help', true);
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
      if (eq !== -1) flags.set(name, a.slice(eq + 1));
      else if (BOOLEAN_FLAGS.has(name)) flags.set(name, true);
      else flags.set(name, args[++i] ?? '');
    } else positional.push(a);
  }
  return { positional, flags };
}

class UsageError extends Error {}

/** Flags each subcommand takes (besides --admin, --json, --help): anything else is a usage error, never ignored. */
const COMMON_FLAGS = ['admin', 'json', 'help'];
const FLAGS_OF: Readonly<Record<string, readonly string[]>> = {
  status: [],
  events: ['limit'],
  set: ['force', 'reason'],
  rollout: ['to', 'steps', 'interval', 'max-error-rate', 'max-p99-latency', 'max-ttfb-p99', 'min-requests', 'on-failure', 'force'],
  pause: [],
  resume: ['force'],
  promote: ['force'],
  rollback: [],
};

function checkFlags(sub: string | undefined, flags: Map<string, string | true>): void {
  const allowed = sub === undefined ? undefined : FLAGS_OF[sub];
  if (allowed === undefined) return; // unknown subcommand: reported below
  for (const name of flags.keys()) {
    if (!COMMON_FLAGS.includes(name) && !allowed.includes(name)) {
      throw new UsageError(`unknown option --${name} for "traffic ${sub}"${allowed.length > 0 ? ` (it takes ${allowed.map((f) => `--${f}`).join(', ')})` : ''}`);
    }
  }
}

export async function runTrafficCommand(args: string[], out: (s: string) => void): Promise<number> {
  const { positional, flags } = parse(args);
  if (flags.has('help') || positional.length === 0) {
    out(HELP);
    return positional.length === 0 && !flags.has('help') ? 2 : 0;
  }
  const admin = String(flags.get('admin') ?? process.env['SERVE_GATEWAY_ADMIN'] ?? 'http://127.0.0.1:9901').replace(/\/+$/, '');
  const json = flags.has('json');
  const token = process.env['SERVE_GATEWAY_ADMIN_TOKEN'] ?? '';
  const [sub, app, ...rest] = positional;
  try {
    checkFlags(sub, flags);
    const call = async (method: string, path: string, body?: unknown) => {
      const headers: Record<string, string> = { 'x-actor': 'cli' };
      if (token !== '') headers['authorization'] = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      try {
        res = await fetch(`${admin}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      } catch (err) {
        throw new Unreachable(`cannot reach the admin API at ${admin}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
      }
      const data = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      return { status: res.status, data };
    };
    let r: { status: number; data: Record<string, unknown> };
    switch (sub) {
      case 'status':
        r = await call('GET', '/api/v1/status');
        if (r.status === 200 && !json) {
          out(formatStatus(r.data));
          return 0;
        }
        break;
      case 'events':
        r = await call('GET', `/api/v1/events?limit=${encodeURIComponent(String(flags.get('limit') ?? 20))}`);
        if (r.status === 200 && !json) {
          out(formatEvents(r.data));
          return 0;
        }
        break;
      case 'set': {
        if (app === undefined || rest.length === 0) throw new UsageError('traffic set needs APP and CLUSTER=WEIGHT...');
        const weights: Record<string, number> = {};
        for (const kv of rest) {
          const m = /^([^=]+)=(\d+)$/.exec(kv);
          if (m === null) throw new UsageError(`"${kv}" is not CLUSTER=WEIGHT (an integer 0..100)`);
          weights[m[1]!] = Number(m[2]);
        }
        const body: Record<string, unknown> = { weights, force: flags.has('force') };
        if (typeof flags.get('reason') === 'string') body['reason'] = flags.get('reason');
        r = await call('PUT', `/api/v1/apps/${encodeURIComponent(app)}/weights`, body);
        break;
      }
      case 'rollout': {
        const to = flags.get('to');
        if (app === undefined || typeof to !== 'string' || to === '') throw new UsageError('traffic rollout needs APP and --to CLUSTER');
        const body: Record<string, unknown> = { to, force: flags.has('force') };
        const steps = flags.get('steps');
        if (typeof steps === 'string') {
          const list = steps.split(',').map((s) => Number(s.trim()));
          if (list.some((n) => !Number.isInteger(n))) throw new UsageError(`--steps must be integers like 5,25,50,100 (got "${steps}")`);
          body['steps'] = list;
        }
        for (const [flag, key] of [['interval', 'interval'], ['max-p99-latency', 'max_p99_latency'], ['max-ttfb-p99', 'max_ttfb_p99'], ['on-failure', 'on_failure']] as const) {
          const v = flags.get(flag);
          if (typeof v === 'string') body[key] = v;
        }
        for (const [flag, key] of [['max-error-rate', 'max_error_rate'], ['min-requests', 'min_requests']] as const) {
          const v = flags.get(flag);
          if (typeof v === 'string') {
            if (Number.isNaN(Number(v))) throw new UsageError(`--${flag} must be a number`);
            body[key] = Number(v);
          }
        }
        r = await call('POST', `/api/v1/apps/${encodeURIComponent(app)}/rollout`, body);
        break;
      }
      case 'pause':
      case 'resume':
      case 'promote':
      case 'rollback':
        if (app === undefined) throw new UsageError(`traffic ${sub} needs APP`);
        if (rest.length > 0) throw new UsageError(`traffic ${sub} takes one APP (got also ${rest.join(' ')})`);
        r = await call('POST', `/api/v1/apps/${encodeURIComponent(app)}/rollout/${sub}`, flags.has('force') ? { force: true } : undefined);
        break;
      default:
        throw new UsageError(`unknown traffic command "${sub}"`);
    }
    if (json) out(JSON.stringify(r.data, null, 2));
    if (r.status >= 400) {
      const e = r.data['error'] as { code?: string; message?: string } | undefined;
      if (!json) process.stderr.write(`refused (${r.status} ${e?.code ?? ''}): ${e?.message ?? 'no reason given'}\n`);
      return 1;
    }
    if (!json) out(formatChange(sub!, r.data));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`serve-gateway traffic: ${err.message}\n\n${HELP}`);
      return 2;
    }
    if (err instanceof Unreachable) {
      process.stderr.write(`serve-gateway traffic: ${err.message}\n`);
      return 3;
    }
    throw err;
  }
}

class Unreachable extends Error {}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function formatStatus(s: Json): string {
  const lines: string[] = [];
  const rows: string[][] = [['APP', 'PREFIX', 'CLUSTER', 'WEIGHT', 'STATUS', 'CAPACITY', 'IN-FLIGHT', 'QUEUED', 'READY']];
  for (const a of s['apps'] as Json[]) {
    for (const c of a['clusters'] as Json[]) {
      rows.push([a['name'], a['route_prefix'], c['cluster'], `${c['weight']}%`, c['status'], String(c['capacity']), String(c['in_flight']), String(c['queued']), c['ready'] ? 'yes' : `no (${c['not_ready_reason']})`]);
    }
  }
  lines.push(table(rows));
  const rollouts = (s['apps'] as Json[]).filter((a) => a['rollout']);
  if (rollouts.length > 0) {
    lines.push('');
    const rr: string[][] = [['APP', 'FROM', 'TO', 'PHASE', 'TARGET WEIGHT', 'STEP', 'REASON']];
    for (const a of rollouts) {
      const r = a['rollout'] as Json;
      rr.push([a['name'], r['activeCluster'], r['pendingCluster'], r['phase'], `${r['trafficRoutedPercent']}%`, `${r['stepIndex'] + 1}/${r['policy']['steps'].length}`, r['reason'] ?? '']);
    }
    lines.push(table(rr));
  }
  lines.push('');
  const cr: string[][] = [['CLUSTER', 'ENDPOINTS UP', 'CIRCUIT', 'DASHBOARD', 'IN-FLIGHT', 'STREAMS', 'SAFE TO DELETE']];
  for (const c of s['clusters'] as Json[]) {
    const eps = c['endpoints'] as Json[];
    cr.push([c['name'], `${eps.filter((e) => e['healthy']).length}/${eps.length}`, c['circuit'], c['dashboard'] === null ? '-' : c['dashboard']['reachable'] ? 'reachable' : 'UNREACHABLE', String(c['in_flight']), String(c['open_streams']), c['safe_to_delete'] ? 'yes' : 'no']);
  }
  lines.push(table(cr));
  return lines.join('\n');
}

function formatEvents(d: Json): string {
  const rows: string[][] = [['ID', 'WHEN', 'WHO', 'APP', 'ACTION', 'RESULT', 'TO', 'REASON']];
  for (const e of d['events'] as Json[]) {
    rows.push([String(e['id']), e['at'], e['actor'], e['app'], e['action'], e['result'], e['to'] ? weightsText(e['to']) : '', e['reason']]);
  }
  return table(rows);
}

function weightsText(w: Json): string {
  return Object.entries(w).map(([c, v]) => `${c}=${v}`).join(' ');
}

function formatChange(sub: string, d: Json): string {
  const w = d['weights'] ? weightsText(d['weights']) : '';
  const r = d['rollout'] as Json | null;
  const roll = r ? `; rollout ${r['phase']} (${r['activeCluster']} → ${r['pendingCluster']} at ${r['trafficRoutedPercent']}%)` : '';
  return `${sub}: ${d['app']} now ${w}${roll}`;
}
