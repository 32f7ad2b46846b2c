// What the gateway measured for one (app, cluster) during the current
// rollout step: the input to the rollout gates. No timers and no clock: the
// rollout driver resets the window when a step starts (stepRollout's
// `resetStats`), so the window is always "since the current step began".
//
// Memory is bounded and record() is O(1): latencies go into a fixed
// log-bucket histogram (16 buckets per doubling, about 4.4 % relative error;
// the reported p99 is the bucket's upper bound capped by the largest value
// seen, so it errs high, never low).

/** One finished request as the gate sees it. */
export interface StepOutcome {
  /**
   * The upstream failed the request: 5xx from Ray Serve, connect failure,
   * timeout, reset, retries exhausted. Not: 4xx, client disconnects, or the
   * gateway's own shedding (see `shed`).
   */
  readonly upstreamError: boolean;
  readonly latencyMs: number;
  /** Time to first response byte; null when no byte came (e.g. connect failure). */
  readonly ttfbMs: number | null;
  /**
   * The gateway rejected it before it reached the cluster (queue full /
   * queue timeout). Counted apart: neither a request nor an error for the gate.
   */
  readonly shed: boolean;
}

/** Anything else that wants every outcome (traffic-series.ts). */
export interface OutcomeSink {
  record(outcome: StepOutcome): void;
  /** Outcomes another data-plane thread recorded, as a window. */
  merge(window: StatsWindow): void;
}

export interface StatsSnapshot {
  /** Requests that reached (or tried to reach) the cluster; shed ones excluded. */
  readonly requests: number;
  readonly errors: number;
  /** errors / requests, 0 when there were no requests. */
  readonly errorRate: number;
  /** null when there were no requests. */
  readonly p99LatencyMs: number | null;
  /** null when no request produced a first byte. */
  readonly p99TtfbMs: number | null;
  /** Admission rejections by the gateway itself (information only). */
  readonly shed: number;
}

export const EMPTY_SNAPSHOT: StatsSnapshot = {
  requests: 0,
  errors: 0,
  errorRate: 0,
  p99LatencyMs: null,
  p99TtfbMs: null,
  shed: 0,
};

const BUCKETS_PER_DOUBLING = 16;
/** Bucket 0 holds [0, 1 ms]; the last bucket holds everything above 2^22 ms (~70 min). */
const DOUBLINGS = 22;
const BUCKET_COUNT = DOUBLINGS * BUCKETS_PER_DOUBLING + 2;

function bucketOf(ms: number): number {
  if (!(ms > 1)) return 0; // also NaN and negatives
  const i = Math.ceil(Math.log2(ms) * BUCKETS_PER_DOUBLING);
  return i < BUCKET_COUNT - 1 ? i : BUCKET_COUNT - 1;
}

function upperBoundOf(bucket: number): number {
  return bucket >= BUCKET_COUNT - 1 ? Infinity : 2 ** (bucket / BUCKETS_PER_DOUBLING);
}

/** A fixed-size latency histogram (also used by traffic-series.ts). */
export class LogHistogram {
  readonly #counts = new Uint32Array(BUCKET_COUNT);
  #count = 0;
  #max = 0;

  record(ms: number): void {
    this.#counts[bucketOf(ms)]! += 1;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** The q-quantile (0 < q <= 1), or null when empty. */
  quantile(q: number): number | null {
    if (this.#count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(upperBoundOf(i), this.#max);
    }
    return this.#max;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#max = 0;
  }

  /** The non-empty buckets and the largest value: what another replica needs to merge this histogram. */
  export(): SparseHistogram {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < BUCKET_COUNT; i++) if (this.#counts[i]! > 0) buckets.push([i, this.#counts[i]!]);
    return { buckets, max: this.#max };
  }

  /**
   * Adds an exported histogram. Bucket counts add exactly, so quantiles of the
   * sum are what one histogram fed every value would give (same bucket error).
   */
  merge(h: SparseHistogram): void {
    for (const [i, n] of h.buckets) {
      if (!Number.isInteger(i) || i < 0 || i >= BUCKET_COUNT || !(n > 0)) continue;
      this.#counts[i]! += n;
      this.#count += n;
    }
    if (h.max > this.#max) this.#max = h.max;
  }
}

/** A histogram as plain data: [bucket, count] pairs and the largest value seen. */
export interface SparseHistogram {
  readonly buckets: ReadonlyArray<readonly [number, number]>;
  readonly max: number;
}

/** A step's observation window as numbers that add up across gateway replicas. */
export interface StatsWindow {
  readonly requests: number;
  readonly errors: number;
  readonly shed: number;
  readonly latency: SparseHistogram;
  readonly ttfb: SparseHistogram;
}

/**
 * What the gates judge when several replicas measured one step: counts add,
 * histograms add bucket by bucket, and p99 is read from the summed buckets.
 * That is exactly the p99 of one histogram fed every request of every
 * replica: the same error as one replica's (the bucket's upper bound, at most
 * about 4.4 % high, capped by the largest value seen; never low).
 */
export function mergeWindows(windows: readonly StatsWindow[]): StatsSnapshot {
  let requests = 0;
  let errors = 0;
  let shed = 0;
  const latency = new LogHistogram();
  const ttfb = new LogHistogram();
  for (const w of windows) {
    requests += w.requests;
    errors += w.errors;
    shed += w.shed;
    latency.merge(w.latency);
    ttfb.merge(w.ttfb);
  }
  return {
    requests,
    errors,
    errorRate: requests === 0 ? 0 : errors / requests,
    p99LatencyMs: latency.quantile(0.99),
    p99TtfbMs: ttfb.quantile(0.99),
    shed,
  };
}

/** The observation window for one (app, cluster). */
export class StepStats {
  /** Also fed every outcome: the cluster's time series for the dashboard (or null). */
  readonly #also: OutcomeSink | null;
  #requests = 0;
  #errors = 0;
  #shed = 0;
  readonly #latency = new LogHistogram();
  readonly #ttfb = new LogHistogram();

  constructor(also: OutcomeSink | null = null) {
    this.#also = also;
  }

  record(outcome: StepOutcome): void {
    this.#also?.record(outcome);
    if (outcome.shed) {
      this.#shed++;
      return;
    }
    this.#requests++;
    if (outcome.upstreamError) this.#errors++;
    this.#latency.record(outcome.latencyMs);
    if (outcome.ttfbMs !== null) this.#ttfb.record(outcome.ttfbMs);
  }

  snapshot(): StatsSnapshot {
    return {
      requests: this.#requests,
      errors: this.#errors,
      errorRate: this.#requests === 0 ? 0 : this.#errors / this.#requests,
      p99LatencyMs: this.#latency.quantile(0.99),
      p99TtfbMs: this.#ttfb.quantile(0.99),
      shed: this.#shed,
    };
  }

  reset(): void {
    this.#requests = 0;
    this.#errors = 0;
    this.#shed = 0;
    this.#latency.reset();
    this.#ttfb.reset();
  }

  /** Adds what another data-plane thread recorded (its window since its last report). */
  merge(w: StatsWindow): void {
    this.#also?.merge(w);
    this.#requests += w.requests;
    this.#errors += w.errors;
    this.#shed += w.shed;
    this.#latency.merge(w.latency);
    this.#ttfb.merge(w.ttfb);
  }

  /** True when nothing was recorded since the last reset. */
  get empty(): boolean {
    return this.#requests === 0 && this.#shed === 0;
  }

  /** The window as mergeable numbers (mergeWindows). */
  window(): StatsWindow {
    return { requests: this.#requests, errors: this.#errors, shed: this.#shed, latency: this.#latency.export(), ttfb: this.#ttfb.export() };
  }
}

export const EMPTY_WINDOW: StatsWindow = { requests: 0, errors: 0, shed: 0, latency: { buckets: [], max: 0 }, ttfb: { buckets: [], max: 0 } };

/**
 * StepStats per (app, cluster). `get` creates on first use; the data plane
 * may keep the returned object (it is never replaced, only reset).
 * Nested maps so a lookup allocates no key string.
 */
export class StepStatsRegistry {
  readonly #byApp = new Map<string, Map<string, StepStats>>();
  /** The sink for a cluster's outcomes besides the step window (or null). */
  readonly #sinkOf: (cluster: string) => OutcomeSink | null;

  constructor(sinkOf: (cluster: string) => OutcomeSink | null = () => null) {
    this.#sinkOf = sinkOf;
  }

  get(app: string, cluster: string): StepStats {
    let byCluster = this.#byApp.get(app);
    if (byCluster === undefined) {
      byCluster = new Map();
      this.#byApp.set(app, byCluster);
    }
    let stats = byCluster.get(cluster);
    if (stats === undefined) {
      stats = new StepStats(this.#sinkOf(cluster));
      byCluster.set(cluster, stats);
    }
    return stats;
  }

  /** The window so far, without creating an entry. Empty when never recorded. */
  snapshotFor(app: string, cluster: string): StatsSnapshot {
    return this.#byApp.get(app)?.get(cluster)?.snapshot() ?? EMPTY_SNAPSHOT;
  }

  /** The window so far as mergeable numbers. Empty when never recorded. */
  windowFor(app: string, cluster: string): StatsWindow {
    return this.#byApp.get(app)?.get(cluster)?.window() ?? EMPTY_WINDOW;
  }

  /** Every (app, cluster) recorded so far. */
  *entries(): Iterable<[app: string, cluster: string, stats: StepStats]> {
    for (const [app, byCluster] of this.#byApp) for (const [cluster, stats] of byCluster) yield [app, cluster, stats];
  }

  /** Starts a new window (call when stepRollout says `resetStats`). */
  resetFor(app: string, cluster: string): void {
    this.#byApp.get(app)?.get(cluster)?.reset();
  }
}
