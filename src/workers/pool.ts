// The main thread's side of `workers` > 1: starts workers-1 data-plane
// threads (the main thread is the first data plane), mirrors every input of
// the main reconciler to them, pushes the probers' verdicts, merges what they
// report (metrics into the one /metrics, step windows into the rollout gates,
// load into the status), drains them on SIGTERM and replaces one that dies,
// giving back the admission permits it held (docs/workers.md).
import { Worker } from 'node:worker_threads';
import type { PermitTable } from '../admission/permits.ts';
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { Reconciler, ReconcilerInput } from '../control/reconciler.ts';
import type { Instruments } from '../metrics/instruments.ts';
import type { FromWorker, HealthView, ToWorker, WorkerInit, WorkerReport } from './messages.ts';

const THREAD_URL = new URL('./thread.ts', import.meta.url);
/** How often a worker reports unasked, and the main thread pushes health. */
export const REPORT_MS = 250;
/** A collect (before /metrics or the status) waits this long for the slowest worker. */
const COLLECT_TIMEOUT_MS = 1000;
/** A dead worker is replaced after 1 s, doubling while replacements die before they listen, up to 30 s. */
const RESTART_DELAY_MS = 1000;
const RESTART_MAX_MS = 30_000;

export interface WorkerPoolOptions {
  /** All data-plane threads, the main thread included. */
  readonly count: number;
  readonly reconciler: Reconciler;
  readonly metrics: Instruments;
  readonly permits: PermitTable;
  readonly clock: Clock;
  readonly log: Logger;
  readonly host: string;
  readonly port: number;
  readonly accessLog: 'stdout' | 'off';
  readonly logLevel: string;
  /** The thread's entry module (default ./thread.ts; tests start one that crashes). */
  readonly threadUrl?: URL;
}

class Slot {
  readonly index: number;
  worker: Worker | null = null;
  ready = false;
  restarts = 0;
  /** Exits in a row without reaching ready (restart back-off). */
  failures = 0;
  slotsSent = 0;
  last: WorkerReport | null = null;
  drained: (() => void) | null = null;

  constructor(index: number) {
    this.index = index;
  }
}

export class WorkerPool {
  readonly #o: WorkerPoolOptions;
  readonly #slots: Slot[] = [];
  #stopping = false;
  /** start() finished: from then on a dead worker is replaced. */
  #started = false;
  #collectId = 0;
  readonly #waiting = new Map<number, { left: Set<number>; done: () => void }>();
  #healthTimer: TimerHandle | null = null;

  constructor(opts: WorkerPoolOptions) {
    this.#o = opts;
    for (let i = 1; i < opts.count; i++) this.#slots.push(new Slot(i));
    opts.reconciler.onInput = (input) => this.#broadcastInput(input);
  }

  /** Starts every worker thread; resolves when all listen. */
  async start(): Promise<void> {
    await Promise.all(this.#slots.map((s) => this.#spawn(s)));
    this.#started = true;
    this.#scheduleHealth();
  }

  /** Fresh reports from every live worker (before /metrics and the status); at most COLLECT_TIMEOUT_MS. */
  refresh(): Promise<void> {
    const live = this.#slots.filter((s) => s.ready && s.worker !== null);
    if (live.length === 0) return Promise.resolve();
    const id = ++this.#collectId;
    return new Promise<void>((resolve) => {
      const timer = this.#o.clock.setTimeout(() => {
        this.#waiting.delete(id);
        resolve();
      }, COLLECT_TIMEOUT_MS);
      this.#waiting.set(id, {
        left: new Set(live.map((s) => s.index)),
        done: () => {
          this.#o.clock.clearTimeout(timer);
          this.#waiting.delete(id);
          resolve();
        },
      });
      for (const s of live) this.#send(s, { t: 'collect', id });
    });
  }

  /** The workers' in-flight requests and open streams to a cluster (last reports). */
  load(cluster: string): { inFlight: number; openStreams: number } {
    let inFlight = 0;
    let openStreams = 0;
    for (const s of this.#slots) {
      for (const [name, f, o] of s.last?.clusters ?? []) {
        if (name !== cluster) continue;
        inFlight += f;
        openStreams += o;
      }
    }
    return { inFlight, openStreams };
  }

  /** Shared admission slots assigned, of the table's size. */
  slots(): { used: number; total: number } {
    return { used: this.#o.permits.size, total: this.#o.permits.buffers.slots };
  }

  /** One line per worker thread for the status API. */
  status(): Array<{ index: number; running: boolean; restarts: number; requests_handled: number; active_requests: number; upgrades: number }> {
    return this.#slots.map((s) => ({
      index: s.index,
      running: s.ready && s.worker !== null,
      restarts: s.restarts,
      requests_handled: s.last?.handled ?? 0,
      active_requests: s.last?.activeRequests ?? 0,
      upgrades: s.last?.upgrades ?? 0,
    }));
  }

  /** SIGTERM: every worker drains as the main listener does; resolves when all are done (or gone). */
  async drain(drainDelayMs: number, gracePeriodMs: number): Promise<void> {
    this.#stopping = true;
    await Promise.all(
      this.#slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.worker === null) return resolve();
            s.drained = resolve;
            this.#send(s, { t: 'drain', drainDelayMs, gracePeriodMs });
          }),
      ),
    );
  }

  /** Stops every worker thread now. */
  async close(): Promise<void> {
    this.#stopping = true;
    if (this.#healthTimer !== null) this.#o.clock.clearTimeout(this.#healthTimer);
    this.#o.reconciler.onInput = null;
    await Promise.all(this.#slots.map((s) => s.worker?.terminate()));
  }

  #spawn(s: Slot): Promise<void> {
    const o = this.#o;
    const init: WorkerInit = {
      index: s.index,
      permits: o.permits.buffers,
      slots: o.permits.entries(),
      inputs: o.reconciler.inputs(),
      host: o.host,
      port: o.port,
      accessLog: o.accessLog,
      logLevel: o.logLevel,
      reportMs: REPORT_MS,
    };
    s.slotsSent = init.slots.length;
    s.ready = false;
    const w = new Worker(o.threadUrl ?? THREAD_URL, { workerData: init, name: `serve-gateway data plane ${s.index}` });
    s.worker = w;
    // The probers' verdicts so far, applied before its listener takes a connection.
    this.#send(s, { t: 'health', clusters: this.#health() });
    return new Promise<void>((resolve, reject) => {
      let started = false;
      let failure: Error | null = null;
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') {
          s.ready = true;
          started = true;
          s.failures = 0;
          resolve();
        } else if (m.t === 'report') this.#onReport(s, m.id, m.report);
        else if (m.t === 'drained') {
          s.drained?.();
          s.drained = null;
        }
      });
      w.on('error', (err) => {
        failure = err;
        o.log.error({ worker: s.index, err: err.message }, 'data-plane worker failed');
      });
      w.on('exit', (code) => {
        s.worker = null;
        s.ready = false;
        s.last = null;
        // What it held is given back; waiters in other threads take the permits.
        const freed = o.permits.releaseWorker(s.index);
        for (const [id, wait] of this.#waiting) {
          wait.left.delete(s.index);
          if (wait.left.size === 0) this.#waiting.get(id)?.done();
        }
        s.drained?.();
        s.drained = null;
        if (!started) reject(failure ?? new Error(`data-plane worker ${s.index} exited (code ${code}) before it listened`));
        // At start a failure fails the start (the caller closes the gateway); later, a dead thread is replaced.
        if (this.#stopping || !this.#started) return;
        s.failures++;
        const delayMs = Math.min(RESTART_MAX_MS, RESTART_DELAY_MS * 2 ** Math.min(10, s.failures - 1));
        o.log.error({ worker: s.index, code, permitsFreed: freed.permits, queuedFreed: freed.queued, restartInMs: delayMs }, 'data-plane worker exited; starting a new one');
        s.restarts++;
        const t = o.clock.setTimeout(() => {
          if (!this.#stopping) this.#spawn(s).catch((err: Error) => o.log.error({ worker: s.index, err: err.message }, 'data-plane worker did not start'));
        }, delayMs);
        t.unref?.();
      });
    });
  }

  #onReport(s: Slot, id: number | null, r: WorkerReport): void {
    s.last = r;
    this.#o.metrics.addDeltas(r.metrics);
    const stats = this.#o.reconciler.stats;
    for (const [app, cluster, w] of r.stats) stats.get(app, cluster).merge(w);
    if (id === null) return;
    const wait = this.#waiting.get(id);
    if (wait === undefined) return;
    wait.left.delete(s.index);
    if (wait.left.size === 0) wait.done();
  }

  #broadcastInput(input: ReconcilerInput): void {
    for (const s of this.#slots) {
      if (s.worker === null) continue;
      const slots = this.#o.permits.entries(s.slotsSent);
      s.slotsSent += slots.length;
      this.#send(s, { t: 'input', slots, input });
    }
  }

  /** Every REPORT_MS: the probers' verdicts to every worker. */
  #scheduleHealth(): void {
    this.#healthTimer = this.#o.clock.setTimeout(() => {
      const clusters = this.#health();
      for (const s of this.#slots) if (s.ready && s.worker !== null) this.#send(s, { t: 'health', clusters });
      this.#scheduleHealth();
    }, REPORT_MS);
    this.#healthTimer.unref?.();
  }

  #health(): HealthView[] {
    const clusters: HealthView[] = [];
    for (const c of this.#o.reconciler.clusters.values()) {
      clusters.push({ name: c.name, circuitOpen: c.circuitOpen, endpoints: c.endpoints.map((e) => [e.origin, e.health.probeOk, e.health.probeMessage, e.health.probeSeq] as const) });
    }
    return clusters;
  }

  #send(s: Slot, m: ToWorker): void {
    s.worker?.postMessage(m);
  }
}
