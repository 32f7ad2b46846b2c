// Switch under load: an atomic traffic switch (and, optionally, a progressive rollout) while a
// closed-loop client keeps C requests in flight through the gateway. Part of `npm run bench`
// (bench/run.ts, `--only switch`); method in docs/benchmarks.md § "Switch under load".
//
// Processes (each its own process group, killed at the end):
//   sim      bin/serve-gateway sim --config <runDir>/switch-sim.yaml          pinned to --load-cpu
//   gateway  bin/serve-gateway start --config <runDir>/switch-<mode>.gateway.yaml  pinned to --proxy-cpu
//   client   bench/lib/switch-client.ts (undici Pool, C connections)          pinned to --load-cpu
// The driver (this process, on --load-cpu) makes the switch call at --switch-at seconds and lines
// the call up with every request's start/end (epoch ms, same clock in both processes).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, relative } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { CLK_TCK, checkPinned, cpuBusy, cpuSnap, processTree, spawnPinned, stopProc, tail } from './lib/proc.ts';
import type { Proc, Spawned } from './lib/proc.ts';
import { portInUse, request, sleep, waitReady } from './lib/http-probe.ts';
import { fmt, fmtInt, pct } from './lib/stats.ts';
import type { SwitchClientOut } from './lib/switch-client.ts';

export type SwitchMode = 'atomic' | 'rollout';

export type SwitchOptions = {
  readonly root: string;
  readonly node: string;
  readonly gatewayBin: string;
  readonly runDir: string;
  readonly loadCpu: number;
  readonly proxyCpu: number;
  readonly startTimeout: number;
  /** measured seconds of load per run */
  readonly seconds: number;
  /** when the switch call is made (atomic), seconds after the client starts */
  readonly switchAt: number;
  readonly connections: number;
  readonly rollout: boolean;
  readonly log: (s: string) => void;
};

/** Ports used by the scenario (none shared with the rest of the harness). */
export const SWITCH_PORTS = {
  gateway: 18090,
  admin: 19902,
  blue: [18101, 18102],
  green: [18201],
  blueDashboard: 18265,
  greenDashboard: 18266,
  simControl: 19950,
} as const;

const LATENCY_MS = 5;
const MAX_ONGOING = 32;
const REPLICAS = 2;
const ROLLOUT_BODY = { to: 'green', steps: [10, 50, 100], interval: '3s', min_requests: 20 };
const POST_BODY = '{"model":"llm","prompt":"Write one short sentence about the oceans.","max_tokens":16,"stream":false}';

export type PhaseStats = {
  name: string;
  /** window, seconds since the client's t0, by request start time */
  fromS: number;
  toS: number;
  requests: number;
  failed: number;
  blue: number;
  green: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
};

/** One second of the run: load, routing, tail latency and what the two cores did. */
export type Second = {
  t: number;
  requests: number;
  failed: number;
  blue: number;
  green: number;
  p99Ms: number;
  /** busy share of the load core, the proxy core, the gateway's own CPU, and the rest on the proxy core (0..1) */
  loadCpuBusy: number;
  proxyCpuBusy: number;
  gateway: number;
  proxyCpuOther: number;
};

type Sample = { at: number; busy: Map<number, { busy: number; steal: number; total: number }>; gwTicks: number };

export type SwitchRun = {
  mode: SwitchMode;
  connections: number;
  seconds: number;
  wallS: number;
  requests: number;
  ok: number;
  failed: number;
  non2xx: Record<string, number>;
  socketErrors: Record<string, number>;
  noClusterHeader: number;
  perCluster: Record<string, number>;
  /** completed requests per cluster counted by the simulator (control API), over the client's run */
  simCompleted: Record<string, number> | null;
  rps: number;
  /** switch call: HTTP status, sent and returned (s since t0), latency ms; for rollout the POST …/rollout call */
  call: { status: number; body: string; sentS: number; returnedS: number; latencyMs: number };
  /** rollout: weight changes from the audit log (s since t0) */
  steps: Array<{ atS: number; action: string; to: Record<string, number> | null; reason: string }>;
  /** when all traffic was on green (atomic: switch call returned; rollout: rollout_complete), s since t0 */
  cutoverS: number | null;
  /** requests to blue that started after cutoverS (must be 0) */
  blueAfterCutover: number;
  /** requests to green that started before the switch call was sent (must be 0) */
  greenBeforeSwitch: number;
  /** requests in flight across the switch call (started before it was sent, ended after it returned) */
  inFlightAcross: { total: number; blue: number; green: number; failed: number };
  phases: PhaseStats[];
  timeline: Second[];
  pinning: string[];
};

export type SwitchReport = {
  latencyMs: number;
  maxOngoing: number;
  replicas: number;
  runs: SwitchRun[];
  failed: boolean;
  error: string | null;
};

// ---------------------------------------------------------------------------------------------
// configs

function simConfig(): Record<string, unknown> {
  const serve = {
    applications: [
      {
        name: 'llm',
        route_prefix: '/llm',
        import_path: 'bench:app',
        deployments: [{ name: 'LLM', num_replicas: REPLICAS, max_ongoing_requests: MAX_ONGOING }],
      },
    ],
  };
  const P = SWITCH_PORTS;
  return {
    control: `127.0.0.1:${P.simControl}`,
    clusters: [
      {
        name: 'blue',
        proxies: P.blue.map((p) => `127.0.0.1:${p}`),
        dashboard: `127.0.0.1:${P.blueDashboard}`,
        serve_config: serve,
        apps: { llm: { latency_ms: LATENCY_MS } },
      },
      {
        name: 'green',
        proxies: P.green.map((p) => `127.0.0.1:${p}`),
        dashboard: `127.0.0.1:${P.greenDashboard}`,
        serve_config: serve,
        apps: { llm: { latency_ms: LATENCY_MS } },
      },
    ],
  };
}

function gatewayConfig(stateDir: string): Record<string, unknown> {
  const P = SWITCH_PORTS;
  return {
    listen: `127.0.0.1:${P.gateway}`,
    admin: { listen: `127.0.0.1:${P.admin}`, token_env: 'SERVE_GATEWAY_ADMIN_TOKEN' },
    state_dir: stateDir,
    clusters: [
      {
        name: 'blue',
        endpoints: P.blue.map((p) => `http://127.0.0.1:${p}`),
        dashboard: `http://127.0.0.1:${P.blueDashboard}`,
      },
      {
        name: 'green',
        endpoints: P.green.map((p) => `http://127.0.0.1:${p}`),
        dashboard: `http://127.0.0.1:${P.greenDashboard}`,
      },
    ],
    applications: { llm: { weights: { blue: 100, green: 0 } } },
    access_log: { sample_rate: 0.01 },
    health: { probe_interval: '2s' },
    dashboard_poll_interval: '1s',
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

type Reply = { status: number; body: string };

function call(port: number, method: string, path: string, body: unknown, token: string | null): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === null ? null : JSON.stringify(body);
    const headers: Record<string, string> = { connection: 'close' };
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    if (data !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(data));
    }
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        s += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout after 10 s')));
    req.on('error', reject);
    req.end(data ?? undefined);
  });
}

async function getJson(port: number, path: string): Promise<unknown> {
  const r = await call(port, 'GET', path, null, null);
  if (r.status !== 200) throw new Error(`GET ${path} -> ${r.status} ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as unknown;
}

const epochNow = (): number => performance.timeOrigin + performance.now();

/** Completed llm requests per cluster, from the simulator's control API. */
async function simCompleted(): Promise<Record<string, number> | null> {
  try {
    const j = (await getJson(SWITCH_PORTS.simControl, '/clusters')) as {
      clusters: Record<string, { apps?: Record<string, { completed?: number }> }>;
    };
    const out: Record<string, number> = {};
    for (const [name, c] of Object.entries(j.clusters)) out[name] = c.apps?.['llm']?.completed ?? 0;
    return out;
  } catch {
    return null;
  }
}

/** null when both clusters are ready for llm in the gateway's status, else the reason. */
async function gatewayReady(): Promise<string | null> {
  const r = await request(SWITCH_PORTS.gateway, 'POST', '/llm', POST_BODY);
  if (r.status !== 200) return `POST /llm -> ${r.status} ${r.body.slice(0, 200)}`;
  const st = (await getJson(SWITCH_PORTS.admin, '/api/v1/status')) as {
    apps?: Array<{ name: string; clusters: Array<{ cluster: string; ready: boolean; not_ready_reason: string | null }> }>;
  };
  const app = st.apps?.find((a) => a.name === 'llm');
  if (app === undefined) return 'app llm not in /api/v1/status';
  for (const c of app.clusters) if (!c.ready) return `${c.cluster}: ${c.not_ready_reason ?? 'not ready'}`;
  return app.clusters.length === 2 ? null : `llm has ${app.clusters.length} cluster(s), want 2`;
}

// ---------------------------------------------------------------------------------------------
// one run

/** `bin/serve-gateway …` (a #! script, run directly) or `node F …` for a .ts/.js entry point. */
function gatewayArgv(o: SwitchOptions, args: string[]): [string, string[]] {
  let head = '';
  try {
    head = readFileSync(o.gatewayBin, 'utf8').slice(0, 2);
  } catch {
    /* spawn reports it */
  }
  return head === '#!' ? [o.gatewayBin, args] : [o.node, [o.gatewayBin, ...args]];
}

async function startSim(o: SwitchOptions, tag: string): Promise<Spawned> {
  const file = join(o.runDir, 'switch-sim.yaml');
  writeFileSync(file, `# generated by bench/switch.ts\n${toYaml(simConfig())}`);
  const [cmd, argv] = gatewayArgv(o, ['sim', '--config', file]);
  const p = spawnPinned('sim', cmd, argv, {
    cpu: o.loadCpu,
    logFile: join(o.runDir, `switch-${tag}-sim.log`),
    cwd: o.root,
  });
  const reason = await waitReady(
    async () => {
      for (const port of [...SWITCH_PORTS.blue, ...SWITCH_PORTS.green]) {
        const r = await request(port, 'GET', '/-/healthz', null);
        if (r.status !== 200) return `:${port}/-/healthz ${r.status} ${r.body.slice(0, 100)}`;
      }
      return null;
    },
    o.startTimeout * 1000,
    () => (p.alive ? null : `exited with code ${String(p.exitCode)}`),
  );
  if (reason !== null) {
    await stopProc(p, 1000);
    throw new Error(`sim did not start: ${reason}\n${tail(p.logFile, 1500)}`);
  }
  return p;
}

async function startGateway(o: SwitchOptions, tag: string, token: string): Promise<Spawned> {
  const stateDir = join(o.runDir, `switch-${tag}-state`);
  mkdirSync(stateDir, { recursive: true });
  const file = join(o.runDir, `switch-${tag}.gateway.yaml`);
  writeFileSync(file, `# generated by bench/switch.ts\n${toYaml(gatewayConfig(stateDir))}`);
  const [cmd, argv] = gatewayArgv(o, ['start', '--config', file]);
  const p = spawnPinned('gateway', cmd, argv, {
    cpu: o.proxyCpu,
    logFile: join(o.runDir, `switch-${tag}-gateway.log`),
    cwd: o.root,
    env: { ...process.env, SERVE_GATEWAY_ADMIN_TOKEN: token },
  });
  const reason = await waitReady(gatewayReady, o.startTimeout * 1000, () =>
    p.alive ? null : `exited with code ${String(p.exitCode)}`,
  );
  if (reason !== null) {
    await stopProc(p, 1000);
    throw new Error(`gateway did not start (${relative(o.root, file)}): ${reason}\n${tail(p.logFile, 1500)}`);
  }
  return p;
}

async function oneRun(o: SwitchOptions, mode: SwitchMode, sim: Proc): Promise<SwitchRun> {
  const token = randomBytes(18).toString('base64url');
  const gw = await startGateway(o, mode, token);
  let client: Spawned | null = null;
  let sampler: ReturnType<typeof setInterval> | null = null;
  try {
    const pinning = [
      ...checkPinned(processTree(gw.pid), o.proxyCpu).map((s) => `gateway ${s}`),
      ...checkPinned(processTree(sim.pid), o.loadCpu).map((s) => `sim ${s}`),
    ];
    // rollout: start at 8 s of a 25 s run, so the steps (3 s each) finish well before the end
    const seconds = mode === 'atomic' ? o.seconds : Math.max(o.seconds, 25);
    const switchAt = mode === 'atomic' ? o.switchAt : Math.min(8, seconds / 3);
    const out = join(o.runDir, `switch-${mode}-requests.json`);
    const sim0 = await simCompleted();
    const gwPids = processTree(gw.pid);
    const samples: Sample[] = [];
    const sample = (): void => {
      const snap = cpuSnap(gwPids);
      let ticks = 0;
      for (const v of snap.ticks.values()) ticks += v;
      samples.push({ at: epochNow(), busy: cpuBusy(), gwTicks: ticks });
    };
    sample();
    sampler = setInterval(sample, 250);
    client = spawnPinned(
      'switch-client',
      o.node,
      [
        join(o.root, 'bench', 'lib', 'switch-client.ts'),
        '--url', `http://127.0.0.1:${SWITCH_PORTS.gateway}/llm`,
        '--connections', String(o.connections),
        '--seconds', String(seconds),
        '--out', out,
        '--body', POST_BODY,
      ],
      { cpu: o.loadCpu, captureStdout: true },
    );
    const c = client;
    const guard = setTimeout(() => void stopProc(c, 1000), (seconds + 30) * 1000);
    // the client prints its t0 (epoch ms) as soon as it starts
    const t0Deadline = Date.now() + 15_000;
    let t0 = Number.NaN;
    while (Date.now() < t0Deadline && c.alive) {
      const m = /^t0 (\d+(?:\.\d+)?)$/m.exec(c.stdout());
      if (m !== null) {
        t0 = Number(m[1]);
        break;
      }
      await sleep(20);
    }
    if (!Number.isFinite(t0)) throw new Error(`switch client did not start: ${c.stderr().slice(-1000)}`);
    const wait = t0 + switchAt * 1000 - epochNow();
    if (wait > 0) await sleep(wait);
    const sent = epochNow();
    const reply =
      mode === 'atomic'
        ? await call(SWITCH_PORTS.admin, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 0, green: 100 } }, token)
        : await call(SWITCH_PORTS.admin, 'POST', '/api/v1/apps/llm/rollout', ROLLOUT_BODY, token);
    const returned = epochNow();
    o.log(`  ${mode}: ${mode === 'atomic' ? 'PUT …/weights' : 'POST …/rollout'} -> ${reply.status} in ${fmt(returned - sent, 2)} ms`);
    await c.exited;
    clearTimeout(guard);
    clearInterval(sampler);
    sampler = null;
    sample();
    const sim1 = await simCompleted();
    let data: SwitchClientOut;
    try {
      data = JSON.parse(readFileSync(out, 'utf8')) as SwitchClientOut;
    } catch (e) {
      throw new Error(`no result from the switch client (exit ${String(c.exitCode)}): ${e instanceof Error ? e.message : String(e)}\n${c.stderr().slice(-1000)}`);
    }
    const events = ((await getJson(SWITCH_PORTS.admin, '/api/v1/events?limit=100')) as {
      events: Array<{ at: string; app: string; action: string; to: Record<string, number> | null; reason: string; result: string }>;
    }).events
      .filter((e) => e.app === 'llm' && e.result === 'ok')
      .reverse();
    const simDelta =
      sim0 !== null && sim1 !== null ? Object.fromEntries(Object.keys(sim1).map((k) => [k, (sim1[k] ?? 0) - (sim0[k] ?? 0)])) : null;
    const run = analyse(mode, data, { sent, returned, reply }, events, simDelta, pinning);
    run.timeline = timeline(data, samples, o.loadCpu, o.proxyCpu);
    return run;
  } finally {
    if (sampler !== null) clearInterval(sampler);
    if (client !== null) await stopProc(client, 1000);
    await stopProc(gw, 5000);
  }
}

// ---------------------------------------------------------------------------------------------
// analysis

function analyse(
  mode: SwitchMode,
  d: SwitchClientOut,
  sw: { sent: number; returned: number; reply: Reply },
  events: Array<{ at: string; action: string; to: Record<string, number> | null; reason: string }>,
  simDelta: Record<string, number> | null,
  pinning: string[],
): SwitchRun {
  const rel = (epoch: number): number => (epoch - d.t0EpochMs) / 1000;
  const n = d.start.length;
  const name = (i: number): string => {
    const k = d.cluster[i] ?? -1;
    return k >= 0 ? (d.clusters[k] ?? '?') : '(none)';
  };
  const isOk = (i: number): boolean => {
    const s = d.status[i] ?? 0;
    return s >= 200 && s < 300;
  };
  const non2xx: Record<string, number> = {};
  const socketErrors: Record<string, number> = {};
  const perCluster: Record<string, number> = {};
  let ok = 0;
  let noHeader = 0;
  for (let i = 0; i < n; i++) {
    const s = d.status[i] ?? 0;
    if (isOk(i)) ok++;
    else if (s === 0) {
      const e = (d.errors[String(i)] ?? 'no response').split(':')[0] ?? 'error';
      socketErrors[e] = (socketErrors[e] ?? 0) + 1;
    } else non2xx[String(s)] = (non2xx[String(s)] ?? 0) + 1;
    if (s !== 0) {
      const c = name(i);
      perCluster[c] = (perCluster[c] ?? 0) + 1;
      if (c === '(none)') noHeader++;
    }
  }
  const sentS = rel(sw.sent);
  const returnedS = rel(sw.returned);
  const steps = events
    .map((e) => ({ atS: rel(Date.parse(e.at)), action: e.action, to: e.to, reason: e.reason }))
    .filter((e) => e.atS >= -1);
  let cutoverS: number | null;
  if (mode === 'atomic') cutoverS = sw.reply.status === 200 ? returnedS : null;
  else {
    const done = steps.find((e) => e.action === 'rollout_complete');
    // the audit record is written after the new snapshot is published; its time is truncated to 1 ms
    cutoverS = done !== undefined ? done.atS + 0.001 : null;
  }
  let blueAfter = 0;
  let greenBefore = 0;
  const across = { total: 0, blue: 0, green: 0, failed: 0 };
  for (let i = 0; i < n; i++) {
    const s0 = (d.start[i] ?? 0) / 1000;
    const s1 = (d.end[i] ?? 0) / 1000;
    const c = name(i);
    if (cutoverS !== null && s0 > cutoverS && c === 'blue') blueAfter++;
    if (s0 < sentS && c === 'green') greenBefore++;
    if (s0 < sentS && s1 > returnedS) {
      across.total++;
      if (c === 'blue') across.blue++;
      else if (c === 'green') across.green++;
      if (!isOk(i)) across.failed++;
    }
  }
  const phase = (label: string, fromS: number, toS: number): PhaseStats => {
    const lat: number[] = [];
    let failed = 0;
    let blue = 0;
    let green = 0;
    for (let i = 0; i < n; i++) {
      const s0 = (d.start[i] ?? 0) / 1000;
      if (s0 < fromS || s0 >= toS) continue;
      if (!isOk(i)) failed++;
      if ((d.status[i] ?? 0) !== 0) lat.push((d.end[i] ?? 0) - (d.start[i] ?? 0));
      const c = name(i);
      if (c === 'blue') blue++;
      else if (c === 'green') green++;
    }
    lat.sort((a, b) => a - b);
    return {
      name: label,
      fromS,
      toS,
      requests: countIn(d, fromS, toS),
      failed,
      blue,
      green,
      p50Ms: pct(lat, 50),
      p99Ms: pct(lat, 99),
      maxMs: lat.length > 0 ? (lat[lat.length - 1] as number) : Number.NaN,
    };
  };
  const end = d.seconds;
  const phases: PhaseStats[] = [];
  if (mode === 'atomic') {
    // with the defaults (20 s, switch at 10 s): steady 2–9 s, switch 9–11 s, after 12–19 s
    phases.push(phase('steady (before)', 2, sentS - 1));
    phases.push(phase('switch ± 1 s', sentS - 1, returnedS + 1));
    phases.push(phase('after', returnedS + 2, end - 1));
  } else {
    phases.push(phase('steady (before)', 2, sentS - 1));
    const weightSteps = steps.filter((e) => e.to !== null && e.atS >= sentS - 0.5);
    for (let k = 0; k < weightSteps.length; k++) {
      const e = weightSteps[k]!;
      const next = weightSteps[k + 1];
      const toS = next !== undefined ? next.atS : Math.min(e.atS + 2, end);
      phases.push(phase(`green ${e.to?.['green'] ?? '?'} % (${e.action.replace('rollout_', '')})`, e.atS, toS));
    }
    if (cutoverS !== null) phases.push(phase('after', cutoverS + 2, end - 1));
  }
  return {
    mode,
    connections: d.connections,
    seconds: d.seconds,
    wallS: d.wallMs / 1000,
    requests: n,
    ok,
    failed: n - ok,
    non2xx,
    socketErrors,
    noClusterHeader: noHeader,
    perCluster,
    simCompleted: simDelta,
    rps: n / (d.wallMs / 1000),
    call: { status: sw.reply.status, body: sw.reply.body.slice(0, 300), sentS, returnedS, latencyMs: sw.returned - sw.sent },
    steps,
    cutoverS,
    blueAfterCutover: blueAfter,
    greenBeforeSwitch: greenBefore,
    inFlightAcross: across,
    phases,
    timeline: [],
    pinning,
  };
}

function timeline(d: SwitchClientOut, samples: readonly Sample[], loadCpu: number, proxyCpu: number): Second[] {
  // the client starts no request after `seconds`; the tail while the last replies come back is no second of its own
  const secs = Math.max(1, Math.min(Math.ceil(d.wallMs / 1000), Math.ceil(d.seconds)));
  const rows: Second[] = [];
  const lat: number[][] = Array.from({ length: secs }, () => []);
  for (let t = 0; t < secs; t++) rows.push({ t, requests: 0, failed: 0, blue: 0, green: 0, p99Ms: Number.NaN, loadCpuBusy: Number.NaN, proxyCpuBusy: Number.NaN, gateway: Number.NaN, proxyCpuOther: Number.NaN });
  for (let i = 0; i < d.start.length; i++) {
    const row = rows[Math.floor((d.start[i] ?? 0) / 1000)];
    if (row === undefined) continue;
    row.requests++;
    const st = d.status[i] ?? 0;
    if (st < 200 || st >= 300) row.failed++;
    else lat[row.t]?.push((d.end[i] ?? 0) - (d.start[i] ?? 0));
    const c = (d.cluster[i] ?? -1) >= 0 ? d.clusters[d.cluster[i] as number] : undefined;
    if (c === 'blue') row.blue++;
    else if (c === 'green') row.green++;
  }
  // CPU: the samples (every 250 ms) nearest to the start and end of each second
  const at = (sec: number): Sample | undefined => {
    const want = d.t0EpochMs + sec * 1000;
    let best: Sample | undefined;
    for (const s of samples) if (best === undefined || Math.abs(s.at - want) < Math.abs(best.at - want)) best = s;
    return best;
  };
  for (const row of rows) {
    const l = lat[row.t] ?? [];
    l.sort((a, b) => a - b);
    row.p99Ms = pct(l, 99);
    const a = at(row.t);
    const b = at(row.t + 1);
    if (a === undefined || b === undefined || b.at - a.at < 500) continue;
    const wall = (b.at - a.at) / 1000;
    const busy = (cpu: number): number => {
      const x = a.busy.get(cpu);
      const y = b.busy.get(cpu);
      return x !== undefined && y !== undefined ? (y.busy - x.busy) / CLK_TCK / wall : Number.NaN;
    };
    row.loadCpuBusy = busy(loadCpu);
    row.proxyCpuBusy = busy(proxyCpu);
    row.gateway = (b.gwTicks - a.gwTicks) / CLK_TCK / wall;
    row.proxyCpuOther = Math.max(0, row.proxyCpuBusy - row.gateway);
  }
  return rows;
}

function countIn(d: SwitchClientOut, fromS: number, toS: number): number {
  let c = 0;
  for (const s of d.start) if (s / 1000 >= fromS && s / 1000 < toS) c++;
  return c;
}

/** Whether a run broke the scenario's promises (any failed request, blue after cutover, call refused). */
export function runFailed(r: SwitchRun): boolean {
  const okCall = r.mode === 'atomic' ? r.call.status === 200 : r.call.status === 201;
  return r.failed > 0 || r.blueAfterCutover > 0 || r.greenBeforeSwitch > 0 || !okCall || r.cutoverS === null;
}

// ---------------------------------------------------------------------------------------------
// entry points for bench/run.ts

export async function switchPhase(o: SwitchOptions, warnings: string[]): Promise<SwitchReport> {
  const report: SwitchReport = { latencyMs: LATENCY_MS, maxOngoing: MAX_ONGOING, replicas: REPLICAS, runs: [], failed: false, error: null };
  const P = SWITCH_PORTS;
  const ports = [P.gateway, P.admin, ...P.blue, ...P.green, P.blueDashboard, P.greenDashboard, P.simControl];
  for (const port of ports) {
    if (await portInUse(port)) {
      report.error = `port ${port} is already in use on 127.0.0.1 — is another bench, sim or gateway running?`;
      report.failed = true;
      warnings.push(`switch: ${report.error}`);
      return report;
    }
  }
  const modes: SwitchMode[] = o.rollout ? ['atomic', 'rollout'] : ['atomic'];
  let sim: Spawned | null = null;
  try {
    for (const mode of modes) {
      // a fresh simulator per run, so its counters and connections start from zero
      sim = await startSim(o, mode);
      o.log(`switch (${mode}): C=${o.connections}, ${mode === 'atomic' ? `${o.seconds} s, switch at ${o.switchAt} s` : `${Math.max(o.seconds, 25)} s, rollout ${ROLLOUT_BODY.steps.join('→')} every ${ROLLOUT_BODY.interval}`}`);
      const r = await oneRun(o, mode, sim);
      report.runs.push(r);
      await stopProc(sim, 3000);
      sim = null;
      if (r.pinning.length > 0) warnings.push(`switch ${mode}: threads not pinned as intended: ${r.pinning.slice(0, 5).join(', ')}`);
      if (runFailed(r)) report.failed = true;
      const ph = r.phases.map((p) => `${p.name} p99 ${fmt(p.p99Ms, 1)}`).join(', ');
      o.log(
        `  ${mode}: ${fmtInt(r.requests)} requests, ${r.failed} failed, ${Object.entries(r.perCluster).map(([k, v]) => `${k} ${fmtInt(v)}`).join(' ')}; ` +
          `blue after cutover ${r.blueAfterCutover}; ${ph} ms`,
      );
      await sleep(500);
    }
  } catch (e) {
    report.error = e instanceof Error ? e.message : String(e);
    report.failed = true;
    warnings.push(`switch: ${report.error.split('\n')[0] ?? ''}`);
    o.log(`switch: FAILED — ${report.error}`);
  } finally {
    if (sim !== null) await stopProc(sim, 3000);
  }
  for (const r of report.runs) {
    if (r.failed > 0) warnings.push(`switch ${r.mode}: ${r.failed} failed requests ${JSON.stringify({ ...r.non2xx, ...r.socketErrors })}`);
    if (r.blueAfterCutover > 0) warnings.push(`switch ${r.mode}: ${r.blueAfterCutover} requests went to blue after the cutover`);
    const noisy = r.timeline.filter((x) => x.proxyCpuOther > 0.1);
    if (noisy.length > 0)
      warnings.push(
        `switch ${r.mode}: noisy machine — other load on CPU${o.proxyCpu} above 10 % in ${noisy.length} of ${r.timeline.length} seconds ` +
          `(up to ${fmt(Math.max(...noisy.map((x) => x.proxyCpuOther)) * 100, 0)} %); see the per-second table before reading the p99s`,
      );
    if (r.call.status !== (r.mode === 'atomic' ? 200 : 201)) warnings.push(`switch ${r.mode}: the call returned ${r.call.status} ${r.call.body}`);
  }
  return report;
}

export function renderSwitchMarkdown(s: SwitchReport, loadCpu: number, proxyCpu: number): string[] {
  const L: string[] = [];
  L.push(`## Switch under load — POST /llm through the gateway to two simulated clusters, closed loop`);
  L.push('');
  const r0 = s.runs[0];
  L.push(
    `\`serve-gateway sim\` (blue: 2 proxies, green: 1 proxy, app \`llm\` ${s.replicas} replicas × max_ongoing_requests ${s.maxOngoing}, ${s.latencyMs} ms latency, dashboards on) ` +
      `and the switch client (undici Pool, ${r0?.connections ?? '?'} connections, one request in flight each) on CPU${loadCpu}; ` +
      `the gateway (weights blue 100) alone on CPU${proxyCpu}. Latency = client-side time from sending the request to the end of the reply. ` +
      `Windows are by request start time, in seconds from the start of the load. Failed = non-2xx + requests with no response (socket errors).`,
  );
  L.push('');
  if (s.error !== null) {
    L.push(`**Scenario failed:** ${s.error.split('\n')[0] ?? ''}`);
    L.push('');
  }
  for (const r of s.runs) {
    const what =
      r.mode === 'atomic'
        ? `Atomic switch: \`PUT /api/v1/apps/llm/weights {"weights":{"blue":0,"green":100}}\` at t = ${fmt(r.call.sentS, 2)} s`
        : `Progressive rollout: \`POST /api/v1/apps/llm/rollout ${JSON.stringify(ROLLOUT_BODY)}\` at t = ${fmt(r.call.sentS, 2)} s`;
    L.push(`### ${what}`);
    L.push('');
    const errs = { ...r.non2xx, ...r.socketErrors };
    const clusters = Object.entries(r.perCluster).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ');
    const simc = r.simCompleted !== null ? Object.entries(r.simCompleted).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') : '–';
    L.push('| | |');
    L.push('|---|---|');
    L.push(`| requests (${fmt(r.wallS, 1)} s, C=${r.connections}) | ${fmtInt(r.requests)} (${fmtInt(r.rps)} rps) |`);
    L.push(`| **failed requests** | **${r.failed}**${r.failed > 0 ? ` ${JSON.stringify(errs)}` : ''} |`);
    L.push(`| per cluster (x-serve-cluster) | ${clusters}${r.noClusterHeader > 0 ? ` (${r.noClusterHeader} without the header)` : ''} |`);
    L.push(`| per cluster (simulator's completed count) | ${simc} |`);
    L.push(
      `| ${r.mode === 'atomic' ? 'switch call' : 'rollout call'} | HTTP ${r.call.status} in **${fmt(r.call.latencyMs, 2)} ms** (sent t = ${fmt(r.call.sentS, 3)} s, returned ${fmt(r.call.returnedS, 3)} s) |`,
    );
    if (r.mode === 'rollout') {
      const st = r.steps
        .filter((e) => e.atS >= r.call.sentS - 0.5)
        .map((e) => `${fmt(e.atS, 2)} s ${e.action.replace('rollout_', '')}${e.to !== null ? ` → green ${e.to['green'] ?? '?'} %` : ''}`)
        .join('; ');
      L.push(`| rollout steps (audit log) | ${st !== '' ? st : '–'} |`);
    }
    L.push(
      `| **requests to blue started after ${r.mode === 'atomic' ? 'the switch call returned' : 'rollout_complete'}** | **${r.blueAfterCutover}**${r.cutoverS === null ? ' (no cutover happened)' : ''} |`,
    );
    L.push(`| requests to green started before the call was sent | ${r.greenBeforeSwitch} |`);
    L.push(
      `| in flight across the call (finished where they started) | ${r.inFlightAcross.total} (blue ${r.inFlightAcross.blue}, green ${r.inFlightAcross.green}, failed ${r.inFlightAcross.failed}) |`,
    );
    L.push('');
    L.push('| window | t (s) | requests | failed | blue | green | p50 ms | p99 ms | max ms |');
    L.push('|---|---|---|---|---|---|---|---|---|');
    for (const p of r.phases) {
      L.push(
        `| ${p.name} | ${fmt(p.fromS, 2)}–${fmt(p.toS, 2)} | ${fmtInt(p.requests)} | ${p.failed} | ${fmtInt(p.blue)} | ${fmtInt(p.green)} | ${fmt(p.p50Ms, 2)} | **${fmt(p.p99Ms, 2)}** | ${fmt(p.maxMs, 1)} |`,
      );
    }
    L.push('');
    L.push(`<details><summary>${r.mode}: per second</summary>`);
    L.push('');
    L.push(`| t (s) | requests | failed | blue | green | p99 ms | CPU${loadCpu} busy | CPU${proxyCpu} busy | gateway | other on CPU${proxyCpu} |`);
    L.push('|---|---|---|---|---|---|---|---|---|---|');
    const pc = (x: number): string => (Number.isFinite(x) ? `${fmt(x * 100, 0)} %` : '–');
    for (const x of r.timeline) {
      L.push(
        `| ${x.t} | ${fmtInt(x.requests)} | ${x.failed} | ${fmtInt(x.blue)} | ${fmtInt(x.green)} | ${fmt(x.p99Ms, 1)} | ${pc(x.loadCpuBusy)} | ${pc(x.proxyCpuBusy)} | ${pc(x.gateway)} | ${pc(x.proxyCpuOther)} |`,
      );
    }
    L.push('');
    L.push('</details>');
    L.push('');
  }
  if (s.runs.length > 0) {
    L.push(
      `Verdict: ${s.failed ? '**FAIL**' : '**PASS**'} — ${s.failed ? 'a request failed, reached the wrong cluster, or the call was refused (see above)' : 'no failed request, no request to blue after the cutover'}.`,
    );
    L.push('');
  }
  return L;
}
