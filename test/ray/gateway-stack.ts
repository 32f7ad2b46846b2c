// A serve-gateway in this process in front of real Ray clusters (RayCluster),
// plus a closed-loop load generator that counts every outcome.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/schema.ts';
import { startGateway } from '../../src/main.ts';
import { withUpstreamClientEnv } from '../helpers/stack.ts';
import type { Gateway } from '../../src/main.ts';
import { LogRecorder } from '../helpers/stack.ts';
import { send } from '../conformance/http-client.ts';
import type { HttpResult } from '../conformance/http-client.ts';
import type { RayCluster, ServeDoc } from './ray-cluster.ts';
import { DEADLINE, machineLoad, waitUntil } from './ray-cluster.ts';

export const ADMIN_TOKEN = 'ray-test-token';
/** The stack's dashboard_poll_interval (the poll's timeout is the same, capped at 5 s). */
export const DASHBOARD_POLL_MS = 250;

export type LogLine = LogRecorder['lines'][number];

export interface GatewayStack {
  gw: Gateway;
  url: string;
  admin: string;
  logs: LogLine[];
  status(): Promise<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  setWeights(app: string, weights: Record<string, number>): Promise<number>;
  close(): Promise<void>;
}

export async function startGatewayFor(clusters: RayCluster[], serveDocs: ServeDoc[], extra: Record<string, unknown> = {}): Promise<GatewayStack> {
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-ray-state-'));
  const doc: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    state_dir: stateDir,
    clusters: clusters.map((c, i) => ({
      name: c.name,
      endpoints: [c.serveUrl],
      dashboard: c.dashboardUrl,
      serve_config: serveDocs[i],
    })),
    applications: { '*': { weights: { [clusters[0]!.name]: 100 } } },
    health: { probe_interval: '250ms', probe_timeout: '1s' },
    dashboard_poll_interval: `${DASHBOARD_POLL_MS}ms`,
    access_log: { sample_rate: 0 },
    shutdown: { drain_delay: '0s', grace_period: '2s' },
    ...extra,
  };
  // SG_UPSTREAM_CLIENT=lean runs the real-Serve suite on the lean upstream client.
  const r = validateConfig(withUpstreamClientEnv(doc), 'ray-test-gateway.yaml', process.cwd(), () => {
    throw new Error('no files');
  });
  if (!r.ok) throw new Error(`gateway config: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  const logs = new LogRecorder();
  const gw = await startGateway({ config: r.config, logger: logs, adminToken: ADMIN_TOKEN, watch: false });
  const admin = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await send(`${gw.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: JSON.parse(res.body) };
  };
  const stack: GatewayStack = {
    gw,
    url: gw.url,
    admin: gw.adminUrl,
    logs: logs.lines,
    status: async () => (await admin('GET', '/api/v1/status')).json,
    setWeights: async (app, weights) => {
      const res = await admin('PUT', `/api/v1/apps/${encodeURIComponent(app)}/weights`, { weights });
      if (res.status !== 200) throw new Error(`set weights ${app}: ${res.status} ${JSON.stringify(res.json)}`);
      return res.status;
    },
    close: async () => {
      await gw.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** Capacity the gateway uses for (app, cluster) right now, from /api/v1/status. */
export async function capacityOf(stack: GatewayStack, app: string, cluster: string): Promise<{ capacity: number; replicas: number | null; status: string }> {
  const s = await stack.status();
  const a = (s['apps'] as Array<{ name: string; clusters: Array<{ cluster: string; capacity: number; replicas: number | null; status: string }> }>).find((x) => x.name === app);
  const c = a?.clusters.find((x) => x.cluster === cluster);
  if (!c) throw new Error(`no ${app}/${cluster} in status`);
  return { capacity: c.capacity, replicas: c.replicas, status: c.status };
}

export async function dashboardReachable(stack: GatewayStack, cluster: string): Promise<boolean | null> {
  const s = await stack.status();
  const c = (s['clusters'] as Array<{ name: string; dashboard: { reachable: boolean } | null }>).find((x) => x.name === cluster);
  return c?.dashboard?.reachable ?? null;
}

/** What the gateway shows for `cluster` (its dashboard poll, endpoints) and for `apps` on it: for a wait's timeout message. */
export async function observeGateway(stack: GatewayStack, cluster: string, apps: string[] = []): Promise<string> {
  let s: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    s = await stack.status();
  } catch (err) {
    return `gateway admin API: ${String(err)}`;
  }
  const c = (s['clusters'] as Array<Record<string, any>>).find((x) => x['name'] === cluster); // eslint-disable-line @typescript-eslint/no-explicit-any
  const lines = [
    c
      ? `gateway view of ${cluster}: dashboard ${JSON.stringify(c['dashboard'])}; apps_source ${c['apps_source']}, stale ${c['apps_stale']}; circuit ${c['circuit']}; endpoints ${JSON.stringify((c['endpoints'] as Array<Record<string, unknown>>).map((e) => ({ url: e['url'], healthy: e['healthy'], probe: e['probe'], message: e['probe_message'] })))}`
      : `gateway has no cluster ${cluster}`,
  ];
  for (const a of apps) {
    const app = (s['apps'] as Array<{ name: string; clusters: Array<Record<string, unknown>> }>).find((x) => x.name === a);
    const t = app?.clusters.find((x) => x['cluster'] === cluster);
    lines.push(t ? `gateway app ${a} on ${cluster}: status ${t['status']}, replicas ${t['replicas']}, capacity ${t['capacity']}, in_flight ${t['in_flight']}` : `gateway app ${a}: no ${cluster} target`);
  }
  const warn = stack.logs.filter((l) => l.level === 'warn' || l.level === 'error').slice(-5);
  if (warn.length > 0) lines.push(`last gateway warnings:\n  ${warn.map((l) => `${l.level} ${l.msg ?? ''} ${JSON.stringify(l.obj)}`.slice(0, 300)).join('\n  ')}`);
  lines.push(machineLoad());
  return lines.join('\n');
}

/** Waits until every app of `apps` is RUNNING on `cluster` with live capacity. */
export async function waitLive(stack: GatewayStack, cluster: string, apps: string[], timeoutMs: number = DEADLINE.gatewayLive): Promise<void> {
  await waitUntil(`gateway sees ${apps.join(',')} live on ${cluster}`, timeoutMs, async () => {
    for (const a of apps) {
      const c = await capacityOf(stack, a, cluster);
      if (c.status !== 'RUNNING' || c.capacity <= 0) return false;
    }
    return true;
  }, { observe: () => observeGateway(stack, cluster, apps) });
}

export interface LoadResult {
  ok: number;
  failed: number;
  failures: string[];
  byCluster: Record<string, number>;
  /** Requests started after `mark()` and which cluster served them. */
  afterMark: Record<string, number>;
  streams: number;
  /** 'stop': stop() ended it; 'limit': it ran its whole duration. */
  endedBy: 'stop' | 'limit' | 'running';
}

/**
 * `clients` closed loops until stop() or for at most `durationMs` (a fixed run,
 * or an upper bound for a load the test stops itself: check `endedBy`),
 * alternating a JSON request and an SSE stream; a request fails on any non-200,
 * a transport error, or a stream that does not end in data: [DONE].
 */
export function runLoad(baseUrl: string, opts: { clients: number; durationMs: number; path: string }): { done: Promise<LoadResult>; mark(): void; stop(): void; snapshot(): LoadResult } {
  const res: LoadResult = { ok: 0, failed: 0, failures: [], byCluster: {}, afterMark: {}, streams: 0, endedBy: 'running' };
  let stopped = false;
  let marked = false;
  let end = Date.now() + opts.durationMs;
  const client = async (k: number): Promise<void> => {
    let i = 0;
    while (Date.now() < end) {
      const stream = (i++ + k) % 2 === 1;
      const after = marked;
      const url = `${baseUrl}${opts.path}${stream ? '/stream?tokens=5&interval_ms=10' : '?latency_ms=20'}`;
      let r: HttpResult | null = null;
      let err = '';
      try {
        r = await send(url);
      } catch (e) {
        err = String(e);
      }
      const good = r !== null && r.status === 200 && (!stream || r.body.endsWith('data: [DONE]\n\n'));
      if (good && r) {
        res.ok++;
        if (stream) res.streams++;
        const cl = String(r.headers['x-serve-cluster'] ?? '?');
        res.byCluster[cl] = (res.byCluster[cl] ?? 0) + 1;
        if (after) res.afterMark[cl] = (res.afterMark[cl] ?? 0) + 1;
      } else {
        res.failed++;
        if (res.failures.length < 20) res.failures.push(r ? `${r.status} ${r.headers['x-gateway-flag'] ?? ''} ${r.body.slice(0, 200)}` : err);
      }
    }
  };
  const done = Promise.all(Array.from({ length: opts.clients }, (_, k) => client(k))).then(() => {
    res.endedBy = stopped ? 'stop' : 'limit';
    return res;
  });
  return {
    done,
    mark: () => (marked = true),
    stop: () => {
      if (res.endedBy === 'running' && Date.now() < end) stopped = true;
      end = 0;
    },
    snapshot: () => structuredClone(res),
  };
}
