// Every metric the gateway exports, in one place (SPEC §8 names are contract).
// The hot path only touches label handles cached per (app, cluster); gauges
// are computed at scrape time from live state through `collect` callbacks.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

export class Instruments {
  readonly registry = new Registry();
  readonly requests: Counter<'app' | 'cluster' | 'code' | 'flag'>;
  readonly duration: Histogram<'app' | 'cluster'>;
  readonly ttfb: Histogram<'app' | 'cluster'>;
  readonly rejections: Counter<'app' | 'cluster' | 'reason'>;
  readonly upstreamAttempts: Counter<'cluster' | 'outcome'>;
  readonly retries: Counter<'cluster' | 'reason'>;
  readonly configReloads: Counter<'result'>;
  readonly rolloutSteps: Counter<'app' | 'cluster'>;
  readonly rolloutOutcomes: Counter<'app' | 'outcome'>;
  readonly connectionsDropped: Counter;
  readonly stateWriteFailures: Counter<'source'>;
  #handles = new Map<string, AppClusterHandles>();

  constructor(sources: GaugeSources, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'serve_gateway_requests_total',
      help: 'Requests finished, by app, cluster, HTTP status and gateway flag ("" when proxied normally).',
      labelNames: ['app', 'cluster', 'code', 'flag'],
      registers,
    });
    this.duration = new Histogram({
      name: 'serve_gateway_request_duration_seconds',
      help: 'Time from request received to response finished (streams included).',
      labelNames: ['app', 'cluster'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.ttfb = new Histogram({
      name: 'serve_gateway_time_to_first_byte_seconds',
      help: 'Time from request received to upstream response headers (queueing included).',
      labelNames: ['app', 'cluster'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.rejections = new Counter({
      name: 'serve_gateway_admission_rejections_total',
      help: 'Requests shed by admission: queue_full or queue_timeout.',
      labelNames: ['app', 'cluster', 'reason'],
      registers,
    });
    this.upstreamAttempts = new Counter({
      name: 'serve_gateway_upstream_attempts_total',
      help: 'Upstream tries by outcome (ok, connect, stale_connection, backpressure, reset, timeout).',
      labelNames: ['cluster', 'outcome'],
      registers,
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

export class AppClusterHandles {
  readonly duration: { observe(v: number): void };
  readonly ttfb: { observe(v: number): void };
  readonly #instruments: Instruments;
  readonly #app: string;
  readonly #cluster: string;
  readonly #byStatus = new Map<number, { inc(): void }>();
  readonly #byStatusFlag = new Map<string, { inc(): void }>();

  constructor(instruments: Instruments, app: string, cluster: string) {
    this.#instruments = instruments;
    this.#app = app;
    this.#cluster = cluster;
    this.duration = instruments.duration.labels(app, cluster);
    this.ttfb = instruments.ttfb.labels(app, cluster);
  }

  countRequest(status: number, flag: string): void {
    if (flag === '') {
      let c = this.#byStatus.get(status);
      if (c === undefined) {
        c = this.#instruments.requests.labels(this.#app, this.#cluster, String(status), '');
        this.#byStatus.set(status, c);
      }
      c.inc();
      return;
    }
    const key = `${status}${flag}`;
    let c = this.#byStatusFlag.get(key);
    if (c === undefined) {
      c = this.#instruments.requests.labels(this.#app, this.#cluster, String(status), flag);
      this.#byStatusFlag.set(key, c);
    }
    c.inc();
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
