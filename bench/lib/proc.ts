// Process control and /proc accounting for the bench harness.
// Every child is spawned detached (its own process group) through `taskset -c CPU`, registered,
// and killed by process group at the end, on Ctrl-C, on SIGTERM and on an uncaught exception.
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export type Proc = {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logFile: string | null;
  readonly exited: Promise<number | null>;
  exitCode: number | null;
  alive: boolean;
};

const live = new Set<Proc>();

export type SpawnOptions = {
  readonly cpu: number | null;
  readonly logFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** capture stdout into memory (for wrk and the stream client); stderr goes to logFile if given */
  readonly captureStdout?: boolean;
};

export type Spawned = Proc & { readonly stdout: () => string; readonly stderr: () => string };

/** Spawns `cmd args` pinned to `cpu` (all threads inherit the affinity), in a new process group. */
export function spawnPinned(name: string, cmd: string, args: readonly string[], opts: SpawnOptions): Spawned {
  const argv = opts.cpu === null ? [cmd, ...args] : ['taskset', '-c', String(opts.cpu), cmd, ...args];
  const fd = opts.logFile !== undefined ? openSync(opts.logFile, 'a') : null;
  const out = opts.captureStdout === true ? 'pipe' : fd ?? 'ignore';
  const err = fd ?? (opts.captureStdout === true ? 'pipe' : 'ignore');
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    stdio: ['ignore', out, err],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  if (fd !== null) closeSync(fd);
  let buf = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (s: string) => {
    buf += s;
    if (buf.length > 4_000_000) buf = buf.slice(-2_000_000);
  });
  let errBuf = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    errBuf += s;
    if (errBuf.length > 100_000) errBuf = errBuf.slice(-50_000);
  });
  if (child.pid === undefined) throw new Error(`${name}: spawn failed (${argv.join(' ')})`);
  let resolveExit: (c: number | null) => void = () => {};
  const exited = new Promise<number | null>((r) => {
    resolveExit = r;
  });
  const p: Spawned = {
    name,
    pid: child.pid,
    child,
    logFile: opts.logFile ?? null,
    exited,
    exitCode: null,
    alive: true,
    stdout: () => buf,
    stderr: () => errBuf,
  };
  child.on('error', (e) => {
    errBuf += `\nspawn error: ${e.message}\n`;
    p.alive = false;
    live.delete(p);
    resolveExit(null);
  });
  child.on('exit', (code, signal) => {
    p.alive = false;
    p.exitCode = code ?? (signal !== null ? 128 : null);
    live.delete(p);
    // the group may still hold grandchildren (e.g. a shell wrapper's child): take it down too
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      /* group already gone */
    }
    resolveExit(p.exitCode);
  });
  live.add(p);
  return p;
}

/**
 * SIGTERM to the process group, SIGKILL after `graceMs`. Resolves once the leader has exited, with
 * the milliseconds it took and whether SIGKILL was needed.
 */
export async function stopProc(p: Proc, graceMs = 3000): Promise<{ ms: number; killed: boolean }> {
  if (!p.alive) return { ms: 0, killed: false };
  const t0 = performance.now();
  let killed = false;
  signalGroup(p.pid, 'SIGTERM');
  const t = setTimeout(() => {
    killed = true;
    signalGroup(p.pid, 'SIGKILL');
  }, graceMs);
  await p.exited;
  clearTimeout(t);
  return { ms: performance.now() - t0, killed };
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** Synchronous last-resort cleanup (exit handlers). */
export function killAllSync(): void {
  for (const p of live) signalGroup(p.pid, 'SIGKILL');
  live.clear();
}

export function liveCount(): number {
  return live.size;
}

let handlersInstalled = false;
export function installCleanupHandlers(log: (s: string) => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      log(`\n${sig}: stopping ${live.size} child process group(s)`);
      killAllSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  process.on('uncaughtException', (e) => {
    log(`uncaught exception: ${e.stack ?? String(e)}`);
    killAllSync();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    log(`unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    killAllSync();
    process.exit(1);
  });
}

// ---------------------------------------------------------------------------------------------
// /proc accounting

export const CLK_TCK: number = (() => {
  try {
    const v = Number.parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), 10);
    return Number.isFinite(v) && v > 0 ? v : 100;
  } catch {
    return 100;
  }
})();

type StatFields = { ppid: number; pgrp: number; ticks: number };

function readStat(pid: number): StatFields | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3]
  const ppid = Number(rest[1]);
  const pgrp = Number(rest[2]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { ppid, pgrp, ticks: utime + stime };
}

/** The pid and all of its descendants that are alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    const c = e.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(e);
    const st = readStat(pid);
    if (st === null) continue;
    const list = children.get(st.ppid);
    if (list === undefined) children.set(st.ppid, [pid]);
    else list.push(pid);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop() as number;
    if (!existsSync(`/proc/${pid}`)) continue;
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

export type CpuSnap = { readonly at: bigint; readonly ticks: Map<number, number>; readonly runNs: Map<number, number> };

/** utime+stime (all threads, live and exited) of each pid, plus the per-thread schedstat sum. */
export function cpuSnap(pids: readonly number[]): CpuSnap {
  const ticks = new Map<number, number>();
  const runNs = new Map<number, number>();
  for (const pid of pids) {
    const st = readStat(pid);
    if (st !== null) ticks.set(pid, st.ticks);
    let ns = 0;
    try {
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        try {
          ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
        } catch {
          /* thread exited */
        }
      }
      runNs.set(pid, ns);
    } catch {
      /* gone */
    }
  }
  return { at: process.hrtime.bigint(), ticks, runNs };
}

export type CpuDelta = { readonly cpuSec: number; readonly wallSec: number; readonly schedSec: number };

/** CPU seconds used between two snapshots, summed over the pids present in both. */
export function cpuDelta(a: CpuSnap, b: CpuSnap): CpuDelta {
  let dt = 0;
  for (const [pid, t1] of b.ticks) {
    const t0 = a.ticks.get(pid);
    if (t0 !== undefined) dt += t1 - t0;
  }
  let dns = 0;
  for (const [pid, n1] of b.runNs) {
    const n0 = a.runNs.get(pid);
    if (n0 !== undefined) dns += n1 - n0;
  }
  return { cpuSec: dt / CLK_TCK, wallSec: Number(b.at - a.at) / 1e9, schedSec: dns / 1e9 };
}

/** Per-CPU busy ticks (user+nice+system+irq+softirq+steal) and steal from /proc/stat. */
export function cpuBusy(): Map<number, { busy: number; steal: number; total: number }> {
  const out = new Map<number, { busy: number; steal: number; total: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const f = (m[2] as string).split(/\s+/).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    out.set(Number(m[1]), {
      busy: user + nice + system + irq + softirq + steal,
      steal,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
    });
  }
  return out;
}

/** VmRSS and VmHWM in kB of one pid, or null when it is gone. */
export function memKb(pid: number): { rss: number; hwm: number } | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const rss = /VmRSS:\s+(\d+)/.exec(s);
  const hwm = /VmHWM:\s+(\d+)/.exec(s);
  return { rss: rss !== null ? Number(rss[1]) : 0, hwm: hwm !== null ? Number(hwm[1]) : 0 };
}

/** Checks every thread of every pid is allowed only on `cpu`. Returns the offenders. */
export function checkPinned(pids: readonly number[], cpu: number): string[] {
  const bad: string[] = [];
  for (const pid of pids) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        const m = /Cpus_allowed_list:\s+(\S+)/.exec(s);
        if (m !== null && m[1] !== String(cpu)) bad.push(`${pid}/${t}:${m[1]}`);
      } catch {
        /* thread gone */
      }
    }
  }
  return bad;
}

/** TcpExt ListenOverflows / ListenDrops counters (system-wide). */
export function listenCounters(): { overflows: number; drops: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const h = lines[i] as string;
    if (!h.startsWith('TcpExt:')) continue;
    const names = h.split(' ');
    const vals = (lines[i + 1] as string).split(' ');
    const get = (n: string): number => {
      const k = names.indexOf(n);
      return k >= 0 ? Number(vals[k]) : 0;
    };
    return { overflows: get('ListenOverflows'), drops: get('ListenDrops') };
  }
  return { overflows: 0, drops: 0 };
}

/** Resolves an executable on PATH plus the sbin directories (nginx lives in /usr/sbin). */
export function which(cmd: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (d === '') continue;
    const p = join(d, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** Pins this process (all its threads) to `cpu`. */
export function pinSelf(cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
}

export function tail(file: string | null, bytes = 2000): string {
  if (file === null) return '';
  try {
    const s = readFileSync(file, 'utf8');
    return s.slice(-bytes);
  } catch {
    return '';
  }
}
