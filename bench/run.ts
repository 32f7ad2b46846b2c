// Benchmark driver: direct vs serve-gateway vs nginx, side by side in one run, on loopback.
//
//   node bench/run.ts [--rounds 5] [--only small|streams|switch] [--duration 5] [--warmup 3]
//                     [--switch-seconds 20] [--switch-at 10] [--switch-connections 32] [--no-switch-rollout]
//                     [--streams 1000] [--stream-seconds 10] [--stream-interval 25] [--stream-ramp-ms 2000]
//                     [--targets direct,gateway,nginx] [--connections 64]
//                     [--gateway-config bench/gateway.bench.yaml] [--start-timeout 30]
//                     [--load-cpu 0] [--proxy-cpu 1] [--out bench/results] [--no-write]
//
// Layout: the backend (bench/backend.ts), wrk and the stream client run on --load-cpu; each proxy
// runs alone on --proxy-cpu (taskset -c, inherited by all of its threads; checked via /proc).
// See docs/benchmarks.md for the method and how to read the numbers.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  CLK_TCK,
  checkPinned,
  cpuBusy,
  cpuDelta,
  cpuSnap,
  installCleanupHandlers,
  killAllSync,
  listenCounters,
  memKb,
  pinSelf,
  processTree,
  spawnPinned,
  stopProc,
  tail,
  which,
} from './lib/proc.ts';
import type { Proc, Spawned } from './lib/proc.ts';
import { nginxArgs, writeNginxConf } from './lib/nginx.ts';
import { portInUse, request, sleep, waitReady } from './lib/http-probe.ts';
import { fmt, fmtInt, fmtSpread, pct, spread } from './lib/stats.ts';
import type { Spread } from './lib/stats.ts';
import { renderSwitchMarkdown, switchPhase } from './switch.ts';
import type { SwitchReport } from './switch.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH = join(ROOT, 'bench');
const NODE = process.execPath;
const INSTALL_HINT = 'apt-get install -y nginx-light wrk';

// ---------------------------------------------------------------------------------------------
// options

type TargetName = 'direct' | 'gateway' | 'nginx';
const ALL_TARGETS: readonly TargetName[] = ['direct', 'gateway', 'nginx'];

type Options = {
  rounds: number;
  only: 'small' | 'streams' | 'switch' | null;
  duration: number;
  warmup: number;
  connections: number;
  streams: number;
  streamSeconds: number;
  streamInterval: number;
  streamRampMs: number;
  targets: TargetName[];
  gatewayConfig: string;
  gatewayBin: string;
  startTimeout: number;
  loadCpu: number;
  proxyCpu: number;
  out: string;
  write: boolean;
  backendPort: number;
  nginxPort: number;
  switchSeconds: number;
  switchAt: number;
  switchConnections: number;
  switchRollout: boolean;
};

const USAGE = `usage: node bench/run.ts [options]
  --rounds N            small-request rounds, interleaved, fresh proxies each round (default 5)
  --only small|streams|switch  run one part only (default: all three, switch last)
  --duration S          measured seconds per small-request run (default 5)
  --warmup S            warm-up seconds before each measured run (default 3)
  --connections C       wrk connections (default 64)
  --streams N           concurrent SSE streams (default 1000)
  --stream-seconds S    length of each stream (default 10)
  --stream-interval MS  gap between SSE frames (default 25; frames = seconds*1000/interval)
  --stream-ramp-ms MS   second streams pass with stream i started at i*MS/N ms (default 2000;
                        0 = only the all-at-once burst)
  --targets LIST        comma list of direct,gateway,nginx (default all three)
  --gateway-config F    gateway config (default bench/gateway.bench.yaml)
  --gateway-bin F       gateway entry point, run as: node F start --config C (default bin/serve-gateway;
                        a shell script with a #!/bin/sh line is executed directly)
  --start-timeout S     how long a proxy may take to answer POST /llm with 200 (default 30)
  --load-cpu N          CPU for backend, wrk, stream client and this driver (default 0)
  --proxy-cpu N         CPU for the proxy under test (default 1)
  --out DIR             where reports go (default bench/results)
  --no-write            print the report only
  --backend-port P      (default 18000; must match the gateway config's endpoint)
  --nginx-port P        (default 18081)
  --switch-seconds S    switch scenario: seconds of load per run (default 20)
  --switch-at S         switch scenario: when the atomic switch is made (default 10)
  --switch-connections C  switch scenario: closed-loop connections (default 32)
  --no-switch-rollout   switch scenario: skip the second run (progressive rollout)`;

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    rounds: 5,
    only: null,
    duration: 5,
    warmup: 3,
    connections: 64,
    streams: 1000,
    streamSeconds: 10,
    streamInterval: 25,
    streamRampMs: 2000,
    targets: [...ALL_TARGETS],
    gatewayConfig: join(BENCH, 'gateway.bench.yaml'),
    gatewayBin: join(ROOT, 'bin', 'serve-gateway'),
    startTimeout: 30,
    loadCpu: 0,
    proxyCpu: 1,
    out: join(BENCH, 'results'),
    write: true,
    backendPort: 18000,
    nginxPort: 18081,
    switchSeconds: 20,
    switchAt: 10,
    switchConnections: 32,
    switchRollout: true,
  };
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) die(`${name} needs a number >= ${min}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const v = argv[i + 1];
    switch (a) {
      case '--rounds': o.rounds = Math.floor(num(a, v, 1)); i++; break;
      case '--only':
        if (v !== 'small' && v !== 'streams' && v !== 'switch') die(`--only takes small, streams or switch\n${USAGE}`);
        o.only = v; i++; break;
      case '--duration': o.duration = num(a, v, 1); i++; break;
      case '--warmup': o.warmup = num(a, v, 0); i++; break;
      case '--connections': o.connections = Math.floor(num(a, v, 1)); i++; break;
      case '--streams': o.streams = Math.floor(num(a, v, 1)); i++; break;
      case '--stream-seconds': o.streamSeconds = num(a, v, 0.1); i++; break;
      case '--stream-interval': o.streamInterval = Math.floor(num(a, v, 1)); i++; break;
      case '--stream-ramp-ms': o.streamRampMs = Math.floor(num(a, v, 0)); i++; break;
      case '--targets': {
        const list = (v ?? '').split(',').filter((s) => s !== '');
        for (const t of list) if (!ALL_TARGETS.includes(t as TargetName)) die(`unknown target ${t}\n${USAGE}`);
        if (list.length === 0) die(`--targets needs a list\n${USAGE}`);
        o.targets = ALL_TARGETS.filter((t) => list.includes(t));
        i++;
        break;
      }
      case '--gateway-config': o.gatewayConfig = resolve(v ?? die('--gateway-config needs a file')); i++; break;
      case '--gateway-bin': o.gatewayBin = resolve(v ?? die('--gateway-bin needs a file')); i++; break;
      case '--start-timeout': o.startTimeout = num(a, v, 1); i++; break;
      case '--load-cpu': o.loadCpu = Math.floor(num(a, v, 0)); i++; break;
      case '--proxy-cpu': o.proxyCpu = Math.floor(num(a, v, 0)); i++; break;
      case '--out': o.out = resolve(v ?? die('--out needs a directory')); i++; break;
      case '--no-write': o.write = false; break;
      case '--backend-port': o.backendPort = Math.floor(num(a, v, 1)); i++; break;
      case '--nginx-port': o.nginxPort = Math.floor(num(a, v, 1)); i++; break;
      case '--switch-seconds': o.switchSeconds = num(a, v, 6); i++; break;
      case '--switch-at': o.switchAt = num(a, v, 3); i++; break;
      case '--switch-connections': o.switchConnections = Math.floor(num(a, v, 1)); i++; break;
      case '--no-switch-rollout': o.switchRollout = false; break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        die(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.loadCpu === o.proxyCpu) die('--load-cpu and --proxy-cpu must differ');
  if (o.switchAt + 3 > o.switchSeconds) die('--switch-at must leave at least 3 s of --switch-seconds after it');
  return o;
}

function die(msg: string): never {
  process.stderr.write(msg + '\n');
  killAllSync();
  process.exit(2);
}

const log = (s: string): void => {
  process.stderr.write(s + '\n');
};

// ---------------------------------------------------------------------------------------------
// environment

type Env = {
  wrk: string | null;
  nginx: string | null;
  taskset: string | null;
  cpus: number[];
  cpuModel: string;
  kernel: string;
  node: string;
  nginxVersion: string | null;
  wrkVersion: string | null;
  git: string;
  gitDirty: boolean;
  hostname: string;
};

/** stdout + stderr of a short command (nginx -v prints to stderr), '' when it cannot run. */
function sh(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, timeout: 10_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
}

function onlineCpus(): number[] {
  const s = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  const out: number[] = [];
  for (const part of s.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isFinite(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

function probeEnv(): Env {
  const wrk = which('wrk');
  const nginx = which('nginx');
  const nginxV = nginx !== null ? sh(nginx, ['-v']) : null;
  const wrkV = wrk !== null ? (sh(wrk, ['-v']).split('\n')[0] ?? '') : null;
  return {
    wrk,
    nginx,
    taskset: which('taskset'),
    cpus: onlineCpus(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    nginxVersion: nginxV !== null ? (/nginx\/(\S+)/.exec(nginxV)?.[1] ?? nginxV) : null,
    wrkVersion: wrkV !== null ? (/wrk (\S+)/.exec(wrkV)?.[1] ?? wrkV) : null,
    git: sh('git', ['rev-parse', '--short', 'HEAD']) || 'nogit',
    gitDirty: sh('git', ['status', '--porcelain', '--untracked-files=no']) !== '',
    hostname: os.hostname(),
  };
}

// ---------------------------------------------------------------------------------------------
// targets

type GatewayConf = { port: number; adminPort: number | null; stateDir: string | null; endpoints: string[] };

function readGatewayConf(file: string): GatewayConf {
  const doc = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown> | null;
  const hp = (v: unknown): number | null => {
    if (typeof v !== 'string') return null;
    const m = /:(\d+)$/.exec(v);
    return m !== null ? Number(m[1]) : null;
  };
  const port = hp(doc?.['listen']) ?? 8000;
  const admin = doc?.['admin'] as Record<string, unknown> | undefined;
  const clusters = (doc?.['clusters'] as Array<Record<string, unknown>> | undefined) ?? [];
  const endpoints = clusters.flatMap((c) => (Array.isArray(c['endpoints']) ? (c['endpoints'] as string[]) : []));
  const sd = doc?.['state_dir'];
  return { port, adminPort: hp(admin?.['listen']), stateDir: typeof sd === 'string' ? sd : null, endpoints };
}

type Target = {
  readonly name: TargetName;
  readonly port: number;
  skipped: string | null;
  /** starts the proxy (null for direct); throws with a reason on failure */
  readonly start: ((tag: string) => Promise<Proc>) | null;
};

const POST_BODY = '{"model":"llm","prompt":"Write one short sentence about the oceans.","max_tokens":16,"stream":false}';

async function smallReady(port: number): Promise<string | null> {
  const r = await request(port, 'POST', '/llm', POST_BODY);
  if (r.status === 200 && r.body.length === 100) return null;
  return `POST /llm -> ${r.status} ${JSON.stringify(r.body.slice(0, 200))}`;
}

async function startReady(p: Spawned, port: number, timeoutMs: number, what: string): Promise<Proc> {
  const reason = await waitReady(() => smallReady(port), timeoutMs, () =>
    p.alive ? null : `exited with code ${String(p.exitCode)}`,
  );
  if (reason !== null) {
    await stopProc(p, 1000);
    const t = (tail(p.logFile, 1500) || p.stdout().slice(-1500)).trim();
    throw new Error(`${what}: ${reason}${t !== '' ? `\n--- last output (${p.logFile ?? 'stdout'}) ---\n${t}` : ''}`);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// small requests (wrk)

type WrkJson = {
  requests: number;
  duration_us: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latency_us: { p50: number; p90: number; p99: number; max: number; mean: number };
  body_bytes: number;
};

async function runWrk(o: Options, env: Env, port: number, seconds: number, rawFile: string | null): Promise<WrkJson> {
  const args = [
    '-t1',
    `-c${o.connections}`,
    `-d${seconds}s`,
    '--latency',
    '-s',
    join(BENCH, 'post.lua'),
    `http://127.0.0.1:${port}/llm`,
  ];
  const p = spawnPinned('wrk', env.wrk as string, args, { cpu: o.loadCpu, captureStdout: true });
  const guard = setTimeout(() => void stopProc(p, 1000), (seconds + 20) * 1000);
  await p.exited;
  clearTimeout(guard);
  const out = p.stdout();
  if (rawFile !== null) writeFileSync(rawFile, `wrk ${args.join(' ')}\n${out}`);
  const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (line === undefined) throw new Error(`wrk gave no summary (exit ${String(p.exitCode)}):\n${out.slice(-1000)}${p.stderr().slice(-1000)}`);
  return JSON.parse(line.slice(8)) as WrkJson;
}

type SmallRun = {
  target: TargetName;
  round: number;
  position: number;
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  errorDetail: WrkJson['errors'];
  proxyUsPerReq: number | null;
  proxySchedUsPerReq: number | null;
  proxyCoreBusy: number | null;
  proxyProcesses: number | null;
  backendUsPerReq: number;
  proxyCpuOtherLoad: number;
  loadCpuBusy: number;
  stealPct: number;
  pinning: string[];
};

async function smallPhase(o: Options, env: Env, targets: Target[], runDir: string, warnings: string[]): Promise<SmallRun[]> {
  const runs: SmallRun[] = [];
  const backend = await startBackend(o, runDir, 'small');
  try {
    for (let round = 1; round <= o.rounds; round++) {
      const live = targets.filter((t) => t.skipped === null);
      const k = (round - 1) % Math.max(1, live.length);
      const order = [...live.slice(k), ...live.slice(0, k)];
      log(`small round ${round}/${o.rounds}: ${order.map((t) => t.name).join(' → ')}`);
      for (let pos = 0; pos < order.length; pos++) {
        const t = order[pos] as Target;
        let proxy: Proc | null = null;
        if (t.start !== null) {
          try {
            proxy = await t.start(`small-r${round}`);
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            t.skipped = `start failed in round ${round}: ${msg}`;
            log(`  ${t.name}: SKIPPED — ${msg}`);
            continue;
          }
        }
        try {
          if (o.warmup > 0) await runWrk(o, env, t.port, o.warmup, null);
          const proxyPids = proxy !== null ? processTree(proxy.pid) : [];
          const pinning = [
            ...checkPinned(proxyPids, o.proxyCpu).map((s) => `${t.name} ${s}`),
            ...checkPinned([backend.pid], o.loadCpu).map((s) => `backend ${s}`),
          ];
          const b0 = cpuBusy();
          const p0 = cpuSnap(proxyPids);
          const k0 = cpuSnap([backend.pid]);
          const w = await runWrk(o, env, t.port, o.duration, join(runDir, `small-r${round}-${t.name}.txt`));
          const p1 = cpuSnap(proxyPids);
          const k1 = cpuSnap([backend.pid]);
          const b1 = cpuBusy();
          const pd = cpuDelta(p0, p1);
          const kd = cpuDelta(k0, k1);
          const wall = pd.wallSec;
          const busy = (cpu: number): { busy: number; steal: number } => {
            const a = b0.get(cpu);
            const b = b1.get(cpu);
            if (a === undefined || b === undefined) return { busy: Number.NaN, steal: Number.NaN };
            return { busy: (b.busy - a.busy) / CLK_TCK, steal: (b.steal - a.steal) / CLK_TCK };
          };
          const pc = busy(o.proxyCpu);
          const lc = busy(o.loadCpu);
          const errs = w.errors.connect + w.errors.read + w.errors.write + w.errors.status + w.errors.timeout;
          const seconds = w.duration_us / 1e6;
          const run: SmallRun = {
            target: t.name,
            round,
            position: pos,
            requests: w.requests,
            seconds,
            rps: w.requests / seconds,
            p50Ms: w.latency_us.p50 / 1000,
            p90Ms: w.latency_us.p90 / 1000,
            p99Ms: w.latency_us.p99 / 1000,
            maxMs: w.latency_us.max / 1000,
            errors: errs,
            errorDetail: w.errors,
            proxyUsPerReq: proxy !== null ? (pd.cpuSec * 1e6) / w.requests : null,
            proxySchedUsPerReq: proxy !== null ? (pd.schedSec * 1e6) / w.requests : null,
            proxyCoreBusy: proxy !== null ? pd.cpuSec / wall : null,
            proxyProcesses: proxy !== null ? proxyPids.length : null,
            backendUsPerReq: (kd.cpuSec * 1e6) / w.requests,
            proxyCpuOtherLoad: Math.max(0, (pc.busy - pd.cpuSec) / wall),
            loadCpuBusy: lc.busy / wall,
            stealPct: ((pc.steal + lc.steal) / (2 * wall)) * 100,
            pinning,
          };
          runs.push(run);
          if (pinning.length > 0) warnings.push(`round ${round} ${t.name}: threads not pinned as intended: ${pinning.slice(0, 5).join(', ')}`);
          if (errs > 0) warnings.push(`round ${round} ${t.name}: wrk counted ${errs} errors ${JSON.stringify(w.errors)}`);
          log(
            `  ${t.name.padEnd(8)} ${fmtInt(run.rps).padStart(7)} rps  p50 ${fmt(run.p50Ms, 2)} p99 ${fmt(run.p99Ms, 2)} ms  ` +
              (run.proxyUsPerReq !== null
                ? `proxy ${fmt(run.proxyUsPerReq)} µs/req (core ${fmt((run.proxyCoreBusy ?? 0) * 100, 0)} %)  `
                : '') +
              `backend ${fmt(run.backendUsPerReq)} µs/req  other load on CPU${o.proxyCpu} ${fmt(run.proxyCpuOtherLoad * 100, 0)} %` +
              (errs > 0 ? `  ERRORS ${errs}` : ''),
          );
        } finally {
          if (proxy !== null) noteStop(t.name, await stopProc(proxy, STOP_GRACE_MS), warnings);
        }
        await sleep(500);
      }
    }
  } finally {
    await stopProc(backend, 2000);
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------
// streams

type StreamResult = {
  index: number;
  scheduledMs: number;
  startMs: number;
  status: number;
  ttfbMs: number;
  ttfcMs: number;
  totalMs: number;
  frames: number;
  maxGapMs: number;
  done: boolean;
  error: string | null;
};

type ClientOut = {
  streams: number;
  framesExpected: number;
  rampMs: number;
  hardStopMs: number;
  hardStopped: boolean;
  wallMs: number;
  finished: number;
  results: StreamResult[];
  unfinished?: StreamResult[];
};

/** Peak number of intervals open at the same time, and the longest stretch spent at that peak. */
type Concurrency = { peak: number; peakFromMs: number; peakToMs: number };

function concurrency(intervals: ReadonlyArray<readonly [number, number]>): Concurrency {
  const ev: Array<[number, number]> = [];
  for (const [a, b] of intervals) {
    if (!Number.isFinite(a) || !Number.isFinite(b) || b < a) continue;
    ev.push([a, 1], [b, -1]);
  }
  // at equal times, ends before starts: a stream that ends as another starts does not overlap it
  ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cur = 0;
  let peak = 0;
  let from = Number.NaN;
  let best: [number, number] = [Number.NaN, Number.NaN];
  for (const [t, d] of ev) {
    if (cur === peak && Number.isFinite(from) && d < 0) {
      if (!Number.isFinite(best[0]) || t - from > best[1] - best[0]) best = [from, t];
      from = Number.NaN;
    }
    cur += d;
    if (cur > peak) {
      peak = cur;
      from = t;
      best = [Number.NaN, Number.NaN];
    } else if (cur === peak && d > 0) from = t;
  }
  return { peak, peakFromMs: best[0], peakToMs: best[1] };
}

type StreamRun = {
  target: TargetName;
  /** 0: all streams started at once; R: stream i started at i*R/N ms */
  rampMs: number;
  streams: number;
  completed: number;
  finishedWithError: number;
  unfinishedAtHardStop: number;
  firstChunk: number;
  ttfbP50Ms: number;
  ttfcP50Ms: number;
  ttfcP90Ms: number;
  ttfcP99Ms: number;
  ttfcMaxMs: number;
  totalP50Ms: number;
  totalMaxMs: number;
  maxGapP99Ms: number;
  wallMs: number;
  hardStopped: boolean;
  errors: Record<string, number>;
  /** streams open at once, a stream being open from its request until its response ended (or the hard stop) */
  peakOpen: Concurrency;
  /** the same, counting a stream only from its first body byte to its end */
  peakStreaming: Concurrency;
  /** how late the client started streams against the ramp schedule (timer lateness on the load CPU) */
  startLateP99Ms: number;
  startLateMaxMs: number;
  /** the process measured for RSS and CPU: the proxy, or the backend for direct */
  measured: 'proxy' | 'backend';
  rssIdleMb: number;
  rssPeakMb: number;
  vmHwmMb: number;
  rssSamples: number;
  cpuUsPerStream: number;
  backendUsPerStream: number;
  listenOverflows: number;
  listenDrops: number;
};

type StreamPhaseOut = { burst: StreamRun[]; ramped: StreamRun[] };

async function streamPhase(o: Options, env: Env, targets: Target[], runDir: string, warnings: string[]): Promise<StreamPhaseOut> {
  const out: StreamPhaseOut = { burst: [], ramped: [] };
  const modes = o.streamRampMs > 0 ? [0, o.streamRampMs] : [0];
  for (const rampMs of modes) {
    for (const t of targets) {
      if (t.skipped !== null) continue;
      const run = await streamRun(o, t, rampMs, runDir, warnings);
      if (run !== null) (rampMs === 0 ? out.burst : out.ramped).push(run);
    }
  }
  return out;
}

async function streamRun(o: Options, t: Target, rampMs: number, runDir: string, warnings: string[]): Promise<StreamRun | null> {
  const frames = Math.max(1, Math.round((o.streamSeconds * 1000) / o.streamInterval));
  const hardStopMs = Math.round(rampMs + o.streamSeconds * 1000 + 30_000);
  const mode = rampMs === 0 ? 'burst' : `ramp ${rampMs} ms`;
  const tag = rampMs === 0 ? `streams-${t.name}` : `streams-ramp-${t.name}`;
  const label = rampMs === 0 ? `streams ${t.name}` : `streams (ramped) ${t.name}`;
  log(`streams (${mode}): ${t.name}: ${o.streams} × ${frames} frames every ${o.streamInterval} ms (hard stop ${hardStopMs / 1000} s)`);
  const backend = await startBackend(o, runDir, tag);
  let proxy: Proc | null = null;
  try {
    if (t.start !== null) {
      try {
        proxy = await t.start(rampMs === 0 ? 'streams' : 'streams-ramp');
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        t.skipped = `start failed (${label}): ${msg}`;
        log(`  ${t.name}: SKIPPED — ${msg}`);
        return null;
      }
    }
    const measuredPid = proxy !== null ? proxy.pid : backend.pid;
    const rssOf = (): number => processTree(measuredPid).reduce((s, pid) => s + (memKb(pid)?.rss ?? 0), 0);
    const rssIdle = rssOf();
    let rssPeak = rssIdle;
    let samples = 0;
    const sampler = setInterval(() => {
      const r = rssOf();
      samples++;
      if (r > rssPeak) rssPeak = r;
    }, 250);
    const pids = processTree(measuredPid);
    const c0 = cpuSnap(pids);
    const k0 = cpuSnap([backend.pid]);
    const l0 = listenCounters();
    const resultFile = join(runDir, `${tag}.json`);
    const url = `http://127.0.0.1:${t.port}/llm/stream?n=${frames}&i=${o.streamInterval}`;
    const client = spawnPinned(
      'stream-client',
      NODE,
      [
        join(BENCH, 'stream-client.ts'),
        '--url', url,
        '--streams', String(o.streams),
        '--frames', String(frames),
        '--ramp-ms', String(rampMs),
        '--hard-stop-ms', String(hardStopMs),
        '--out', resultFile,
      ],
      { cpu: o.loadCpu, captureStdout: true },
    );
    const guard = setTimeout(() => void stopProc(client, 1000), hardStopMs + 20_000);
    await client.exited;
    clearTimeout(guard);
    clearInterval(sampler);
    const c1 = cpuSnap(pids);
    const k1 = cpuSnap([backend.pid]);
    const l1 = listenCounters();
    const hwm = processTree(measuredPid).reduce((s, pid) => s + (memKb(pid)?.hwm ?? 0), 0);
    let co: ClientOut;
    try {
      co = JSON.parse(readFileSync(resultFile, 'utf8')) as ClientOut;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      warnings.push(`${label}: no result from the stream client (exit ${String(client.exitCode)}, ${why}): ${client.stderr().slice(-500)}`);
      log(`  ${t.name}: no result from the stream client: ${why}\n${client.stderr().slice(-1000)}`);
      return null;
    }
    if (client.stderr().trim() !== '') writeFileSync(join(runDir, `${tag}.stderr.log`), client.stderr());
    const res = co.results;
    const num = (x: number | null | undefined): number => (typeof x === 'number' ? x : Number.NaN); // JSON turns NaN into null
    const completed = res.filter((r) => r.done && r.frames === co.framesExpected).length;
    const ttfc = res.map((r) => r.ttfcMs).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    const ttfb = res.map((r) => r.ttfbMs).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    const total = res.filter((r) => r.done).map((r) => r.totalMs).sort((a, b) => a - b);
    const gaps = res.filter((r) => r.done).map((r) => r.maxGapMs).sort((a, b) => a - b);
    const late = res.map((r) => num(r.startMs) - num(r.scheduledMs)).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    // per-stream intervals on the client's clock; ttfb/ttfc/total count from startMs when ramped,
    // from 0 (the burst's start) in a burst
    const open = [...res, ...(co.unfinished ?? [])].map((r) => {
      const s = num(r.startMs);
      const base = rampMs > 0 ? s : 0;
      const end = Number.isFinite(num(r.totalMs)) ? base + num(r.totalMs) : co.wallMs;
      return { s, c: base + num(r.ttfcMs), end };
    });
    const errors: Record<string, number> = {};
    for (const r of res) {
      if (r.done && r.frames === co.framesExpected) continue;
      const key = r.error ?? (r.status !== 200 ? `HTTP ${r.status}` : `incomplete (${r.frames}/${co.framesExpected} frames)`);
      errors[key] = (errors[key] ?? 0) + 1;
    }
    const cd = cpuDelta(c0, c1);
    const kd = cpuDelta(k0, k1);
    const run: StreamRun = {
      target: t.name,
      rampMs,
      streams: o.streams,
      completed,
      finishedWithError: co.finished - completed,
      unfinishedAtHardStop: o.streams - co.finished,
      firstChunk: ttfc.length,
      ttfbP50Ms: pct(ttfb, 50),
      ttfcP50Ms: pct(ttfc, 50),
      ttfcP90Ms: pct(ttfc, 90),
      ttfcP99Ms: pct(ttfc, 99),
      ttfcMaxMs: ttfc.length > 0 ? (ttfc[ttfc.length - 1] as number) : Number.NaN,
      totalP50Ms: pct(total, 50),
      totalMaxMs: total.length > 0 ? (total[total.length - 1] as number) : Number.NaN,
      maxGapP99Ms: pct(gaps, 99),
      wallMs: co.wallMs,
      hardStopped: co.hardStopped,
      errors,
      peakOpen: concurrency(open.map((x) => [x.s, x.end] as const)),
      peakStreaming: concurrency(open.map((x) => [x.c, x.end] as const)),
      startLateP99Ms: pct(late, 99),
      startLateMaxMs: late.length > 0 ? (late[late.length - 1] as number) : Number.NaN,
      measured: proxy !== null ? 'proxy' : 'backend',
      rssIdleMb: rssIdle / 1024,
      rssPeakMb: rssPeak / 1024,
      vmHwmMb: hwm / 1024,
      rssSamples: samples,
      cpuUsPerStream: (cd.cpuSec * 1e6) / o.streams,
      backendUsPerStream: (kd.cpuSec * 1e6) / o.streams,
      listenOverflows: l1.overflows - l0.overflows,
      listenDrops: l1.drops - l0.drops,
    };
    if (run.listenOverflows > 0)
      warnings.push(`${label}: ${run.listenOverflows} TCP listen-queue overflows (system-wide counter): expect 1-second SYN-retransmit steps in TTFC`);
    if (completed < o.streams) warnings.push(`${label}: ${completed}/${o.streams} completed; ${JSON.stringify(errors)}`);
    log(
      `  ${t.name.padEnd(8)} completed ${completed}/${o.streams}  TTFC p50 ${fmt(run.ttfcP50Ms, 1)} p99 ${fmt(run.ttfcP99Ms, 1)} ms  ` +
        `${run.measured} RSS ${fmt(run.rssIdleMb, 0)} → peak ${fmt(run.rssPeakMb, 0)} MB  listen overflows ${run.listenOverflows}  ` +
        `peak open ${run.peakOpen.peak} (${fmt(run.peakOpen.peakFromMs / 1000, 2)}–${fmt(run.peakOpen.peakToMs / 1000, 2)} s)`,
    );
    return run;
  } finally {
    if (proxy !== null) noteStop(t.name, await stopProc(proxy, STOP_GRACE_MS), warnings);
    await stopProc(backend, 2000);
    await sleep(1000);
  }
}

// ---------------------------------------------------------------------------------------------
// processes

/** Fresh-process protocol: a proxy gets this long after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3000;
const stopNoted = new Set<string>();

function noteStop(name: string, r: { ms: number; killed: boolean }, warnings: string[]): void {
  if (!r.killed || stopNoted.has(name)) return;
  stopNoted.add(name);
  warnings.push(`${name} did not exit within ${STOP_GRACE_MS / 1000} s of SIGTERM (nothing in flight) and was killed with SIGKILL; measurements are unaffected`);
}

async function startBackend(o: Options, runDir: string, tag: string): Promise<Proc> {
  const p = spawnPinned('backend', NODE, [join(BENCH, 'backend.ts'), '--port', String(o.backendPort)], {
    cpu: o.loadCpu,
    logFile: join(runDir, `backend-${tag}.log`),
  });
  const reason = await waitReady(
    async () => {
      const r = await request(o.backendPort, 'GET', '/-/healthz', null);
      return r.status === 200 ? null : `healthz ${r.status}`;
    },
    10_000,
    () => (p.alive ? null : `exited with code ${String(p.exitCode)}`),
  );
  if (reason !== null) {
    await stopProc(p, 1000);
    throw new Error(`backend did not start: ${reason}\n${tail(p.logFile)}`);
  }
  return p;
}

function isShellScript(file: string): boolean {
  try {
    const head = readFileSync(file, 'utf8').slice(0, 200).split('\n')[0] ?? '';
    return /^#!.*\b(sh|bash|dash)\b/.test(head);
  } catch {
    return false;
  }
}

function makeTargets(
  o: Options,
  env: Env,
  runDir: string,
  gw: GatewayConf | null,
  gwError: string | null,
  warnings: string[],
): Target[] {
  const out: Target[] = [];
  let gatewayChecked = false;
  for (const name of o.targets) {
    if (name === 'direct') {
      out.push({ name, port: o.backendPort, skipped: null, start: null });
    } else if (name === 'nginx') {
      const skipped = env.nginx === null ? `nginx not installed (install: ${INSTALL_HINT})` : null;
      out.push({
        name,
        port: o.nginxPort,
        skipped,
        start: async (tag) => {
          const files = writeNginxConf(join(runDir, `nginx-${tag}`), o.nginxPort, o.backendPort);
          const p = spawnPinned('nginx', env.nginx as string, nginxArgs(files), {
            cpu: o.proxyCpu,
            logFile: join(files.dir, 'stdout.log'),
          });
          try {
            return await startReady(p, o.nginxPort, 10_000, 'nginx');
          } catch (e) {
            throw new Error(`${e instanceof Error ? e.message : String(e)}\n${tail(files.errorLog)}`);
          }
        },
      });
    } else {
      const bin = o.gatewayBin;
      const skipped = gwError ?? (existsSync(bin) ? null : `${relative(ROOT, bin)} not found (the gateway is not built yet)`);
      const port = gw?.port ?? 18080;
      out.push({
        name,
        port,
        skipped,
        start: async (tag) => {
          if (gw?.stateDir !== null && gw?.stateDir !== undefined && gw.stateDir.startsWith('/tmp/sg-bench')) {
            rmSync(gw.stateDir, { recursive: true, force: true });
          }
          const logFile = join(runDir, `gateway-${tag}.log`);
          const args = ['start', '--config', o.gatewayConfig];
          const p = spawnPinned('gateway', isShellScript(bin) ? bin : NODE, isShellScript(bin) ? args : [bin, ...args], {
            cpu: o.proxyCpu,
            logFile,
            cwd: ROOT,
          });
          const proc = await startReady(p, port, o.startTimeout * 1000, `${relative(ROOT, bin)} start --config ${relative(ROOT, o.gatewayConfig)}`);
          if (!gatewayChecked) {
            gatewayChecked = true;
            const r = await request(port, 'POST', '/llm', POST_BODY);
            if (r.headers['x-serve-cluster'] === undefined)
              warnings.push('gateway: the reply to POST /llm has no x-serve-cluster header (SPEC §5) — is it proxying?');
            if (r.headers['x-request-id'] === undefined) warnings.push('gateway: the reply to POST /llm has no x-request-id header (SPEC §5)');
          }
          return proc;
        },
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// report

type Report = {
  id: string;
  startedAt: string;
  finishedAt: string;
  command: string;
  options: Omit<Options, 'out' | 'write' | 'gatewayConfig' | 'gatewayBin'> & { gatewayConfig: string; gatewayBin: string };
  env: Omit<Env, 'wrk' | 'nginx' | 'taskset'> & { clkTck: number };
  targets: Record<string, { ran: boolean; skipped: string | null }>;
  small: {
    runs: SmallRun[];
    summary: Record<
      string,
      {
        rps: Spread;
        p50Ms: Spread;
        p99Ms: Spread;
        proxyUsPerReq: Spread | null;
        proxyCoreBusy: Spread | null;
        backendUsPerReq: Spread;
        errors: number;
        proxyCpuOtherLoadMax: number;
      }
    >;
    gatewayOverNginx: { ofMedians: number; paired: Spread } | null;
  } | null;
  streams: {
    frames: number;
    intervalMs: number;
    /** the all-at-once burst (as before the ramped pass existed) */
    runs: StreamRun[];
    /** 0 when the ramped pass was not run */
    rampMs: number;
    /** stream i started at i*rampMs/N ms */
    rampedRuns: StreamRun[];
    /** gateway TTFC p50 minus direct TTFC p50, per pass (null when either is missing) */
    gatewayTtfcP50OverDirect: { burst: TtfcDelta | null; ramped: TtfcDelta | null };
  } | null;
  switch?: SwitchReport | null;
  warnings: string[];
};

/** The streams goal (issue 13): first-chunk p50 through the gateway within this many ms of direct. */
const TTFC_P50_BUDGET_MS = 2;
/** The streams goal (issue 13): the gateway's RSS above idle, per open stream, in KiB. */
const STREAM_RSS_PER_STREAM_BUDGET_KIB = 32;

type TtfcDelta = { gatewayMs: number; directMs: number; deltaMs: number; budgetMs: number; within: boolean };

function ttfcDelta(runs: readonly StreamRun[]): TtfcDelta | null {
  const g = runs.find((r) => r.target === 'gateway');
  const d = runs.find((r) => r.target === 'direct');
  if (g === undefined || d === undefined || !Number.isFinite(g.ttfcP50Ms) || !Number.isFinite(d.ttfcP50Ms)) return null;
  const deltaMs = g.ttfcP50Ms - d.ttfcP50Ms;
  return { gatewayMs: g.ttfcP50Ms, directMs: d.ttfcP50Ms, deltaMs, budgetMs: TTFC_P50_BUDGET_MS, within: deltaMs <= TTFC_P50_BUDGET_MS };
}

function summarizeSmall(runs: SmallRun[], targets: TargetName[]): NonNullable<Report['small']> {
  const summary: NonNullable<Report['small']>['summary'] = {};
  for (const t of targets) {
    const rs = runs.filter((r) => r.target === t);
    if (rs.length === 0) continue;
    const proxied = rs[0]?.proxyUsPerReq !== null;
    summary[t] = {
      rps: spread(rs.map((r) => r.rps)),
      p50Ms: spread(rs.map((r) => r.p50Ms)),
      p99Ms: spread(rs.map((r) => r.p99Ms)),
      proxyUsPerReq: proxied ? spread(rs.map((r) => r.proxyUsPerReq ?? Number.NaN)) : null,
      proxyCoreBusy: proxied ? spread(rs.map((r) => r.proxyCoreBusy ?? Number.NaN)) : null,
      backendUsPerReq: spread(rs.map((r) => r.backendUsPerReq)),
      errors: rs.reduce((s, r) => s + r.errors, 0),
      proxyCpuOtherLoadMax: Math.max(...rs.map((r) => r.proxyCpuOtherLoad)),
    };
  }
  let ratio: NonNullable<Report['small']>['gatewayOverNginx'] = null;
  const g = summary['gateway']?.proxyUsPerReq;
  const n = summary['nginx']?.proxyUsPerReq;
  if (g !== null && g !== undefined && n !== null && n !== undefined) {
    const paired: number[] = [];
    const rounds = new Set(runs.map((r) => r.round));
    for (const round of rounds) {
      const gr = runs.find((r) => r.round === round && r.target === 'gateway')?.proxyUsPerReq;
      const nr = runs.find((r) => r.round === round && r.target === 'nginx')?.proxyUsPerReq;
      if (gr !== null && gr !== undefined && nr !== null && nr !== undefined && nr > 0) paired.push(gr / nr);
    }
    ratio = { ofMedians: g.median / n.median, paired: spread(paired) };
  }
  return { runs, summary, gatewayOverNginx: ratio };
}

function renderMarkdown(r: Report): string {
  const L: string[] = [];
  const o = r.options;
  L.push(`# serve-gateway benchmark — ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`);
  L.push('');
  L.push(
    `Commit \`${r.env.git}\`${r.env.gitDirty ? ' (working tree modified)' : ''} · ${r.env.cpus.length} CPUs (${r.env.cpuModel}) · ` +
      `kernel ${r.env.kernel} · Node ${r.env.node} · nginx ${r.env.nginxVersion ?? 'not installed'} · wrk ${r.env.wrkVersion ?? 'not installed'} · CLK_TCK ${r.env.clkTck}`,
  );
  L.push('');
  L.push(
    `Loopback only. Backend (\`bench/backend.ts\`), wrk and the stream client pinned to CPU${o.loadCpu}; ` +
      `each proxy alone on CPU${o.proxyCpu} (\`taskset -c\`, all threads). Command: \`${r.command}\``,
  );
  L.push('');
  const ran = Object.entries(r.targets).filter(([, v]) => v.ran).map(([k]) => k);
  L.push(`Targets run: ${ran.length > 0 ? ran.join(', ') : 'none'}.`);
  for (const [k, v] of Object.entries(r.targets)) {
    if (v.skipped === null) continue;
    const [first, ...more] = v.skipped.split('\n');
    L.push(`- **${k} skipped**: ${first ?? ''}`);
    const detail = more.filter((l) => l.trim() !== '' && !l.startsWith('--- last output')).slice(-8);
    if (detail.length > 0) L.push('', '  ```', ...detail.map((l) => `  ${l}`), '  ```');
  }
  L.push('');
  if (r.small !== null) {
    const s = r.small;
    L.push(
      `## Small requests — POST /llm, 100-byte JSON body and reply, \`wrk -t1 -c${o.connections} --latency\``,
    );
    L.push('');
    L.push(
      `${o.rounds} interleaved round(s), order rotated each round, fresh proxy process per run, ${o.warmup} s warm-up + ${o.duration} s measured. ` +
        `Median (min–max) over rounds. Proxy CPU = Δ(utime+stime) of all the proxy's processes and threads from /proc ÷ requests.`,
    );
    L.push('');
    L.push('| target | proxy CPU µs/req | × nginx | rps | p50 ms | p99 ms | proxy core busy | backend µs/req | errors |');
    L.push('|---|---|---|---|---|---|---|---|---|');
    const nMed = s.summary['nginx']?.proxyUsPerReq?.median ?? Number.NaN;
    for (const t of ALL_TARGETS) {
      const x = s.summary[t];
      if (x === undefined) continue;
      const cpu = x.proxyUsPerReq !== null ? `**${fmtSpread(x.proxyUsPerReq)}**` : '– (no proxy)';
      const ratio = x.proxyUsPerReq !== null && Number.isFinite(nMed) ? `${fmt(x.proxyUsPerReq.median / nMed, 2)}×` : '–';
      const busy = x.proxyCoreBusy !== null ? `${fmt(x.proxyCoreBusy.median * 100, 0)} %` : '–';
      L.push(
        `| ${t} | ${cpu} | ${ratio} | ${fmtSpread(x.rps, 0, true)} | ${fmtSpread(x.p50Ms, 2)} | ${fmtSpread(x.p99Ms, 2)} | ${busy} | ${fmtSpread(x.backendUsPerReq)} | ${x.errors} |`,
      );
    }
    L.push('');
    if (s.gatewayOverNginx !== null) {
      L.push(
        `**gateway / nginx CPU per request: ${fmt(s.gatewayOverNginx.ofMedians, 2)}×** (ratio of medians; ` +
          `paired per round: ${fmt(s.gatewayOverNginx.paired.median, 2)}× (${fmt(s.gatewayOverNginx.paired.min, 2)}–${fmt(s.gatewayOverNginx.paired.max, 2)}), ${s.gatewayOverNginx.paired.n} round${s.gatewayOverNginx.paired.n === 1 ? "" : "s"}).`,
      );
      L.push('');
    }
    L.push(
      'nginx at this load is not saturated (see "proxy core busy"), so its µs/req is an upper bound and the ratio favours the gateway by roughly 10 %. ' +
        'The direct row\'s "backend µs/req" is the upstream\'s own cost per request, for reference.',
    );
    L.push('');
  }
  if (r.streams !== null && (r.streams.runs.length > 0 || r.streams.rampedRuns.length > 0)) {
    const st = r.streams;
    const n = st.runs[0]?.streams ?? st.rampedRuns[0]?.streams ?? o.streams;
    const streamS = (st.frames * st.intervalMs) / 1000;
    const rampS = `${fmt(st.rampMs / 1000, st.rampMs % 1000 === 0 ? 0 : 1)} s`;
    L.push(
      `## ${n} concurrent SSE streams — ${st.frames} frames × ${st.intervalMs} ms (≈ ${fmt(streamS, 0)} s) each, one request per connection`,
    );
    L.push('');
    L.push(
      (st.rampMs > 0
        ? 'Each target is measured in two passes, each with a fresh backend and proxy: all streams opened in the same instant (a connection burst), ' +
          `and opened over ${rampS} (stream i at i × ${st.rampMs} / ${n} ms), which keeps all ${n} open together from t ≈ ${rampS} ` +
          `until the first ones end at t ≈ ${fmt(streamS, 0)} s. `
        : 'All streams opened in the same instant (a connection burst; the ramped pass was turned off with --stream-ramp-ms 0). ') +
        "TTFB, TTFC and total are measured from the burst's start, and in the ramped pass from each stream's own request. " +
        '"peak open" = most streams open at one time (request sent, response not ended) and how long that peak lasted.',
    );
    L.push('');
    // d: decimals of the TTFB/TTFC columns (ramped TTFCs are tens of ms apart by a few ms: show the tenth)
    const table = (runs: readonly StreamRun[], d: number): void => {
      L.push(
        '| target | completed | TTFB p50 ms | TTFC p50 ms | TTFC p99 ms | TTFC max ms | total p50 s | max gap p99 ms | RSS idle → peak MB (sampled 250 ms) | VmHWM MB | CPU µs/stream | listen overflows | peak open |',
      );
      L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
      for (const x of runs) {
        const who = x.measured === 'backend' ? ' (backend)' : '';
        const peak = `${x.peakOpen.peak} for ${fmt((x.peakOpen.peakToMs - x.peakOpen.peakFromMs) / 1000, 1)} s`;
        L.push(
          `| ${x.target} | **${x.completed}/${x.streams}** | ${fmt(x.ttfbP50Ms, d)} | **${fmt(x.ttfcP50Ms, d)}** | **${fmt(x.ttfcP99Ms, d)}** | ${fmt(x.ttfcMaxMs, d)} | ${fmt(x.totalP50Ms / 1000, 2)} | ${fmt(x.maxGapP99Ms, 0)} | ${fmt(x.rssIdleMb, 0)} → **${fmt(x.rssPeakMb, 0)}**${who} | ${fmt(x.vmHwmMb, 0)} | ${fmt(x.cpuUsPerStream, 0)}${who} | ${x.listenOverflows} | ${peak} |`,
        );
      }
      L.push('');
    };
    const deltaLine = (what: string, dl: TtfcDelta | null): void => {
      if (dl === null) return;
      L.push(
        `**${what}: gateway TTFC p50 − direct TTFC p50 = ${dl.deltaMs >= 0 ? '+' : '−'}${fmt(Math.abs(dl.deltaMs), 1)} ms** ` +
          `(${fmt(dl.gatewayMs, 1)} − ${fmt(dl.directMs, 1)}): ${dl.within ? 'within' : '**not** within'} ${dl.budgetMs} ms.`,
      );
      L.push('');
    };
    if (st.runs.length > 0) {
      L.push(`### All ${n} opened at once`);
      L.push('');
      table(st.runs, 0);
      deltaLine('All at once', st.gatewayTtfcP50OverDirect.burst);
      L.push(
        'In a burst of this size TTFC is set mostly by the client and backend sharing CPU' +
          `${o.loadCpu} (the client often reads a stream's headers and its first frame in the same late read, so direct TTFB ≈ TTFC): ` +
          'it measures how fast CPU' +
          `${o.loadCpu} and the accept queues get through ${n} connections, not what the proxy adds per stream. Compare the proxied rows with direct. ` +
          'Listen overflows are the system-wide TcpExt counter during the run (nonzero means 1-s SYN retransmits).',
      );
      L.push('');
    }
    if (st.rampedRuns.length > 0) {
      L.push(`### Opened over ${rampS} (${n} concurrent from t=${rampS})`);
      L.push('');
      table(st.rampedRuns, 1);
      deltaLine(`Opened over ${rampS}`, st.gatewayTtfcP50OverDirect.ramped);
      const conc = st.rampedRuns
        .map(
          (x) =>
            `${x.target} ${x.peakOpen.peak} (t = ${fmt(x.peakOpen.peakFromMs / 1000, 2)}–${fmt(x.peakOpen.peakToMs / 1000, 2)} s; ` +
            `${x.peakStreaming.peak} receiving frames at once)`,
        )
        .join(', ');
      L.push(`Peak concurrent open streams, from the per-stream start and end times: ${conc}.`);
      L.push('');
      const g = st.rampedRuns.find((x) => x.target === 'gateway');
      const dl = st.gatewayTtfcP50OverDirect.ramped;
      if (g !== undefined) {
        const allDone = g.completed === g.streams && g.peakOpen.peak === g.streams;
        const perStreamKib = ((g.rssPeakMb - g.rssIdleMb) * 1024) / g.streams;
        const rssOk = perStreamKib <= STREAM_RSS_PER_STREAM_BUDGET_KIB;
        const ok = allDone && dl !== null && dl.within && rssOk;
        L.push(
          `**Goal — ${n} concurrent SSE streams through the gateway all complete; first-chunk p50 within ${TTFC_P50_BUDGET_MS} ms of direct; ` +
            `RSS above idle ≤ ${STREAM_RSS_PER_STREAM_BUDGET_KIB} KiB per stream: ` +
            `${ok ? 'met' : 'NOT met'}** (opened over ${rampS}: ${g.completed}/${g.streams} completed with ${g.peakOpen.peak} open at once; ` +
            `TTFC p50 ${dl !== null ? `${dl.deltaMs >= 0 ? '+' : '−'}${fmt(Math.abs(dl.deltaMs), 1)} ms` : 'not compared (no direct row)'}; ` +
            `RSS ${fmt(g.rssIdleMb, 0)} → ${fmt(g.rssPeakMb, 0)} MB = **${fmt(perStreamKib, 1)} KiB per stream** above idle, VmHWM ${fmt(g.vmHwmMb, 0)} MB).`,
        );
        L.push('');
      }
      L.push(
        'With the ramp, each connection is accepted and answered while the others stream, so TTFC is one request\'s path through the proxy plus the ' +
          `backend's first-frame delay (${st.intervalMs} ms); the gap to direct is what the proxy adds. Start lateness of the client's timers is in the JSON (startLateP99Ms).`,
      );
      L.push('');
    }
  }
  if (r.switch !== undefined && r.switch !== null) L.push(...renderSwitchMarkdown(r.switch, o.loadCpu, o.proxyCpu));
  if (r.warnings.length > 0) {
    L.push('## Warnings');
    L.push('');
    for (const w of r.warnings) L.push(`- ${w.split('\n')[0]}`);
    L.push('');
  }
  if (r.small !== null && r.small.runs.length > 0) {
    L.push('<details><summary>Small-request runs</summary>');
    L.push('');
    L.push(`| round | # | target | rps | p50 ms | p99 ms | proxy µs/req | proxy core | backend µs/req | other load CPU${o.proxyCpu} | CPU${o.loadCpu} busy | steal % | errors |`);
    L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const x of r.small.runs) {
      L.push(
        `| ${x.round} | ${x.position + 1} | ${x.target} | ${fmtInt(x.rps)} | ${fmt(x.p50Ms, 2)} | ${fmt(x.p99Ms, 2)} | ${x.proxyUsPerReq !== null ? fmt(x.proxyUsPerReq) : '–'} | ${x.proxyCoreBusy !== null ? `${fmt(x.proxyCoreBusy * 100, 0)} %` : '–'} | ${fmt(x.backendUsPerReq)} | ${fmt(x.proxyCpuOtherLoad * 100, 0)} % | ${fmt(x.loadCpuBusy * 100, 0)} % | ${fmt(x.stealPct, 1)} | ${x.errors} |`,
      );
    }
    L.push('');
    L.push('</details>');
    L.push('');
  }
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  installCleanupHandlers(log);
  const env = probeEnv();
  const startedAt = new Date();
  const problems: string[] = [];
  if (env.taskset === null) problems.push('taskset not found (util-linux)');
  if (env.wrk === null && (o.only === null || o.only === 'small')) problems.push(`wrk not installed — install with: ${INSTALL_HINT}`);
  if (env.nginx === null) log(`note: nginx not installed, the nginx target is skipped — install with: ${INSTALL_HINT}`);
  if (!env.cpus.includes(o.loadCpu) || !env.cpus.includes(o.proxyCpu))
    problems.push(`CPUs ${o.loadCpu} and ${o.proxyCpu} must be online (online: ${env.cpus.join(',')}); this bench needs 2 cores`);
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) problems.push(`run with Node 24 (node_modules/.bin/node), not ${process.version}`);
  if (problems.length > 0) die(`cannot run the bench:\n- ${problems.join('\n- ')}`);
  if (env.cpus.length > 2) log(`note: ${env.cpus.length} CPUs online; only CPU${o.loadCpu} and CPU${o.proxyCpu} are used`);

  let gw: GatewayConf | null = null;
  let gwError: string | null = null;
  if (o.targets.includes('gateway')) {
    try {
      gw = readGatewayConf(o.gatewayConfig);
      const want = `127.0.0.1:${o.backendPort}`;
      if (!gw.endpoints.some((e) => e.includes(want)))
        gwError = `gateway config ${o.gatewayConfig} has no endpoint ${want} (the bench backend)`;
    } catch (e) {
      gwError = `cannot read gateway config ${o.gatewayConfig}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const ports = new Map<number, string>([[o.backendPort, 'backend']]);
  if (o.targets.includes('nginx')) ports.set(o.nginxPort, 'nginx');
  if (gw !== null && gwError === null) {
    ports.set(gw.port, 'gateway');
    if (gw.adminPort !== null) ports.set(gw.adminPort, 'gateway admin');
  }
  for (const [port, what] of o.only === 'switch' ? [] : ports) {
    if (await portInUse(port)) die(`port ${port} (${what}) is already in use on 127.0.0.1 — is another bench or gateway running?`);
  }

  pinSelf(o.loadCpu);
  const iso = startedAt.toISOString(); // 2026-11-26T05:41:00.123Z -> 2026-11-26T054100Z-<commit>
  const id = `${iso.slice(0, 10)}T${iso.slice(11, 19).replace(/:/g, '')}Z-${env.git}`;
  const runDir = join(BENCH, 'results', 'tmp', id);
  mkdirSync(runDir, { recursive: true });
  log(`bench ${id}: logs in ${relative(ROOT, runDir)}`);

  const warnings: string[] = [];
  const targets = makeTargets(o, env, runDir, gw, gwError, warnings);
  for (const t of targets) if (t.skipped !== null) log(`${t.name}: SKIPPED — ${t.skipped}`);

  const smallRuns = o.only === null || o.only === 'small' ? await smallPhase(o, env, targets, runDir, warnings) : null;
  const streamOut = o.only === null || o.only === 'streams' ? await streamPhase(o, env, targets, runDir, warnings) : null;
  const switchRun =
    o.only === null || o.only === 'switch'
      ? await switchPhase(
          {
            root: ROOT,
            node: NODE,
            gatewayBin: o.gatewayBin,
            runDir,
            loadCpu: o.loadCpu,
            proxyCpu: o.proxyCpu,
            startTimeout: o.startTimeout,
            seconds: o.switchSeconds,
            switchAt: o.switchAt,
            connections: o.switchConnections,
            rollout: o.switchRollout,
            log,
          },
          warnings,
        )
      : null;
  if (smallRuns !== null && smallRuns.length > 0) {
    const noisy = smallRuns.filter((r) => r.proxyCpuOtherLoad > 0.1 || r.stealPct > 2);
    if (noisy.length > 0) {
      const worst = Math.max(...noisy.map((r) => r.proxyCpuOtherLoad)) * 100;
      warnings.unshift(
        `noisy machine: ${noisy.length} of ${smallRuns.length} small-request runs had other load on CPU${o.proxyCpu} above 10 % ` +
          `(up to ${fmt(worst, 0)} %) or steal above 2 % — see the per-run table; rerun on a quiet machine before quoting numbers`,
      );
    }
  }

  const streamRuns = streamOut !== null ? [...streamOut.burst, ...streamOut.ramped] : null;
  const ranSet = new Set<string>([...(smallRuns ?? []).map((r) => r.target), ...(streamRuns ?? []).map((r) => r.target)]);
  const frames = Math.max(1, Math.round((o.streamSeconds * 1000) / o.streamInterval));
  const { out: _out, write: _write, gatewayConfig, gatewayBin, ...rest } = o;
  const { wrk: _w, nginx: _n, taskset: _t, ...envRest } = env;
  const report: Report = {
    id,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `node bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
    options: { ...rest, gatewayConfig: relative(ROOT, gatewayConfig), gatewayBin: relative(ROOT, gatewayBin) },
    env: { ...envRest, clkTck: CLK_TCK },
    targets: Object.fromEntries(targets.map((t) => [t.name, { ran: ranSet.has(t.name), skipped: t.skipped }])),
    small: smallRuns !== null ? summarizeSmall(smallRuns, o.targets) : null,
    streams:
      streamOut !== null
        ? {
            frames,
            intervalMs: o.streamInterval,
            runs: streamOut.burst,
            rampMs: o.streamRampMs,
            rampedRuns: streamOut.ramped,
            gatewayTtfcP50OverDirect: { burst: ttfcDelta(streamOut.burst), ramped: ttfcDelta(streamOut.ramped) },
          }
        : null,
    switch: switchRun,
    warnings,
  };
  const md = renderMarkdown(report);
  process.stdout.write('\n' + md + '\n');
  if (o.write) {
    mkdirSync(o.out, { recursive: true });
    const base = join(o.out, id);
    writeFileSync(`${base}.md`, md + '\n');
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(o.out, 'latest.md'), md + '\n');
    log(`wrote ${relative(ROOT, base)}.md, .json and ${relative(ROOT, join(o.out, 'latest.md'))}`);
  }
  killAllSync();
  if (switchRun !== null && switchRun.failed) {
    log('switch under load: FAILED (failed requests, requests to blue after the cutover, or the call was refused) — exit code 1');
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  log(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  killAllSync();
  process.exit(1);
});
