// Admission counters across worker threads: what an acquire+release pair costs
// on a private cell, on a SharedArrayBuffer slot (alone, and with threads
// hammering the same slot), against a postMessage round trip (what a permit
// lease over message passing costs whenever the local lease runs out).
//   node bench/admission-contention.ts [--threads 4] [--runs 5]
// Every figure is the median of --runs runs, after a warm-up run.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../src/core/clock.ts';
import { Limiter, type Waiter } from '../src/admission/limiter.ts';
import { PermitTable, localCell, type PermitBuffers, type PermitCell } from '../src/admission/permits.ts';

const KEY = 'app\u0000blue';
const LIMIT = 64; // above the thread count: every acquire is granted, the cost is the counters'
const waiter: Waiter = { queueDeadlineMs: 0, queued: false, onAdmitted() {}, onQueueTimeout() {} };

/** ns per acquire+release pair, `pairs` of them back to back. */
function pairs(limiter: Limiter, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (limiter.acquire(waiter) !== 'granted') throw new Error('bench: not granted');
    limiter.release();
  }
  return Number(process.hrtime.bigint() - t0) / n;
}

const limiterOn = (cell: PermitCell) => new Limiter('app', 'blue', LIMIT, 1000, 60_000, systemClock, cell);

interface HammerData {
  mode: 'hammer';
  buffers: PermitBuffers;
  worker: number;
  ctl: SharedArrayBuffer;
}
interface EchoData {
  mode: 'echo';
}

if (!isMainThread) {
  const data = workerData as HammerData | EchoData;
  const port = parentPort!;
  if (data.mode === 'echo') {
    port.on('message', (m: number) => port.postMessage(m));
  } else {
    const t = new PermitTable(data.buffers, data.worker);
    t.assign([[KEY, 0]]);
    const limiter = limiterOn(t.cell(KEY)!);
    const ctl = new Int32Array(data.ctl); // [go generation, threads ready]
    port.on('message', (m: { n: number; gen: number }) => {
      Atomics.add(ctl, 1, 1);
      Atomics.notify(ctl, 1);
      while (Atomics.load(ctl, 0) < m.gen) Atomics.wait(ctl, 0, m.gen - 1, 1000);
      const start = process.hrtime.bigint();
      const ns = pairs(limiter, m.n);
      port.postMessage({ ns, start, end: process.hrtime.bigint() });
    });
  }
} else {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(name);
    return i === -1 ? dflt : Number(process.argv[i + 1]);
  };
  const runs = Math.max(5, arg('--runs', 5));
  const threadCounts = [...new Set([2, arg('--threads', 2)])].sort((a, b) => a - b);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const repeat = async (f: () => number | Promise<number>) => {
    await f(); // warm-up
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) xs.push(await f());
    return median(xs);
  };
  const rows: Array<[string, string, string]> = [];
  const fmt = (x: number) => x.toFixed(1);

  const N = 2_000_000;
  const local = limiterOn(localCell());
  const localNs = await repeat(() => pairs(local, N));
  rows.push(['(i) Limiter, local cell, 1 thread', `${fmt(localNs)} ns/pair`, `${(1e3 / localNs).toFixed(1)} M pairs/s`]);

  const table = PermitTable.create(1 + Math.max(...threadCounts), 4);
  table.slotOf(KEY);
  const shared = limiterOn(table.cell(KEY)!);
  const sharedNs = await repeat(() => pairs(shared, N));
  rows.push(['(ii) Limiter, shared slot, 1 thread', `${fmt(sharedNs)} ns/pair`, `${(1e3 / sharedNs).toFixed(1)} M pairs/s`]);

  const contended: Array<{ threads: number; ns: number }> = [];
  for (const k of threadCounts) {
    const ctl = new Int32Array(new SharedArrayBuffer(8));
    const ws = Array.from({ length: k }, (_, i) => {
      const data: HammerData = { mode: 'hammer', buffers: table.buffers, worker: i + 1, ctl: ctl.buffer as SharedArrayBuffer };
      return new Worker(new URL(import.meta.url), { workerData: data });
    });
    const M = 1_000_000;
    let gen = 0;
    const perThread: number[] = [];
    const total = await repeat(async () => {
      gen++;
      Atomics.store(ctl, 1, 0);
      const done = ws.map((w) => new Promise<{ ns: number; start: bigint; end: bigint }>((r) => w.once('message', r)));
      for (const w of ws) w.postMessage({ n: M, gen });
      while (Atomics.load(ctl, 1) < k) await new Promise((r) => setTimeout(r, 1));
      Atomics.store(ctl, 0, gen);
      Atomics.notify(ctl, 0);
      const rs = await Promise.all(done);
      perThread.push(rs.reduce((s, r) => s + r.ns, 0) / k);
      const start = rs.reduce((a, r) => (r.start < a ? r.start : a), rs[0]!.start);
      const end = rs.reduce((a, r) => (r.end > a ? r.end : a), rs[0]!.end);
      return (k * M * 1e9) / Number(end - start);
    });
    await Promise.all(ws.map((w) => w.terminate()));
    const ns = median(perThread.slice(1));
    contended.push({ threads: k, ns });
    rows.push([`(iii) Limiter, shared slot, ${k} threads at once`, `${fmt(ns)} ns/pair/thread`, `${(total / 1e6).toFixed(1)} M pairs/s total`]);
  }

  const echo = new Worker(new URL(import.meta.url), { workerData: { mode: 'echo' } satisfies EchoData });
  const R = 20_000;
  let pong: (i: number) => void = () => {};
  echo.on('message', (i: number) => pong(i));
  const rtt = await repeat(async () => {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      pong = (i) => (i + 1 < R ? echo.postMessage(i + 1) : resolve());
      echo.postMessage(0);
    });
    return Number(process.hrtime.bigint() - t0) / R;
  });
  await echo.terminate();
  rows.push(['(iv) postMessage round trip (lease request)', `${fmt(rtt)} ns/round trip`, `${(1e3 / rtt).toFixed(3)} M round trips/s`]);

  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  console.log(`admission counters: median of ${runs} runs after a warm-up; ${N} pairs per 1-thread run, 1000000 per thread contended, ${R} round trips`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`);
  console.log();
  console.log(`(i)   the single-worker baseline: a private Int32Array, plain loads and stores (no atomics with one thread).`);
  const d = sharedNs - localNs;
  const dText = Math.abs(d) < 0.1 * localNs ? `no measurable cost (${d >= 0 ? '+' : ''}${fmt(d)} ns/pair, within noise)` : `${d >= 0 ? '+' : ''}${fmt(d)} ns/pair vs (i)`;
  console.log(`(ii)  a SharedArrayBuffer slot nobody else touches: ${dText}: Atomics.load/compareExchange/sub and the per-thread held counts, uncontended.`);
  for (const c of contended) {
    const over = c.threads > availableParallelism() ? `; ${c.threads} threads on ${availableParallelism()} cores, so partly time-slicing` : '';
    console.log(`(iii) ${c.threads} threads on one slot: ${(c.ns / sharedNs).toFixed(1)}x the uncontended pair (the slot's cache line bounces between cores, CAS retries${over}).`);
  }
  const x = (rtt / sharedNs).toFixed(0);
  console.log(`(iv)  a lease round trip is ${x}x a shared pair, paid (as latency of the request that waits) each time a local lease runs out: leases break even only past ~${x} acquires per lease.`);
}
