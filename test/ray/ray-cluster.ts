// Harness for real Ray clusters on one machine (test/ray/*.test.ts): each
// cluster is one `ray start --head` with its own ports, temp dir and process
// group, Serve HTTP on its own loopback port, apps deployed through the
// dashboard's PUT /api/serve/applications/. Optional GCS fault tolerance with a
// redis-server the harness starts. Everything the harness starts is killed by
// process group (never `ray stop`, which stops every Ray on the machine), on
// close() and again from a process 'exit' guard, so no process survives a run.
//
// The venv comes from scripts/ray-env.sh (RAY_VENV); tests skip without it.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

export const REPO = resolve(import.meta.dirname, '../..');
export const APPS_DIR = join(REPO, 'test/ray/apps');
export const RAY_VENV = resolve(REPO, process.env['RAY_VENV'] ?? `.venv/ray-${process.env['RAY_VERSION'] ?? '2.53.0'}`);
const RAY_BIN = join(RAY_VENV, 'bin/ray');

/** Why the real-Ray tests cannot run here, or null. */
export function rayUnavailable(): string | null {
  if (!existsSync(RAY_BIN)) return `no Ray venv at ${RAY_VENV} (run npm run test:ray)`;
  return null;
}

// ---------------------------------------------------------------- cleanup guard

/** Process groups and pids this process started; killed on exit whatever happens. */
const groups = new Set<number>();
const pids = new Set<number>();
const tempDirs = new Set<string>();

function killAll(): void {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const d of tempDirs) {
    for (const p of pidsUsing(d)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(d, { recursive: true, force: true });
  }
  groups.clear();
  pids.clear();
  tempDirs.clear();
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** Pids (not ours) whose command line mentions `needle`: strays of a cluster. */
export function pidsUsing(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'latin1').includes(needle)) out.push(pid);
    } catch {
      /* exited */
    }
  }
  return out;
}

/** Pids whose /proc/PID/stat field (0 = state, 1 = ppid, 2 = pgrp, after the command) equals `value`. */
function pidsWhere(field: number, value: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[field]) === value) out.push(Number(name));
    } catch {
      /* exited */
    }
  }
  return out;
}

/** Pids in process group `pgid`. */
function pidsInGroup(pgid: number): number[] {
  return pidsWhere(2, pgid);
}

// ---------------------------------------------------------------- ports

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => res(true)));
  });
}

/** Picks `blocks` free blocks of 100 ports in 21000–29999 (below the ephemeral range). */
export async function freePortBlocks(blocks: number): Promise<number[]> {
  const candidates = Array.from({ length: 90 }, (_, i) => 21000 + i * 100).sort(() => Math.random() - 0.5);
  const out: number[] = [];
  for (const base of candidates) {
    let ok = true;
    for (let p = base; p < base + 100 && ok; p++) ok = await portFree(p);
    if (ok) out.push(base);
    if (out.length === blocks) return out;
  }
  throw new Error('no free port blocks in 21000-29999');
}

// ---------------------------------------------------------------- deadlines

/**
 * Deadlines of the slow suite, sized for a busy 2-core CI machine (two Ray
 * clusters and the gateway sharing it), not for a typical run: several times
 * what such a machine was seen to need (docs/ci.md). A deadline only bounds a
 * failing run; a passing run never waits for one. Hook and test timeouts are
 * sums of these, so a wait always runs out (with its diagnostic) before the
 * node:test timeout of the hook or test around it.
 */
export const DEADLINE = {
  /** `ray start` returned → dashboard answers GET /api/serve/applications/ (measured 1-3 s: `ray start` waits for most of it). */
  dashboardStart: 300_000,
  /** PUT /api/serve/applications/ → every app RUNNING (typical well under a minute). */
  deploy: 300_000,
  /** Apps RUNNING → the Serve proxy answers /-/healthz (typical < 5 s). */
  proxy: 120_000,
  /** Apps RUNNING on Ray → the gateway's dashboard poll shows them live (typical < 2 s). */
  gatewayLive: 60_000,
  /** A killed GCS restarted → the raylet back on it and the proxy healthy (measured < 1 s). */
  gcsRestart: 180_000,
  /** A killed dashboard restarted → it answers 200 again (measured 15 s idle, 68-95 s on a busy machine; CI saw 35 s to over 85 s). */
  dashboardRestart: 360_000,
  /** Every process of a stopped cluster gone (typical < 1 s). */
  processesGone: 60_000,
} as const;

/** Timeout for a before() hook that starts clusters, deploys and starts a gateway (waits run one after another). */
export const CLUSTER_SETUP_TIMEOUT_MS = DEADLINE.dashboardStart + DEADLINE.deploy + DEADLINE.proxy + DEADLINE.gatewayLive + 60_000;

// ---------------------------------------------------------------- polling

export interface WaitOptions {
  /** Pause between probes (default 200 ms). */
  readonly everyMs?: number;
  /**
   * What to report when the wait runs out: called once, on timeout, and its
   * text appended to the error, so the failure can be diagnosed from the CI log
   * alone (process alive? port open? last HTTP answer? tail of the Ray log).
   */
  readonly observe?: () => string | Promise<string>;
}

/**
 * Thrown by a probe when waiting longer cannot help (e.g. the dashboard logged
 * that it cannot start): waitUntil stops at once and reports it with observe().
 */
export class WaitAborted extends Error {}

/** Longest a single observe() may take before its diagnostic is given up. */
const OBSERVE_TIMEOUT_MS = 15_000;

/**
 * Probes every `everyMs` until `probe` returns a value (not null/undefined/false)
 * or `timeoutMs` runs out. A probe that hangs does not hold the wait past its
 * deadline. On timeout the error names what was awaited, how many probes ran,
 * what the last one did (its exception, or "not yet"), and what `observe` saw.
 */
export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>, opts: number | WaitOptions = {}): Promise<T> {
  const { everyMs = 200, observe } = typeof opts === 'number' ? { everyMs: opts } : opts;
  const start = Date.now();
  const deadline = start + timeoutMs;
  let probes = 0;
  let lastError: unknown = null;
  let lastErrorAt = 0;
  let lastResult = 'none yet';
  for (;;) {
    probes++;
    let timer: NodeJS.Timeout | undefined;
    const cutoff = new Promise<'cutoff'>((r) => (timer = setTimeout(() => r('cutoff'), Math.max(deadline - Date.now(), everyMs))));
    try {
      const v = await Promise.race([probe(), cutoff]);
      if (v === 'cutoff') lastResult = 'still running at the deadline';
      else if (v !== null && v !== undefined && v !== false) return v as T;
      else lastResult = `returned ${String(v)}`;
    } catch (err) {
      if (err instanceof WaitAborted) {
        let msg = `gave up after ${Date.now() - start} ms waiting for ${what}: ${err.message}`;
        if (observe) msg += `\nobserved:\n${indent(await observeSafely(observe))}`;
        throw new Error(msg);
      }
      lastError = err;
      lastErrorAt = Date.now();
      lastResult = `threw: ${errText(err)}`;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() > deadline) {
      let msg = `timed out after ${timeoutMs} ms waiting for ${what} (${probes} probes; last probe ${lastResult}`;
      if (lastError !== null && !lastResult.startsWith('threw')) msg += `; last error ${Date.now() - lastErrorAt} ms before: ${errText(lastError)}`;
      msg += ')';
      if (observe) msg += `\nobserved at the deadline:\n${indent(await observeSafely(observe))}`;
      throw new Error(msg);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function observeSafely(observe: () => string | Promise<string>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(observe),
      new Promise<string>((r) => (timer = setTimeout(() => r(`(observe did not finish within ${OBSERVE_TIMEOUT_MS} ms)`), OBSERVE_TIMEOUT_MS))),
    ]);
  } catch (err) {
    return `(observe failed: ${errText(err)})`;
  } finally {
    clearTimeout(timer);
  }
}

function errText(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } } | null;
  if (e === null || typeof e !== 'object') return String(err);
  const cause = e.cause?.code ?? e.cause?.message;
  return `${e.message ?? String(err)}${e.code && !(e.message ?? '').includes(e.code) ? ` (${e.code})` : ''}${cause ? ` (${cause})` : ''}`;
}

function indent(text: string): string {
  return text.split('\n').map((l) => `  ${l}`).join('\n');
}

// ---------------------------------------------------------------- diagnostics

/** "alive (state S)", "zombie", or "gone": a pid as /proc shows it. */
export function procState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat[stat.lastIndexOf(')') + 2];
    return state === 'Z' ? 'zombie' : `alive (state ${state})`;
  } catch {
    return 'gone';
  }
}

/** TCP connect to 127.0.0.1:port: "open", "refused", "timeout", or the error code. */
export function tcpState(port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((res) => {
    const t0 = Date.now();
    const s = connect({ port, host: '127.0.0.1' });
    s.setTimeout(timeoutMs, () => {
      s.destroy();
      res(`no answer within ${timeoutMs} ms`);
    });
    s.once('connect', () => {
      s.destroy();
      res(`open (connect ${Date.now() - t0} ms)`);
    });
    s.once('error', (e: NodeJS.ErrnoException) => res(e.code === 'ECONNREFUSED' ? 'refused' : (e.code ?? e.message)));
  });
}

/** One GET, described: "200 in 35 ms: {...}" or the error. */
export async function httpState(url: string, timeoutMs = 5000): Promise<string> {
  const t0 = Date.now();
  try {
    const r = await httpGet(url, timeoutMs);
    return `${r.status} in ${Date.now() - t0} ms: ${r.text.slice(0, 300).replace(/\s+/g, ' ')}`;
  } catch (err) {
    return `error after ${Date.now() - t0} ms: ${errText(err)}`;
  }
}

/** The last `lines` lines of a text file, or why not. */
export function tailFile(path: string, lines = 8): string {
  try {
    const st = statSync(path);
    const fd = openSync(path, 'r');
    try {
      const len = Math.min(st.size, 64 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, st.size - len);
      const all = buf.toString('utf8').split('\n');
      if (all.at(-1) === '') all.pop();
      return all.slice(-lines).map((l) => l.slice(0, 400)).join('\n') || '(empty)';
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    return `(${errText(err)})`;
  }
}

/** The dashboard's log files under logs/. */
const DASHBOARD_LOGS = ['dashboard.log', 'dashboard.err'] as const;

/** "load average 3.10 2.80 2.10 on 2 CPUs": how busy the machine was. */
export function machineLoad(): string {
  try {
    return `load average ${readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' ')} on ${availableParallelism()} CPUs`;
  } catch {
    return 'load average unknown';
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/**
 * Plain node:http calls: the Ray dashboard refuses mutating requests that look
 * like browser traffic (405 "Method Not Allowed for browser traffic"), and
 * fetch() sends `sec-fetch-mode: cors`.
 */
function httpCall(method: string, url: string, body: string | null, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((res, rej) => {
    const req = httpRequest(url, { method, agent: false, timeout: timeoutMs, headers: body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      r.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', rej);
    req.end(body ?? undefined);
  });
}

export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; text: string }> {
  return httpCall('GET', url, null, timeoutMs);
}

// ---------------------------------------------------------------- redis

export class Redis {
  readonly port: number;
  readonly child: ChildProcess;

  private constructor(port: number, child: ChildProcess) {
    this.port = port;
    this.child = child;
  }

  static async start(port: number): Promise<Redis> {
    const bin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
    if (!bin) throw new Error('redis-server not installed (apt-get install redis-server)');
    const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
      stdio: 'ignore',
      detached: true,
    });
    if (child.pid === undefined) throw new Error('redis-server did not start');
    groups.add(child.pid);
    const r = new Redis(port, child);
    await waitUntil(`redis on ${port}`, 60_000, async () => !(await portFree(port)), {
      observe: async () => `redis-server pid ${child.pid}: ${procState(child.pid as number)}; port ${port}: ${await tcpState(port)}`,
    });
    return r;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  stop(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    groups.delete(pid);
  }
}

// ---------------------------------------------------------------- ray cluster

export interface RayClusterOptions {
  readonly name: string;
  /** First of 100 free ports (freePortBlocks). */
  readonly portBase: number;
  readonly numCpus?: number;
  /** GCS fault tolerance: external Redis for GCS state. */
  readonly redis?: Redis;
  readonly env?: Record<string, string>;
}

interface ProcInfo {
  readonly pid: number;
  readonly argv: string[];
  readonly env: Record<string, string>;
}

/** Serve deploy document (ServeDeploySchema) with our http_options. */
export type ServeDoc = Record<string, unknown>;

export class RayCluster {
  readonly name: string;
  readonly portBase: number;
  readonly tempDir: string;
  readonly dashboardUrl: string;
  readonly serveUrl: string;
  readonly servePort: number;
  readonly redis: Redis | null;
  /** The `ray start` process group: every Ray process of the cluster. */
  pgid = 0;
  /** Processes the harness restarted by hand (their own groups). */
  readonly restarted: number[] = [];
  /** ms from `ray start` returning to the dashboard's first 200 (for the CI log). */
  dashboardStartMs = 0;
  #stopped = false;

  private constructor(opts: RayClusterOptions, tempDir: string) {
    this.name = opts.name;
    this.portBase = opts.portBase;
    this.tempDir = tempDir;
    this.dashboardUrl = `http://127.0.0.1:${opts.portBase + 1}`;
    this.servePort = opts.portBase + 9;
    this.serveUrl = `http://127.0.0.1:${this.servePort}`;
    this.redis = opts.redis ?? null;
  }

  static async start(opts: RayClusterOptions): Promise<RayCluster> {
    const why = rayUnavailable();
    if (why) throw new Error(why);
    // Short path: Ray's unix sockets live under it (108-byte limit).
    const tempDir = mkdtempSync(`/tmp/sg-${opts.name.slice(0, 6)}-`);
    tempDirs.add(tempDir);
    const c = new RayCluster(opts, tempDir);
    const b = opts.portBase;
    const args = [
      'start', '--head', '--disable-usage-stats',
      '--node-ip-address', '127.0.0.1',
      '--port', String(b),
      '--dashboard-host', '127.0.0.1',
      '--dashboard-port', String(b + 1),
      '--ray-client-server-port', String(b + 2),
      '--node-manager-port', String(b + 3),
      '--object-manager-port', String(b + 4),
      '--dashboard-agent-listen-port', String(b + 5),
      '--dashboard-agent-grpc-port', String(b + 6),
      '--runtime-env-agent-port', String(b + 7),
      '--metrics-export-port', String(b + 8),
      '--min-worker-port', String(b + 20),
      '--max-worker-port', String(b + 99),
      '--temp-dir', tempDir,
      '--num-cpus', String(opts.numCpus ?? 1),
      '--object-store-memory', String(100 * 1024 * 1024),
      '--include-dashboard=true',
    ];
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      // The test apps and examples/serve_app.py, importable by every worker.
      PYTHONPATH: `${APPS_DIR}:${join(REPO, 'examples')}`,
      SG_CLUSTER: opts.name,
      RAY_USAGE_STATS_ENABLED: '0',
      // No metrics/event exporters writing in the background.
      RAY_enable_metrics_collection: '0',
      // The dashboard starts its modules as subprocesses and gives up for good
      // ("Module MetricsHead failed to start. Timeout after 30.0 seconds": the
      // process stays, the port never opens) when one is not ready in 30 s,
      // which a busy 2-core machine exceeds (seen at load average 16 when the
      // drill restarts the dashboard). Below DEADLINE.dashboardStart/Restart,
      // so a module that never starts is still reported by our waits.
      RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT: '240',
      ...(opts.redis
        ? {
            RAY_REDIS_ADDRESS: opts.redis.address,
            RAY_external_storage_namespace: `sg-${opts.name}-${b}`,
            // What KubeRay injects for Serve HA (kuberay.md §5), and time for the drill.
            RAY_gcs_rpc_server_reconnect_timeout_s: '120',
            RAY_gcs_server_request_timeout_seconds: '5',
            RAY_SERVE_KV_TIMEOUT_S: '5',
          }
        : {}),
      ...opts.env,
    };
    delete env['RAY_ADDRESS'];
    const child = spawn(RAY_BIN, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error('ray start did not spawn');
    c.pgid = child.pid;
    groups.add(child.pid);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    if (code !== 0) {
      c.stop();
      throw new Error(`ray start (${opts.name}) exited ${code}:\n${out.slice(-3000)}`);
    }
    const t0 = Date.now();
    await waitUntil(`${opts.name} dashboard answering GET /api/serve/applications/ with 200`, DEADLINE.dashboardStart, async () => {
      const failed = c.dashboardFailure();
      if (failed) throw new WaitAborted(`the dashboard logged: ${failed}`);
      const r = await httpGet(`${c.dashboardUrl}/api/serve/applications/`, 10_000);
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text.slice(0, 200)}`);
      return true;
    }, { everyMs: 500, observe: () => c.observeDashboard() });
    c.dashboardStartMs = Date.now() - t0;
    return c;
  }

  /** The deploy document for a serve config YAML file or object, on this cluster's HTTP port. */
  serveDoc(config: string | ServeDoc): ServeDoc {
    const doc = (typeof config === 'string' ? parseYaml(readFileSync(config, 'utf8')) : structuredClone(config)) as ServeDoc;
    doc['http_options'] = { host: '127.0.0.1', port: this.servePort, keep_alive_timeout_s: 90 };
    return doc;
  }

  /** PUT /api/serve/applications/ and wait until every app is RUNNING. */
  async deploy(config: string | ServeDoc, timeoutMs: number = DEADLINE.deploy): Promise<void> {
    const doc = this.serveDoc(config);
    const res = await httpCall('PUT', `${this.dashboardUrl}/api/serve/applications/`, JSON.stringify(doc), 120_000);
    if (res.status !== 200) throw new Error(`deploy to ${this.name}: ${res.status} ${res.text}`);
    const names = (doc['applications'] as Array<{ name: string }>).map((a) => a.name);
    await waitUntil(`${this.name} apps ${names.join(',')} RUNNING`, timeoutMs, async () => {
      const d = await this.details();
      const apps = d['applications'] as Record<string, { status: string; message: string }>;
      for (const n of names) {
        const a = apps[n];
        if (a?.status === 'DEPLOY_FAILED') throw new Error(`${this.name}/${n} DEPLOY_FAILED: ${a.message}`);
        if (a?.status !== 'RUNNING') return false;
      }
      return true;
    }, { everyMs: 250, observe: () => this.observeApps(names) });
    await waitUntil(`${this.name} Serve proxy answering /-/healthz with 200`, DEADLINE.proxy, async () => {
      const r = await httpGet(`${this.serveUrl}/-/healthz`);
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text.slice(0, 200)}`);
      return true;
    }, { everyMs: 250, observe: () => this.observeProxy() });
  }

  async details(): Promise<Record<string, unknown>> {
    const r = await httpGet(`${this.dashboardUrl}/api/serve/applications/`, 5000);
    if (r.status !== 200) throw new Error(`dashboard ${r.status}: ${r.text}`);
    return JSON.parse(r.text) as Record<string, unknown>;
  }

  // ------------------------------------------------------------ diagnostics (waitUntil observe)

  /** This cluster's Ray log folder. */
  get logsDir(): string {
    return join(this.tempDir, 'session_latest/logs');
  }

  /**
   * Tails of the log files (paths relative to logs/, e.g. "serve/controller_12.log")
   * matching `pattern`, most recently written first, at most `files` of them.
   */
  logTails(pattern: RegExp, lines = 8, files = 2): string {
    const found: Array<{ rel: string; mtime: number }> = [];
    const walk = (dir: string, prefix: string): void => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const n of names) {
        const rel = prefix + n;
        try {
          const st = statSync(join(dir, n));
          if (st.isDirectory()) {
            if (prefix === '') walk(join(dir, n), `${rel}/`);
          } else if (pattern.test(rel)) found.push({ rel, mtime: st.mtimeMs });
        } catch {
          /* rotated away */
        }
      }
    };
    walk(this.logsDir, '');
    if (found.length === 0) return `logs matching ${pattern}: none in ${this.logsDir}`;
    return found
      .sort((a, b) => b.mtime - a.mtime)
      .slice(0, files)
      .map((f) => `--- ${f.rel} (last ${lines} lines) ---\n${tailFile(join(this.logsDir, f.rel), lines)}`)
      .join('\n');
  }

  /** Sizes of the dashboard's log files now: what dashboardFailure() skips, for a restarted dashboard. */
  dashboardLogMark(): Record<string, number> {
    const mark: Record<string, number> = {};
    for (const f of DASHBOARD_LOGS) {
      try {
        mark[f] = statSync(join(this.logsDir, f)).size;
      } catch {
        mark[f] = 0;
      }
    }
    return mark;
  }

  /**
   * The dashboard's own report that it will not come up ("Module MetricsHead
   * failed to start. Timeout after 30.0 seconds."), written after `mark`, or null.
   */
  dashboardFailure(mark: Record<string, number> = {}): string | null {
    for (const f of DASHBOARD_LOGS) {
      const path = join(this.logsDir, f);
      try {
        const size = statSync(path).size;
        const from = mark[f] ?? 0;
        if (size <= from) continue;
        const fd = openSync(path, 'r');
        try {
          const len = Math.min(size - from, 256 * 1024);
          const buf = Buffer.alloc(len);
          readSync(fd, buf, 0, len, size - len);
          const m = /^.*failed to start.*$/m.exec(buf.toString('utf8'));
          if (m) return `${f}: ${m[0].trim()}`;
        } finally {
          closeSync(fd);
        }
      } catch {
        /* not written yet */
      }
    }
    return null;
  }

  /** Processes of the cluster whose command line contains `needle` with their state, and `pid` (one the harness started) whatever it is now. */
  describeProcs(needle: string, pid?: number): string {
    const found = this.find(needle).map((p) => p.pid);
    const parts = found.map((p) => `pid ${p} ${procState(p)}${pid === p ? ' (restarted)' : ''}, ${this.childrenOf(p).length} children`);
    if (pid !== undefined && !found.includes(pid)) parts.push(`restarted pid ${pid}: ${procState(pid)}`);
    return parts.length === 0 ? 'none running' : parts.join('; ');
  }

  /** Dashboard process, port, last answer and log tail. */
  async observeDashboard(pid?: number): Promise<string> {
    const port = this.portBase + 1;
    const [tcp, http] = await Promise.all([tcpState(port), httpState(`${this.dashboardUrl}/api/serve/applications/`, 10_000)]);
    return [
      `${this.name} dashboard process: ${this.describeProcs('/dashboard/dashboard.py', pid)}`,
      `${this.name} dashboard port ${port}: ${tcp}`,
      `GET ${this.dashboardUrl}/api/serve/applications/: ${http}`,
      machineLoad(),
      this.logTails(/^dashboard\.(log|err)$/, 10),
    ].join('\n');
  }

  /** GCS process, port, raylet and Serve proxy state, and the GCS/raylet log tails. */
  async observeGcs(pid?: number): Promise<string> {
    const [tcp, healthz] = await Promise.all([tcpState(this.portBase), httpState(`${this.serveUrl}/-/healthz`)]);
    return [
      `${this.name} gcs_server process: ${this.describeProcs('/gcs/gcs_server', pid)}`,
      `${this.name} GCS port ${this.portBase}: ${tcp}`,
      `${this.name} raylet process: ${this.describeProcs('/raylet/raylet')}`,
      `GET ${this.serveUrl}/-/healthz: ${healthz}`,
      machineLoad(),
      this.logTails(/^gcs_server\.(out|err)$/, 8),
      this.logTails(/^raylet\.(out|err)$/, 6, 1),
    ].join('\n');
  }

  /** Serve proxy process, port, /-/healthz answer and the proxy/controller log tails. */
  async observeProxy(): Promise<string> {
    const [tcp, healthz] = await Promise.all([tcpState(this.servePort), httpState(`${this.serveUrl}/-/healthz`)]);
    return [
      `${this.name} Serve proxy process: ${this.describeProcs('ProxyActor')}`,
      `${this.name} Serve HTTP port ${this.servePort}: ${tcp}`,
      `GET ${this.serveUrl}/-/healthz: ${healthz}`,
      machineLoad(),
      this.logTails(/^serve\/proxy_.*\.log$/, 8, 1),
      this.logTails(/^serve\/controller_.*\.log$/, 8, 1),
    ].join('\n');
  }

  /** Status and message of `names` (and of their deployments) from the dashboard, and the Serve controller log tail. */
  async observeApps(names: string[]): Promise<string> {
    let apps: string;
    try {
      const d = (await this.details())['applications'] as Record<string, { status: string; message: string; deployments?: Record<string, { status: string; message: string; replica_states?: Record<string, number> }> }>;
      apps = names
        .map((n) => {
          const a = d[n];
          if (!a) return `${n}: not in the dashboard's applications`;
          const deps = Object.entries(a.deployments ?? {}).map(([k, v]) => `${k} ${v.status}${v.replica_states ? ` ${JSON.stringify(v.replica_states)}` : ''}${v.message ? ` (${v.message.slice(0, 200)})` : ''}`);
          return `${n}: ${a.status}${a.message ? ` (${a.message.slice(0, 300)})` : ''}; ${deps.join(', ')}`;
        })
        .join('\n');
    } catch (err) {
      apps = `dashboard: ${errText(err)}\n${await this.observeDashboard()}`;
    }
    return [apps, machineLoad(), this.logTails(/^serve\/controller_.*\.log$/, 10, 1)].join('\n');
  }

  // ------------------------------------------------------------ head processes

  /** The cluster's processes whose command line contains `needle`. */
  find(needle: string): ProcInfo[] {
    const out: ProcInfo[] = [];
    for (const pid of [...pidsInGroup(this.pgid), ...this.restarted]) {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter((s) => s !== '');
        if (!argv.join(' ').includes(needle)) continue;
        const env: Record<string, string> = {};
        for (const kv of readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
          const i = kv.indexOf('=');
          if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
        }
        out.push({ pid, argv, env });
      } catch {
        /* exited */
      }
    }
    return out;
  }

  gcsServer(): ProcInfo {
    const p = this.find('/gcs/gcs_server')[0];
    if (!p) throw new Error(`${this.name}: no gcs_server`);
    return p;
  }

  dashboard(): ProcInfo {
    const p = this.find('/dashboard/dashboard.py')[0];
    if (!p) throw new Error(`${this.name}: no dashboard`);
    return p;
  }

  /** SIGKILLs a head process (and, for the dashboard, its module subprocesses). */
  kill(p: ProcInfo): void {
    for (const child of this.childrenOf(p.pid)) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    process.kill(p.pid, 'SIGKILL');
  }

  childrenOf(pid: number): number[] {
    return pidsWhere(1, pid);
  }

  /** Starts a killed head process again with its own command line and environment. */
  restart(p: ProcInfo): number {
    const [cmd, ...args] = p.argv;
    const child = spawn(cmd as string, args, { env: p.env, cwd: REPO, detached: true, stdio: 'ignore' });
    if (child.pid === undefined) throw new Error(`restart ${cmd} failed`);
    child.unref();
    groups.add(child.pid);
    this.restarted.push(child.pid);
    return child.pid;
  }

  /** Kills every process of the cluster (by group, never `ray stop`) and removes its temp dir. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const g of [this.pgid, ...this.restarted]) {
      try {
        process.kill(-g, 'SIGKILL');
      } catch {
        /* gone */
      }
      groups.delete(g);
    }
    // Anything that left the group but still names our temp dir (sockets, logs).
    for (const p of pidsUsing(this.tempDir)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(this.tempDir, { recursive: true, force: true });
    tempDirs.delete(this.tempDir);
  }

  /** Waits until no process of the cluster is alive (zombies count as gone), or throws. */
  async waitGone(timeoutMs: number = DEADLINE.processesGone): Promise<void> {
    await waitUntil(`${this.name} processes gone`, timeoutMs, async () => this.survivors().length === 0, {
      everyMs: 100,
      observe: () => this.survivors().map((pid) => `${pid} ${procState(pid)}: ${cmdline(pid).slice(0, 200)}`).join('\n') || 'none left',
    });
  }

  /** Processes of this cluster still alive (for the "nothing survives" check). */
  survivors(): number[] {
    const s = new Set([...pidsInGroup(this.pgid), ...this.restarted.flatMap((g) => pidsInGroup(g)), ...pidsUsing(this.tempDir)]);
    return [...s].filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
        return stat[stat.lastIndexOf(')') + 2] !== 'Z';
      } catch {
        return false;
      }
    });
  }
}

/** Starts clusters in parallel (each `ray start` waits mostly on its own processes). */
export async function startClusters(names: string[], opts: { redis?: boolean; numCpus?: number } = {}): Promise<{ clusters: RayCluster[]; redis: Redis | null }> {
  const blocks = await freePortBlocks(names.length + (opts.redis ? 1 : 0));
  const redis = opts.redis ? await Redis.start(blocks[names.length] as number) : null;
  const settled = await Promise.allSettled(
    names.map((name, i) => RayCluster.start({ name, portBase: blocks[i] as number, numCpus: opts.numCpus, ...(redis ? { redis } : {}) })),
  );
  const clusters = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    for (const c of clusters) c.stop();
    redis?.stop();
    throw (failed as PromiseRejectedResult).reason;
  }
  return { clusters, redis };
}

/** `ray --version` of the venv, e.g. "2.53.0". */
export function rayVersion(): string {
  const r = spawnSync(join(RAY_VENV, 'bin/python'), ['-c', 'import ray; print(ray.__version__)'], { encoding: 'utf8' });
  return r.stdout.trim();
}
