// Every metric the gateway exports, in one place (SPEC §8 names are contract).
// The hot path only touches plain numbers in cells resolved once per (app,
// cluster[, status, flag]): a request adds to a number and files a latency in
// a bucket array, with no label hashing and no allocation. The per-request
// counters (requests, upstream attempts) are prom-client Counters whose
// `collect` adds what the cells gathered since the last scrape; the two
// latency histograms are PlainHistograms, which render exactly what a
// prom-client Histogram would (src/metrics/instruments.test.ts compares them).
// Gauges are computed at scrape time from live state through `collect` callbacks.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export interface GaugeSources {
  /** Called at scrape time; each yields label values and a number. */
  inFlight(): Iterable<[app: string, cluster: string, value: number]>;
  queueDepth(): Iterable<[app: string, cluster: string, value: number]>;
  capacity(): Iterable<[app: string, cluster: string, value: number]>;
  trafficWeight(): Iterable<[app: string, cluster: string, value: number]>;
  endpointHealthy(): Iterable<[cluster: string, endpoint: string, value: number]>;
  openStreams(): Iterable<[cluster: string, value: number]>;
  dashboardReachable(): Iterable<[cluster: string, value: number]>;
  snapshotVersion(): number;
  /** Kubernetes mode: 1 when the app's rollout policy can finish before KubeRay deletes the old cluster. */
  rolloutFitsDeletionDelay?(): Iterable<[rayservice: string, app: string, value: number]>;
  /** Kubernetes mode: 1 while every watch is connected, null in file mode. */
  kubernetesConnected?(): number | null;
  /** Several replicas: [is this replica the leader (1/0), live replicas, shared state refused (1/0)], or null. */
  replicas?(): { leader: number; live: number; sharedStateInvalid: number } | null;
}

/**
 * What a data-plane worker thread counted since its last report, as plain data
 * (structured-cloneable): the main thread adds it to its own instruments, so
 * one /metrics covers every thread (docs/workers.md).
 */
export interface MetricDeltas {
  readonly requests: ReadonlyArray<readonly [Readonly<Record<string, string>>, number]>;
  readonly attempts: ReadonlyArray<readonly [Readonly<Record<string, string>>, number]>;
  readonly duration: ReadonlyArray<HistogramDelta>;
  readonly ttfb: ReadonlyArray<HistogramDelta>;
  /** Counters the data plane increments through prom-client: [metric name, labels, increment]. */
  readonly counters: ReadonlyArray<readonly [string, Readonly<Record<string, string | number>>, number]>;
}

/** One label set of a PlainHistogram: label values in labelNames order, bucket counts, sum, count. */
export type HistogramDelta = readonly [readonly string[], readonly number[], number, number];

export class Instruments {
  readonly registry = new Registry();
  readonly requests: Counter<'app' | 'cluster' | 'code' | 'flag'>;
  readonly duration: PlainHistogram;
  readonly ttfb: PlainHistogram;
  readonly rejections: Counter<'app' | 'cluster' | 'reason'>;
  readonly upstreamAttempts: Counter<'cluster' | 'outcome'>;
  readonly retries: Counter<'cluster' | 'reason'>;
  readonly configReloads: Counter<'result'>;
  readonly rolloutSteps: Counter<'app' | 'cluster'>;
  readonly rolloutOutcomes: Counter<'app' | 'outcome'>;
  readonly connectionsDropped: Counter;
  readonly stateWriteFailures: Counter<'source'>;
  #handles = new Map<string, AppClusterHandles>();
  readonly #requestCells = new Map<string, CountCell>();
  readonly #attemptCells = new Map<string, CountCell>();

  constructor(sources: GaugeSources, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const requestCells = this.#requestCells;
    this.requests = new Counter({
      name: 'serve_gateway_requests_total',
      help: 'Requests finished, by app, cluster, HTTP status and gateway flag ("" when proxied normally).',
      labelNames: ['app', 'cluster', 'code', 'flag'],
      registers,
      collect() {
        flushCells(this, requestCells);
      },
    });
    this.duration = new PlainHistogram(
      'serve_gateway_request_duration_seconds',
      'Time from request received to response finished (streams included).',
      ['app', 'cluster'],
      LATENCY_BUCKETS,
    );
    this.registry.registerMetric(this.duration as never);
    this.ttfb = new PlainHistogram(
      'serve_gateway_time_to_first_byte_seconds',
      'Time from request received to upstream response headers (queueing included).',
      ['app', 'cluster'],
      LATENCY_BUCKETS,
    );
    this.registry.registerMetric(this.ttfb as never);
    this.rejections = new Counter({
      name: 'serve_gateway_admission_rejections_total',
      help: 'Requests shed by admission: queue_full or queue_timeout.',
      labelNames: ['app', 'cluster', 'reason'],
      registers,
    });
    const attemptCells = this.#attemptCells;
    this.upstreamAttempts = new Counter({
      name: 'serve_gateway_upstream_attempts_total',
      help: 'Upstream tries by outcome (ok, connect, stale_connection, backpressure, reset, timeout).',
      labelNames: ['cluster', 'outcome'],
      registers,
      collect() {
        flushCells(this, attemptCells);
      },
    });
    this.retries = new Counter({
      name: 'serve_gateway_retries_total',
      help: 'Retries of requests that never reached an application.',
      labelNames: ['cluster', 'reason'],
      registers,
    });
    this.configReloads = new Counter({
      name: 'serve_gateway_config_reloads_total',
      help: 'Config reloads by result (success, failure).',
      labelNames: ['result'],
      registers,
    });
    this.rolloutSteps = new Counter({
      name: 'serve_gateway_rollout_steps_total',
      help: 'Progressive rollout steps applied, by app and target cluster.',
      labelNames: ['app', 'cluster'],
      registers,
    });
    this.rolloutOutcomes = new Counter({
      name: 'serve_gateway_rollout_outcomes_total',
      help: 'Finished rollouts by outcome (succeeded, rolled_back, paused_on_failure, promoted, aborted).',
      labelNames: ['app', 'outcome'],
      registers,
    });
    this.connectionsDropped = new Counter({
      name: 'serve_gateway_connections_dropped_total',
      help: 'Client connections closed on accept because server.max_connections were open.',
      registers,
    });
    this.stateWriteFailures = new Counter({
      name: 'serve_gateway_state_write_failures_total',
      help: 'Traffic changes not applied because state_dir could not be written, by source (api, driver).',
      labelNames: ['source'],
      registers,
    });
    gauge3(registers, 'serve_gateway_in_flight', 'Requests admitted and not yet finished.', ['app', 'cluster'], () => sources.inFlight());
    gauge3(registers, 'serve_gateway_queue_depth', 'Requests waiting in the admission queue.', ['app', 'cluster'], () => sources.queueDepth());
    gauge3(registers, 'serve_gateway_capacity', 'Admission limit: max_ongoing_requests x running ingress replicas / gateway replicas.', ['app', 'cluster'], () => sources.capacity());
    gauge3(registers, 'serve_gateway_traffic_weight', 'Traffic weight (0-100) of each cluster for each app.', ['app', 'cluster'], () => sources.trafficWeight());
    gauge3(registers, 'serve_gateway_endpoint_healthy', '1 when the endpoint takes new requests (probe ok, not ejected).', ['cluster', 'endpoint'], () => sources.endpointHealthy());
    new Gauge({
      name: 'serve_gateway_open_streams',
      help: 'Upstream responses currently being streamed, per cluster.',
      labelNames: ['cluster'],
      registers,
      collect() {
        this.reset();
        for (const [c, v] of sources.openStreams()) this.set({ cluster: c }, v);
      },
    });
    new Gauge({
      name: 'serve_gateway_dashboard_reachable',
      help: '1 when the last poll of the cluster dashboard succeeded.',
      labelNames: ['cluster'],
      registers,
      collect() {
        this.reset();
        for (const [c, v] of sources.dashboardReachable()) this.set({ cluster: c }, v);
      },
    });
    new Gauge({
      name: 'serve_gateway_snapshot_version',
      help: 'Version of the routing snapshot in use.',
      registers,
      collect() {
        this.set(sources.snapshotVersion());
      },
    });
    gauge3(
      registers,
      'serve_gateway_rollout_fits_deletion_delay',
      'Kubernetes mode: 1 when the app\'s rollout policy (steps x interval) can finish within its RayService\'s rayClusterDeletionDelaySeconds.',
      ['rayservice', 'app'],
      () => sources.rolloutFitsDeletionDelay?.() ?? [],
    );
    new Gauge({
      name: 'serve_gateway_kubernetes_connected',
      help: 'Kubernetes mode: 1 while the RayService and pod watches are connected; 0 while the gateway serves from its last known state.',
      registers,
      collect() {
        this.reset();
        const v = sources.kubernetesConnected?.() ?? null;
        if (v !== null) this.set(v);
      },
    });
    // prom-client's own names start with process_ or nodejs_: serve_gateway_process_cpu_seconds_total,
    // serve_gateway_nodejs_eventloop_lag_seconds (docs/metrics.md).
    const replicaGauge = (name: string, help: string, pick: (r: { leader: number; live: number; sharedStateInvalid: number }) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.reset();
          const r = sources.replicas?.() ?? null;
          if (r !== null) this.set(pick(r));
        },
      });
    };
    replicaGauge('serve_gateway_leader', 'Kubernetes mode with leader_lease: 1 on the replica that holds the leader Lease (it drives rollouts), else 0.', (r) => r.leader);
    replicaGauge('serve_gateway_live_replicas', 'Kubernetes mode with leader_lease: live gateway replicas (member Leases renewed within lease_duration); each app\'s capacity is divided by it.', (r) => r.live);
    replicaGauge('serve_gateway_shared_state_invalid', 'Kubernetes mode with state_configmap: 1 while the state ConfigMap holds something that does not parse (a hand edit); the last good state serves.', (r) => r.sharedStateInvalid);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'serve_gateway_' });
  }

  /** A worker thread: what was counted since the last call, and the counters set back to zero. */
  async takeDeltas(): Promise<MetricDeltas> {
    const take = (cells: Map<string, CountCell>) => {
      const out: Array<[Record<string, string>, number]> = [];
      for (const c of cells.values()) {
        if (c.n === 0) continue;
        out.push([c.labels as Record<string, string>, c.n]);
        c.n = 0;
      }
      return out;
    };
    const counters: Array<[string, Record<string, string | number>, number]> = [];
    // upstreamAttempts: its "ok" series is in cells (taken below), failures go through prom-client.
    for (const m of [this.rejections, this.retries, this.connectionsDropped, this.upstreamAttempts] as Counter<string>[]) {
      const data = await m.get();
      m.reset();
      const name = (m as unknown as { name: string }).name;
      for (const v of data.values) if (v.value > 0) counters.push([name, v.labels as Record<string, string | number>, v.value]);
    }
    return { requests: take(this.#requestCells), attempts: take(this.#attemptCells), duration: this.duration.drain(), ttfb: this.ttfb.drain(), counters };
  }

  /** The main thread: adds what a worker thread counted. */
  addDeltas(d: MetricDeltas): void {
    for (const [l, n] of d.requests) this.requestCell(l['app']!, l['cluster']!, Number(l['code']), l['flag']!).n += n;
    for (const [l, n] of d.attempts) this.attemptCell(l['cluster']!, l['outcome']!).n += n;
    for (const h of d.duration) this.duration.add(h);
    for (const h of d.ttfb) this.ttfb.add(h);
    const byName = new Map<string, Counter<string>>([
      ['serve_gateway_admission_rejections_total', this.rejections],
      ['serve_gateway_retries_total', this.retries],
      ['serve_gateway_connections_dropped_total', this.connectionsDropped],
      ['serve_gateway_upstream_attempts_total', this.upstreamAttempts],
    ]);
    for (const [name, labels, v] of d.counters) byName.get(name)?.inc(labels, v);
  }

  /** The cell that counts serve_gateway_requests_total{app, cluster, code, flag}. */
  requestCell(app: string, cluster: string, code: number, flag: string): CountCell {
    const key = `${app}\u0000${cluster}\u0000${code}\u0000${flag}`;
    let c = this.#requestCells.get(key);
    if (c === undefined) {
      c = new CountCell({ app, cluster, code: String(code), flag });
      this.#requestCells.set(key, c);
    }
    return c;
  }

  /** The cell that counts serve_gateway_upstream_attempts_total{cluster, outcome}. */
  attemptCell(cluster: string, outcome: string): CountCell {
    const key = `${cluster}\u0000${outcome}`;
    let c = this.#attemptCells.get(key);
    if (c === undefined) {
      c = new CountCell({ cluster, outcome });
      this.#attemptCells.set(key, c);
    }
    return c;
  }

  /** Label handles for one (app, cluster), created once and reused by every request. */
  handles(app: string, cluster: string): AppClusterHandles {
    const key = `${app}\u0000${cluster}`;
    let h = this.#handles.get(key);
    if (h === undefined) {
      h = new AppClusterHandles(this, app, cluster);
      this.#handles.set(key, h);
    }
    return h;
  }
}

/** Handles for one (app, cluster): the cells a request of that pair counts into. */
export class AppClusterHandles {
  readonly duration: HistogramCell;
  readonly ttfb: HistogramCell;
  /** serve_gateway_upstream_attempts_total{cluster, outcome="ok"}. */
  readonly attemptOk: CountCell;
  readonly #instruments: Instruments;
  readonly #app: string;
  readonly #cluster: string;
  // The last status counted without a flag, and its cell (nearly every request is the same status).
  #lastStatus = -1;
  #lastCell: CountCell | null = null;
  readonly #byStatus = new Map<number, CountCell>();

  constructor(instruments: Instruments, app: string, cluster: string) {
    this.#instruments = instruments;
    this.#app = app;
    this.#cluster = cluster;
    this.duration = instruments.duration.cell([app, cluster]);
    this.ttfb = instruments.ttfb.cell([app, cluster]);
    this.attemptOk = instruments.attemptCell(cluster, 'ok');
  }

  countRequest(status: number, flag: string): void {
    if (flag === '') {
      if (status === this.#lastStatus) {
        this.#lastCell!.n++;
        return;
      }
      let c = this.#byStatus.get(status);
      if (c === undefined) {
        c = this.#instruments.requestCell(this.#app, this.#cluster, status, '');
        this.#byStatus.set(status, c);
      }
      this.#lastStatus = status;
      this.#lastCell = c;
      c.n++;
      return;
    }
    this.#instruments.requestCell(this.#app, this.#cluster, status, flag).n++;
  }
}

/** A count kept as a plain number; the metric's `collect` moves it into prom-client at scrape time. */
export class CountCell {
  n = 0;
  readonly labels: Readonly<Record<string, string>>;

  constructor(labels: Record<string, string>) {
    this.labels = labels;
  }
}

function flushCells(counter: Counter<string>, cells: Map<string, CountCell>): void {
  for (const c of cells.values()) {
    if (c.n === 0) continue;
    const n = c.n;
    c.n = 0;
    counter.inc(c.labels, n);
  }
}

/** One label set of a PlainHistogram: bucket counts, sum and count as plain numbers. */
export class HistogramCell {
  readonly labels: Readonly<Record<string, string>>;
  readonly #bounds: readonly number[];
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; above the last bound only in `count`. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(labels: Record<string, string>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Array<number>(bounds.length).fill(0);
  }

  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    const b = this.#bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  exemplar?: null;
}

/**
 * A histogram registered in a prom-client Registry that renders the same text
 * and JSON as prom-client's Histogram (series in creation order, cumulative
 * `le` buckets, +Inf, _sum, _count; a label set appears once observed), but is
 * fed through HistogramCells resolved once, so an observation costs a bucket
 * search and three additions.
 */
export class PlainHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[];
  readonly upperBounds: readonly number[];
  readonly #cells = new Map<string, HistogramCell>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.upperBounds = buckets;
  }

  /** The cell for these label values (in labelNames order), created on first use. */
  cell(values: readonly string[]): HistogramCell {
    const key = values.join('\u0000');
    let c = this.#cells.get(key);
    if (c === undefined) {
      const labels: Record<string, string> = {};
      for (let i = 0; i < this.labelNames.length; i++) labels[this.labelNames[i]!] = values[i]!;
      c = new HistogramCell(labels, this.upperBounds);
      this.#cells.set(key, c);
    }
    return c;
  }

  /** Every label set observed since the last drain, and its counts set back to zero. */
  drain(): HistogramDelta[] {
    const out: HistogramDelta[] = [];
    for (const c of this.#cells.values()) {
      if (c.count === 0) continue;
      out.push([this.labelNames.map((n) => c.labels[n]!), [...c.counts], c.sum, c.count]);
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
    return out;
  }

  /** Adds a drained label set (another thread's observations). */
  add([values, counts, sum, count]: HistogramDelta): void {
    const c = this.cell(values);
    for (let i = 0; i < c.counts.length && i < counts.length; i++) c.counts[i]! += counts[i]!;
    c.sum += sum;
    c.count += count;
  }

  reset(): void {
    for (const c of this.#cells.values()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }

  // What prom-client's Histogram#getForPromString returns (the registry's text format reads it).
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    const values: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const c of this.#cells.values()) {
      if (c.count === 0) continue;
      const shared = { ...c.labels };
      let acc = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        acc += c.counts[i]!;
        values.push({ labels: { le: this.upperBounds[i]! }, sharedLabels: shared, value: acc, metricName: bucketName, exemplar: null });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: shared, value: c.count, metricName: bucketName, exemplar: null });
      values.push({ labels: {}, sharedLabels: shared, value: c.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: {}, sharedLabels: shared, value: c.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  // What prom-client's Histogram#get returns (registry.getMetricsAsJSON): shared labels merged in.
  async get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return data;
  }
}

function gauge3(
  registers: Registry[],
  name: string,
  help: string,
  labelNames: [string, string],
  values: () => Iterable<[string, string, number]>,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const [a, b, v] of values()) this.set({ [labelNames[0]]: a, [labelNames[1]]: b }, v);
    },
  });
}
