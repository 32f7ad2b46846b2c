// A data-plane worker thread (config `workers` > 1): its own reconciler, fed
// the main thread's inputs so it builds the same routing snapshot; its own
// pipeline, upstream pools and listener on the shared port; admission through
// the shared permit table. It reports what it counted (metrics, rollout-gate
// windows, load) to the main thread every `reportMs` and when asked, and
// drains on the main thread's word. It runs no control plane: no config file,
// no probes, no dashboard polls, no Kubernetes, no admin API.
import { pino } from 'pino';
import { PermitTable } from '../admission/permits.ts';
import { systemClock, type TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { Reconciler } from '../control/reconciler.ts';
import type { StatsWindow } from '../control/step-stats.ts';
import { recordProbe } from '../health/outlier.ts';
import { Instruments } from '../metrics/instruments.ts';
import { stdoutAccessLog, type AccessLog } from '../proxy/access-log.ts';
import { applyServerLimits, createDataServer, listenData, type DataServer } from '../proxy/data-server.ts';
import { RequestPipeline } from '../proxy/pipeline.ts';
import { UpgradeHandler } from '../proxy/upgrade.ts';
import type { FromWorker, HealthView, ToWorker, WorkerInit, WorkerReport } from './messages.ts';

const NO_GAUGES = {
  inFlight: () => [],
  queueDepth: () => [],
  capacity: () => [],
  trafficWeight: () => [],
  endpointHealthy: () => [],
  openStreams: () => [],
  dashboardReachable: () => [],
  snapshotVersion: () => 0,
};

export class DataPlane {
  readonly reconciler: Reconciler;
  readonly metrics = new Instruments(NO_GAUGES, { defaultMetrics: false });
  readonly proxy: RequestPipeline;
  readonly upgrades: UpgradeHandler;
  readonly server: DataServer;
  readonly permits: PermitTable;
  draining = false;
  readonly #init: WorkerInit;
  readonly #post: (m: FromWorker) => void;
  readonly #log: Logger;
  readonly #flushLog: () => void;
  #reportTimer: TimerHandle | null = null;
  #sweeper: TimerHandle | null = null;

  constructor(init: WorkerInit, post: (m: FromWorker) => void) {
    this.#init = init;
    this.#post = post;
    this.#log = pino({ name: 'serve-gateway', level: init.logLevel }).child({ worker: init.index }) as unknown as Logger;
    this.permits = new PermitTable(init.permits, init.index);
    this.permits.assign(init.slots);
    const first = init.inputs[0];
    if (first === undefined || first.kind !== 'config') throw new Error('a worker starts from the main thread config');
    this.reconciler = new Reconciler(first.config, systemClock, this.metrics, this.#log, this.permits);
    this.reconciler.onClustersRemoved = (removed) => {
      for (const c of removed) void c.close();
    };
    let accessLog: AccessLog;
    if (init.accessLog === 'stdout') {
      // As the main thread's: 64 KiB batches, flushed at least every second and at the end of the drain.
      const log = stdoutAccessLog();
      accessLog = log.accessLog;
      this.#flushLog = log.stop;
    } else {
      accessLog = { log() {} };
      this.#flushLog = () => {};
    }
    this.proxy = new RequestPipeline({
      store: this.reconciler.store,
      clock: systemClock,
      random: Math.random,
      metrics: this.metrics,
      accessLog,
      ready: () => !this.draining,
    });
    this.upgrades = new UpgradeHandler(this.proxy.deps);
    this.reconciler.restore(init.inputs);
    this.server = createDataServer(this.proxy, this.upgrades, this.metrics, this.reconciler.config);
  }

  async start(): Promise<void> {
    await listenData(this.server, this.#init.port, this.#init.host, true);
    this.#scheduleReport();
    this.#scheduleSweep();
    this.#post({ t: 'ready' });
  }

  onMessage(m: ToWorker): void {
    if (m.t === 'input') {
      this.permits.assign(m.slots);
      this.reconciler.apply(m.input);
      if (m.input.kind === 'config') applyServerLimits(this.server, m.input.config);
    } else if (m.t === 'health') this.#applyHealth(m.clusters);
    else if (m.t === 'collect') void this.#report(m.id);
    else if (m.t === 'drain') void this.#drain(m.drainDelayMs, m.gracePeriodMs);
  }

  /** The probers run in the main thread: each new probe result and the circuit, applied to this thread's endpoints. */
  #applyHealth(views: readonly HealthView[]): void {
    for (const v of views) {
      const c = this.reconciler.clusters.get(v.name);
      if (c === undefined) continue;
      c.circuitOpen = v.circuitOpen;
      for (const [origin, ok, message, seq] of v.endpoints) {
        const e = c.endpoints.find((x) => x.origin === origin);
        if (e === undefined || ok === null || e.health.probeSeq === seq) continue;
        // Each new probe, as the main thread recorded it (a success also ends a passive ejection).
        recordProbe(e.health, ok, message);
        e.health.probeSeq = seq;
      }
    }
  }

  async #report(id: number | null): Promise<void> {
    const stats: Array<[string, string, StatsWindow]> = [];
    for (const [app, cluster, s] of this.reconciler.stats.entries()) {
      if (s.empty) continue;
      stats.push([app, cluster, s.window()]);
      s.reset();
    }
    const clusters: Array<[string, number, number]> = [];
    for (const c of this.reconciler.clusters.values()) clusters.push([c.name, c.inFlight, c.openStreams]);
    const report: WorkerReport = {
      metrics: await this.metrics.takeDeltas(),
      stats,
      activeRequests: this.proxy.counters.activeRequests,
      handled: this.proxy.counters.handled,
      upgrades: this.upgrades.open,
      clusters,
    };
    this.#post({ t: 'report', id, report });
  }

  #scheduleReport(): void {
    this.#reportTimer = systemClock.setTimeout(() => {
      void this.#report(null).then(() => this.#scheduleReport());
    }, this.#init.reportMs);
    this.#reportTimer.unref?.();
  }

  /** Every few seconds: close idle upstream connections; all of them for drained clusters. */
  #scheduleSweep(): void {
    this.#sweeper = systemClock.setTimeout(() => {
      const now = systemClock.now();
      for (const c of this.reconciler.clusters.values()) c.closeIdle(now, c.drained);
      this.#scheduleSweep();
    }, 5000);
    this.#sweeper.unref?.();
  }

  /** The main thread's SIGTERM: the same drain as the main listener's (main.ts shutdown). */
  async #drain(drainDelayMs: number, gracePeriodMs: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    await new Promise((r) => setTimeout(r, drainDelayMs));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let grace: NodeJS.Timeout | null = null;
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        grace = setTimeout(() => {
          this.server.closeAllConnections();
          this.upgrades.closeAll();
          resolve();
        }, gracePeriodMs);
      }),
    ]);
    if (grace !== null) clearTimeout(grace);
    for (const l of this.reconciler.limiters.values()) l.close();
    if (this.#reportTimer !== null) systemClock.clearTimeout(this.#reportTimer);
    if (this.#sweeper !== null) systemClock.clearTimeout(this.#sweeper);
    this.#flushLog();
    await this.#report(null);
    await Promise.all([...this.reconciler.clusters.values()].map((c) => c.close()));
    this.#post({ t: 'drained' });
  }
}
