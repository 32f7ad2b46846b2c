// Integration harness: simulated Serve clusters and a gateway in front of them,
// all on loopback port 0, in this process. Every test gets a fresh stack and
// closes it; nothing sleeps on a timer to wait (helpers poll a condition on
// the event loop with a bounded deadline).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSimConfig } from '../../src/sim/sim-config.ts';
import { startSim, type Sim } from '../../src/sim/sim.ts';
import { validateConfig } from '../../src/config/schema.ts';
import type { GatewayConfig } from '../../src/config/types.ts';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/main.ts';
import type { Logger } from '../../src/core/log.ts';

export const SERVE_YAML = `
applications:
  - name: llm
    route_prefix: /llm
    import_path: app:llm
    deployments:
      - name: LLMServer
        max_ongoing_requests: 4
        num_replicas: 2
  - name: default
    route_prefix: /
    import_path: app:web
    deployments:
      - name: Web
        max_ongoing_requests: 20
`;

export interface StackOptions {
  /** serveConfigV2 used by every simulated cluster. */
  serveYaml?: string;
  /** Cluster names and proxies per cluster. */
  clusters?: Array<{ name: string; proxies?: number; dashboard?: boolean; serveYaml?: string }>;
  /** Extra gateway YAML keys (object form), merged over the generated config. */
  gateway?: Record<string, unknown>;
  /** App behaviour in the sim (latency, tokens). */
  apps?: Record<string, { latency_ms?: number; tokens?: number; token_interval_ms?: number }>;
  gatewayOptions?: Partial<GatewayOptions>;
}

export interface Stack {
  sim: Sim;
  gw: Gateway;
  url: string;
  admin: string;
  stateDir: string;
  config: GatewayConfig;
  logs: LogRecorder;
  close(): Promise<void>;
}

export class LogRecorder implements Logger {
  readonly lines: Array<{ level: string; obj: object; msg: string | undefined }>;
  constructor(lines: Array<{ level: string; obj: object; msg: string | undefined }> = []) {
    this.lines = lines;
  }
  info(obj: object, msg?: string) {
    this.lines.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg?: string) {
    this.lines.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg?: string) {
    this.lines.push({ level: 'error', obj, msg });
  }
  debug() {}
  child(): Logger {
    return new LogRecorder(this.lines);
  }
}

export async function startSimOnly(opts: StackOptions = {}): Promise<Sim> {
  const clusters = opts.clusters ?? [{ name: 'blue', proxies: 2 }, { name: 'green', proxies: 1 }];
  const doc = {
    control: '127.0.0.1:0',
    clusters: clusters.map((c) => ({
      name: c.name,
      proxies: Array.from({ length: c.proxies ?? 1 }, () => '127.0.0.1:0'),
      ...(c.dashboard === false ? {} : { dashboard: '127.0.0.1:0' }),
      serve_config: c.serveYaml ?? opts.serveYaml ?? SERVE_YAML,
      ...(opts.apps ? { apps: opts.apps } : {}),
    })),
  };
  const parsed = parseSimConfig(doc, { file: 'test-sim.yaml', baseDir: process.cwd() });
  if (!parsed.ok) throw new Error(`sim config: ${JSON.stringify(parsed.issues)}`);
  return startSim(parsed.config, { control: false });
}

/** Gateway config document for a running sim (object form of the YAML). */
export function gatewayDoc(sim: Sim, stateDir: string, opts: StackOptions = {}): Record<string, unknown> {
  const clusters = opts.clusters ?? [{ name: 'blue', proxies: 2 }, { name: 'green', proxies: 1 }];
  const doc: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    state_dir: stateDir,
    clusters: clusters.map((c) => {
      const sc = sim.cluster(c.name);
      return {
        name: c.name,
        endpoints: sc.proxyUrls(),
        ...(sc.dashboardUrl ? { dashboard: sc.dashboardUrl } : {}),
        serve_config: c.serveYaml ?? opts.serveYaml ?? SERVE_YAML,
      };
    }),
    applications: { '*': { weights: { [clusters[0]!.name]: 100 } } },
    health: { probe_interval: '200ms', probe_timeout: '5s' },
    dashboard_poll_interval: '200ms',
    access_log: { sample_rate: 1 },
    shutdown: { drain_delay: '0s', grace_period: '2s' },
  };
  for (const [k, v] of Object.entries(opts.gateway ?? {})) doc[k] = v;
  return withUpstreamClientEnv(doc);
}

/**
 * SG_UPSTREAM_CLIENT=lean (or undici) runs the suites on that HTTP/1.1 client: sets
 * `upstream.client` in a gateway config document unless the test chose one;
 * SG_SERVER_ENGINE=lean (or node) does the same for `server.engine`.
 */
export function withUpstreamClientEnv(doc: Record<string, unknown>): Record<string, unknown> {
  setUnlessChosen(doc, 'upstream', 'client', process.env['SG_UPSTREAM_CLIENT']);
  // SG_SERVER_ENGINE=lean (or node): the same for `server.engine` (the data-plane HTTP/1.1 server).
  setUnlessChosen(doc, 'server', 'engine', process.env['SG_SERVER_ENGINE']);
  // SG_HTTP_PARSER=native (or wasm): the lean engines' llhttp (`server.parser`, `upstream.parser`).
  setUnlessChosen(doc, 'server', 'parser', process.env['SG_HTTP_PARSER']);
  setUnlessChosen(doc, 'upstream', 'parser', process.env['SG_HTTP_PARSER']);
  return doc;
}

function setUnlessChosen(doc: Record<string, unknown>, section: string, key: string, value: string | undefined): void {
  if (value === undefined || value === '') return;
  const sec = doc[section];
  if (sec !== undefined && sec !== null && typeof sec !== 'object') return;
  const obj = (sec ?? {}) as Record<string, unknown>;
  if (obj[key] === undefined) doc[section] = { ...obj, [key]: value };
}

export function buildConfig(doc: Record<string, unknown>): GatewayConfig {
  const r = validateConfig(withUpstreamClientEnv(doc), 'test-gateway.yaml', process.cwd(), (p) => readFileSync(p, 'utf8'));
  if (!r.ok) throw new Error(`gateway config: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return r.config;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const sim = await startSimOnly(opts);
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-state-'));
  const logs = new LogRecorder();
  let gw: Gateway;
  let config: GatewayConfig;
  try {
    config = buildConfig(gatewayDoc(sim, stateDir, opts));
    gw = await startGateway({ config, logger: logs, adminToken: 'test-token', watch: false, ...opts.gatewayOptions });
  } catch (err) {
    await sim.close();
    throw err;
  }
  await waitFor(() => [...gw.reconciler.clusters.values()].every((c) => c.endpoints.every((e) => e.health.probeOk === true)), 30_000, 'first probes');
  await waitFor(() => [...gw.pollers.keys()].every((name) => gw.dashboardStates.get(name)?.reachable === true), 30_000, 'first dashboard polls');
  return {
    sim,
    gw,
    url: gw.url,
    admin: gw.adminUrl,
    stateDir,
    config,
    logs,
    async close() {
      await gw.close();
      await sim.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Polls `cond` on the event loop (setImmediate) until true or the deadline passes. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const ADMIN_TOKEN = 'test-token';

export async function adminCall(stack: Stack, method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN) {
  const headers: Record<string, string> = {};
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.admin}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json: json as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}
