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
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
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

// ---------------------------------------------------------------- polling

export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
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

function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; text: string }> {
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
    await waitUntil(`redis on ${port}`, 10_000, async () => !(await portFree(port)));
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
    await waitUntil(`${opts.name} dashboard`, 60_000, async () => (await httpGet(`${c.dashboardUrl}/api/serve/applications/`)).status === 200);
    return c;
  }

  /** The deploy document for a serve config YAML file or object, on this cluster's HTTP port. */
  serveDoc(config: string | ServeDoc): ServeDoc {
    const doc = (typeof config === 'string' ? parseYaml(readFileSync(config, 'utf8')) : structuredClone(config)) as ServeDoc;
    doc['http_options'] = { host: '127.0.0.1', port: this.servePort, keep_alive_timeout_s: 90 };
    return doc;
  }

  /** PUT /api/serve/applications/ and wait until every app is RUNNING. */
  async deploy(config: string | ServeDoc, timeoutMs = 120_000): Promise<void> {
    const doc = this.serveDoc(config);
    const res = await httpCall('PUT', `${this.dashboardUrl}/api/serve/applications/`, JSON.stringify(doc), 30_000);
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
    }, 250);
    await waitUntil(`${this.name} proxy healthy`, 30_000, async () => (await httpGet(`${this.serveUrl}/-/healthz`)).status === 200);
  }

  async details(): Promise<Record<string, unknown>> {
    const r = await httpGet(`${this.dashboardUrl}/api/serve/applications/`, 5000);
    if (r.status !== 200) throw new Error(`dashboard ${r.status}: ${r.text}`);
    return JSON.parse(r.text) as Record<string, unknown>;
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
  async waitGone(timeoutMs = 10_000): Promise<void> {
    await waitUntil(`${this.name} processes gone (left: ${this.survivors().join(',')})`, timeoutMs, async () => this.survivors().length === 0, 100);
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
