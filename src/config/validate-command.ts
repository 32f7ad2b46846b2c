// `serve-gateway validate --config FILE`: checks a config and prints the
// derived route table and admission capacities (SPEC §3). The dashboard is not
// polled: capacities come from serve_config only.
import { perGatewayLimit } from '../core/admission-share.ts';
import { formatIssues, loadConfigFile } from './load.ts';
import type { AppPolicy, GatewayConfig } from './types.ts';

export const DEFAULT_CONFIG_PATH = 'config/gateway.yaml';

const HELP = `Usage: serve-gateway validate [--config FILE] [--json] [--live]

Checks a gateway config file. On success prints the route table (route prefix
-> application, per cluster) and the admission capacity of every application on
every cluster, and exits 0. On failure prints every problem (file, key path,
reason) and exits 1.

Options:
  --config FILE   config file (default ${DEFAULT_CONFIG_PATH})
  --json          print JSON instead of text
  --live          kubernetes mode: also list the RayServices and their pods from
                  the API server and report clusters (with roles), ready serve
                  pods, apps, capacities, and rollout policies that cannot finish
                  before KubeRay deletes the old cluster; exit 1 when a named
                  RayService is missing or the API server cannot be read
  -h, --help      show this help
`;

export interface RouteRow {
  readonly cluster: string;
  readonly prefix: string | null;
  readonly app: string;
}

export interface CapacityRow {
  readonly app: string;
  readonly cluster: string;
  readonly ingressDeployment: string;
  readonly maxOngoingRequests: number;
  readonly replicas: number;
  /** max_ongoing_requests × replicas (whole cluster). */
  readonly limit: number;
  /** Per gateway replica: what each replica admits (core/admission-share.ts, as the runtime). */
  readonly limitPerGateway: number;
  readonly queueSize: number;
  readonly source: 'serve_config' | 'dashboard-not-polled';
}

export interface ClusterSummary {
  readonly name: string;
  readonly endpoints: readonly string[];
  readonly dashboard: string | null;
  readonly hasServeConfig: boolean;
}

export interface ValidateSummary {
  readonly clusters: readonly ClusterSummary[];
  readonly routes: readonly RouteRow[];
  readonly capacities: readonly CapacityRow[];
  readonly policies: Readonly<Record<string, { weights: Record<string, number> | null; sticky: string | null }>>;
}

/** Runs the validate command; returns the exit code (0 ok, 1 invalid config, 2 usage error). */
/** What `--live` reports (kubernetes mode); injected by the CLI so that config/ stays free of Kubernetes code. */
export type LiveCheck = (config: GatewayConfig) => Promise<{ ok: boolean; text: string; json: object }>;

export async function runValidateCommand(args: readonly string[], out: (s: string) => void, liveCheck?: LiveCheck): Promise<number> {
  let configPath = DEFAULT_CONFIG_PATH;
  let json = false;
  let live = false;
  const rest = args[0] === 'validate' ? args.slice(1) : args;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === '--help' || a === '-h') {
      out(HELP);
      return 0;
    } else if (a === '--json') json = true;
    else if (a === '--live') live = true;
    else if (a === '--config' || a === '-c') {
      const v = rest[++i];
      if (v === undefined || v === '') {
        out(`serve-gateway validate: --config needs a file\n\n${HELP}`);
        return 2;
      }
      configPath = v;
    } else if (a.startsWith('--config=')) configPath = a.slice('--config='.length);
    else {
      out(`serve-gateway validate: unknown argument "${a}"\n\n${HELP}`);
      return 2;
    }
  }

  const result = await loadConfigFile(configPath);
  if (!result.ok) {
    if (json) out(JSON.stringify({ ok: false, file: configPath, issues: result.issues }, null, 2));
    else {
      const n = result.issues.length;
      out(`${formatIssues(result.issues)}\n${configPath}: ${n} problem${n === 1 ? '' : 's'}; config refused\n`);
    }
    return 1;
  }
  const summary = summarizeConfig(result.config);
  if (live && (liveCheck === undefined || result.config.source !== 'kubernetes')) {
    out(`serve-gateway validate: --live needs source: kubernetes\n`);
    return 2;
  }
  const report = live ? await liveCheck!(result.config) : null;
  if (json) out(JSON.stringify({ ok: report?.ok ?? true, file: configPath, ...summary, ...(report ? { kubernetes: report.json } : {}) }, null, 2));
  else out(renderSummary(configPath, result.config, summary) + (report?.text ?? ''));
  return report === null || report.ok ? 0 : 1;
}

/** The route table and capacities derivable without contacting any cluster. */
export function summarizeConfig(config: GatewayConfig): ValidateSummary {
  const routes: RouteRow[] = [];
  const capacities: CapacityRow[] = [];
  for (const c of config.clusters) {
    for (const app of c.serveApps ?? []) {
      routes.push({ cluster: c.name, prefix: app.routePrefix, app: app.name });
      const limit = app.maxOngoingRequests * app.replicas;
      const queueSize =
        app.maxQueuedRequests === -1
          ? config.admission.queueSize
          : Math.min(config.admission.queueSize, app.maxQueuedRequests);
      capacities.push({
        app: app.name,
        cluster: c.name,
        ingressDeployment: app.ingressDeployment,
        maxOngoingRequests: app.maxOngoingRequests,
        replicas: app.replicas,
        limit,
        limitPerGateway: perGatewayLimit(limit, config.admission.gatewayReplicas),
        queueSize,
        source: 'serve_config',
      });
    }
  }
  routes.sort((a, b) => a.cluster.localeCompare(b.cluster) || (b.prefix ?? '').length - (a.prefix ?? '').length);
  const policies: Record<string, { weights: Record<string, number> | null; sticky: string | null }> = {};
  const describe = (p: AppPolicy) => ({
    weights: p.weights ? { ...p.weights } : null,
    sticky: p.sticky ? `${p.sticky.kind}:${p.sticky.name}` : null,
  });
  policies['*'] = describe(config.defaults);
  for (const [name, p] of config.applications) policies[name] = describe(p);
  return {
    clusters: config.clusters.map((c) => ({
      name: c.name,
      endpoints: c.endpoints,
      dashboard: c.dashboard,
      hasServeConfig: c.serveApps !== null,
    })),
    routes,
    capacities,
    policies,
  };
}

function renderSummary(file: string, config: GatewayConfig, s: ValidateSummary): string {
  const lines: string[] = [`${file}: OK`, ''];
  lines.push(`listen ${hp(config.listen)}, admin ${hp(config.admin.listen)}, state_dir ${config.stateDir}`, '');
  const k = config.kubernetes;
  if (k !== null) {
    const which = k.rayservices !== null ? `RayServices ${k.rayservices.join(', ')}` : `RayServices matching "${k.selector}"`;
    lines.push(`source kubernetes: ${which} in namespace ${k.namespace}, upgrade ${k.upgrade}, kubeconfig ${k.kubeconfig ?? '(in-cluster or $KUBECONFIG)'}`);
    lines.push(`  clusters, routes and capacities are discovered at run time (validate --live reads them now); last_known_good ${k.lastKnownGood}`, '');
  }
  lines.push('Routes (route prefix -> application):');
  for (const c of s.clusters) {
    lines.push(`  cluster ${c.name} (${c.endpoints.join(', ')})`);
    const rows = s.routes.filter((r) => r.cluster === c.name);
    if (!c.hasServeConfig) {
      lines.push(
        c.dashboard
          ? `    (no serve_config: applications come from the dashboard ${c.dashboard}, not polled by validate)`
          : '    (no serve_config and no dashboard: no applications known)',
      );
    } else if (rows.length === 0) lines.push('    (serve_config has no applications)');
    for (const r of rows) lines.push(`    ${r.prefix === null ? '(no route)' : r.prefix}  ->  ${r.app}`);
  }
  lines.push('');
  lines.push(`Capacities (per app and cluster; queue_size ${config.admission.queueSize}, gateway_replicas ${config.admission.gatewayReplicas}):`);
  const table: string[][] = [['app', 'cluster', 'ingress', 'limit', 'queue', 'source']];
  for (const r of s.capacities) {
    const per = config.admission.gatewayReplicas > 1 ? ` (${r.limitPerGateway}/gateway)` : '';
    table.push([
      r.app,
      r.cluster,
      r.ingressDeployment,
      `${r.maxOngoingRequests} x ${r.replicas} = ${r.limit}${per}`,
      String(r.queueSize),
      r.source,
    ]);
  }
  for (const c of s.clusters) {
    if (!c.hasServeConfig && c.dashboard) table.push(['*', c.name, '?', '?', '?', 'dashboard-not-polled']);
  }
  lines.push(...renderTable(table).map((l) => `  ${l}`));
  lines.push('');
  lines.push('Traffic policies:');
  for (const [name, p] of Object.entries(s.policies)) {
    const w = p.weights
      ? Object.entries(p.weights)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')
      : '(first cluster serving the app)';
    lines.push(`  ${name}: weights ${w}${p.sticky ? `, sticky ${p.sticky}` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

function renderTable(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '));
}

function hp(h: { host: string; port: number }): string {
  return h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}
