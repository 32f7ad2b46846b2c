// What each cluster served over the last minutes, for the dashboard's charts
// (request rate, error rate, p50/p99 latency and time to first byte): a
// bounded in-memory ring per cluster, so no Prometheus is needed to watch a
// rollout. No clock and no timer here: the data plane records into the open
// bucket (O(1), counters and a fixed histogram), and whoever owns the timer
// calls `close(nowWallMs)` every `bucketMs` to turn the open bucket into one
// point of the ring. Memory: `capacity` points of 8 numbers per cluster, plus
// two histograms per cluster for the open bucket.
import { LogHistogram, type StatsWindow, type StepOutcome } from './step-stats.ts';

/** One closed bucket of one cluster. */
export interface SeriesPoint {
  /** Wall-clock ms when the bucket closed. */
  readonly at: number;
  /** Length of the bucket (ms): rates are per second over it. */
  readonly spanMs: number;
  /** Requests that reached (or tried to reach) the cluster. */
  readonly requests: number;
  readonly errors: number;
  /** Shed by the gateway's admission (queue full / timeout). */
  readonly shed: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly ttfbP50Ms: number | null;
  readonly ttfbP99Ms: number | null;
}

/** Bucket length and ring size: 5 s × 180 = the last 15 minutes. */
export const SERIES_BUCKET_MS = 5000;
export const SERIES_CAPACITY = 180;

/** The ring of one cluster. */
export class ClusterSeries {
  readonly #points: SeriesPoint[] = [];
  readonly #capacity: number;
  #requests = 0;
  #errors = 0;
  #shed = 0;
  readonly #latency = new LogHistogram();
  readonly #ttfb = new LogHistogram();
  #openedAt: number | null = null;

  constructor(capacity = SERIES_CAPACITY) {
    this.#capacity = capacity;
  }

  record(outcome: StepOutcome): void {
    if (outcome.shed) {
      this.#shed++;
      return;
    }
    this.#requests++;
    if (outcome.upstreamError) this.#errors++;
    this.#latency.record(outcome.latencyMs);
    if (outcome.ttfbMs !== null) this.#ttfb.record(outcome.ttfbMs);
  }

  /** Adds outcomes another data-plane thread recorded into the open bucket. */
  merge(w: StatsWindow): void {
    this.#requests += w.requests;
    this.#errors += w.errors;
    this.#shed += w.shed;
    this.#latency.merge(w.latency);
    this.#ttfb.merge(w.ttfb);
  }

  /** Closes the open bucket as a point ending at `nowMs` (the first call only opens one). */
  close(nowMs: number, bucketMs: number): void {
    const opened = this.#openedAt;
    this.#openedAt = nowMs;
    if (opened === null) {
      if (this.#requests === 0 && this.#shed === 0) return;
    }
    const point: SeriesPoint = {
      at: nowMs,
      spanMs: opened === null ? bucketMs : Math.max(1, nowMs - opened),
      requests: this.#requests,
      errors: this.#errors,
      shed: this.#shed,
      p50Ms: this.#latency.quantile(0.5),
      p99Ms: this.#latency.quantile(0.99),
      ttfbP50Ms: this.#ttfb.quantile(0.5),
      ttfbP99Ms: this.#ttfb.quantile(0.99),
    };
    this.#points.push(point);
    if (this.#points.length > this.#capacity) this.#points.splice(0, this.#points.length - this.#capacity);
    this.#requests = 0;
    this.#errors = 0;
    this.#shed = 0;
    this.#latency.reset();
    this.#ttfb.reset();
  }

  points(): readonly SeriesPoint[] {
    return this.#points;
  }
}

/** A ClusterSeries per cluster name, created on first use. */
export class TrafficSeries {
  readonly #byCluster = new Map<string, ClusterSeries>();
  readonly #capacity: number;
  readonly bucketMs: number;

  constructor(opts: { readonly capacity?: number; readonly bucketMs?: number } = {}) {
    this.#capacity = opts.capacity ?? SERIES_CAPACITY;
    this.bucketMs = opts.bucketMs ?? SERIES_BUCKET_MS;
  }

  of(cluster: string): ClusterSeries {
    let s = this.#byCluster.get(cluster);
    if (s === undefined) {
      s = new ClusterSeries(this.#capacity);
      this.#byCluster.set(cluster, s);
    }
    return s;
  }

  /** Closes every cluster's open bucket (call every `bucketMs`). */
  close(nowMs: number): void {
    for (const s of this.#byCluster.values()) s.close(nowMs, this.bucketMs);
  }

  /** Drops the rings of clusters not in `keep` (a removed cluster's history goes with it). */
  retain(keep: ReadonlySet<string>): void {
    for (const name of [...this.#byCluster.keys()]) if (!keep.has(name)) this.#byCluster.delete(name);
  }

  clusters(): string[] {
    return [...this.#byCluster.keys()];
  }
}
