// Level-triggered rebuild of the routing snapshot: whenever an input changes
// (config reload, a dashboard poll that found different apps, a traffic
// change) the whole snapshot is rebuilt from the current inputs and
// published in one step. It also owns the long-lived runtime objects the
// snapshot points at — clusters (pools, health), limiters, metric handles,
// step stats — so they survive rebuilds and keep their counters.
import { Limiter } from '../admission/limiter.ts';
import type { PermitCell, PermitTable } from '../admission/permits.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { GatewayConfig } from '../config/types.ts';
import type { Instruments } from '../metrics/instruments.ts';
import type { GwRule } from '../core/gateway-rule.ts';
import type { Weights } from '../routing/traffic-split.ts';
import { UpstreamCluster } from '../upstream/cluster.ts';
import { buildSnapshot, SnapshotStore, type ClusterApps, type Snapshot, type SnapshotBindings } from './snapshot.ts';
import { StepStatsRegistry } from './step-stats.ts';
import { TrafficSeries } from './traffic-series.ts';

/**
 * One change of the reconciler's inputs, as plain data: what the main thread
 * sends its data-plane workers so each builds the same snapshot (workers.ts).
 */
export type ReconcilerInput =
  | { readonly kind: 'config'; readonly config: GatewayConfig }
  | { readonly kind: 'gateway'; readonly rules: readonly GwRule[] | null; readonly config: GatewayConfig }
  | { readonly kind: 'apps'; readonly name: string; readonly apps: ClusterApps }
  | { readonly kind: 'weights'; readonly weights: ReadonlyMap<string, Weights> };

export class Reconciler {
  readonly store = new SnapshotStore();
  /** Per cluster, what it served over the last 15 minutes (the dashboard's charts). */
  readonly series = new TrafficSeries();
  // Looked up per outcome, so a cluster's ring dropped by series.retain() and made again is the one fed.
  readonly stats = new StepStatsRegistry((cluster) => ({ record: (o) => this.series.of(cluster).record(o), merge: (w) => this.series.of(cluster).merge(w) }));
  config: GatewayConfig;
  readonly clusters = new Map<string, UpstreamCluster>();
  readonly limiters = new Map<string, Limiter>();
  readonly #clusterApps = new Map<string, ClusterApps>();
  #weights = new Map<string, Weights>();
  #gatewayRules: readonly GwRule[] | null = null;
  #version = 0;
  readonly #clock: Clock;
  readonly #metrics: Instruments;
  readonly #log: Logger;
  /** Shared admission counters (several data-plane threads), or null: each limiter counts alone. */
  readonly #permits: PermitTable | null;
  /** Keys whose limiter counts alone (no shared slot was free when it was made). */
  readonly #unshared = new Set<string>();
  /** Called with clusters removed by a config change, after the new snapshot is live. */
  onClustersRemoved: (clusters: UpstreamCluster[]) => void = () => {};
  /** Called with every input change, after its snapshot is published (the worker pool mirrors them). */
  onInput: ((input: ReconcilerInput) => void) | null = null;

  constructor(config: GatewayConfig, clock: Clock, metrics: Instruments, log: Logger, permits: PermitTable | null = null) {
    this.config = config;
    this.#clock = clock;
    this.#metrics = metrics;
    this.#log = log;
    this.#permits = permits;
    for (const c of config.clusters) {
      this.#clusterApps.set(c.name, c.serveApps === null ? { apps: [], source: 'none', stale: false } : { apps: c.serveApps, source: 'serve_config', stale: false });
    }
  }

  get current(): Snapshot | null {
    return this.store.current;
  }

  clusterApps(name: string): ClusterApps | undefined {
    return this.#clusterApps.get(name);
  }

  setConfig(config: GatewayConfig): void {
    const removed = this.#takeConfig(config);
    this.rebuild('config');
    this.onInput?.({ kind: 'config', config });
    if (removed.length > 0) this.onClustersRemoved(removed);
  }

  /**
   * Gateway API mode: new HTTPRoute rules and the config with their plain-Service
   * clusters, in one rebuild (a rule never names a cluster the snapshot lacks).
   */
  setGatewayRules(rules: readonly GwRule[] | null, config: GatewayConfig = this.config): void {
    if (config === this.config && JSON.stringify(rules) === JSON.stringify(this.#gatewayRules)) return;
    const removed = config === this.config ? [] : this.#takeConfig(config);
    this.#gatewayRules = rules;
    this.rebuild('httproutes');
    this.onInput?.({ kind: 'gateway', rules, config });
    if (removed.length > 0) this.onClustersRemoved(removed);
  }

  /** Adopts a config; returns the runtime clusters it drops (closed by the caller after the next publish). */
  #takeConfig(config: GatewayConfig): UpstreamCluster[] {
    const names = new Set(config.clusters.map((c) => c.name));
    for (const c of config.clusters) {
      const prev = this.#clusterApps.get(c.name);
      // Serve-config knowledge is replaced; dashboard knowledge stays until the next poll.
      if (prev === undefined || prev.source !== 'dashboard') {
        this.#clusterApps.set(c.name, c.serveApps === null ? { apps: [], source: 'none', stale: false } : { apps: c.serveApps, source: 'serve_config', stale: false });
      }
    }
    for (const name of [...this.#clusterApps.keys()]) if (!names.has(name)) this.#clusterApps.delete(name);
    const old = this.config;
    this.config = config;
    const removed: UpstreamCluster[] = [];
    for (const [name, cluster] of this.clusters) {
      const cfg = config.clusters.find((c) => c.name === name);
      if (cfg === undefined || !cluster.sameEndpoints(cfg) || JSON.stringify(old.upstream) !== JSON.stringify(config.upstream)) {
        this.clusters.delete(name);
        removed.push(cluster);
      }
    }
    return removed;
  }

  /** A dashboard poll result (or its failure, with the last known apps). */
  setClusterApps(name: string, apps: ClusterApps): void {
    const prev = this.#clusterApps.get(name);
    if (prev !== undefined && prev.stale === apps.stale && prev.source === apps.source && JSON.stringify(prev.apps) === JSON.stringify(apps.apps)) return;
    this.#clusterApps.set(name, apps);
    this.rebuild(`cluster ${name} apps`);
    this.onInput?.({ kind: 'apps', name, apps });
  }

  setWeights(weights: ReadonlyMap<string, Weights>): void {
    this.#weights = new Map(weights);
    this.rebuild('traffic');
    this.onInput?.({ kind: 'weights', weights: this.#weights });
  }

  /** The inputs as they are now, in an order that rebuilds this snapshot from a fresh reconciler. */
  inputs(): ReconcilerInput[] {
    const out: ReconcilerInput[] = [{ kind: 'config', config: this.config }];
    if (this.#gatewayRules !== null) out.push({ kind: 'gateway', rules: this.#gatewayRules, config: this.config });
    for (const [name, apps] of this.#clusterApps) out.push({ kind: 'apps', name, apps });
    out.push({ kind: 'weights', weights: this.#weights });
    return out;
  }

  /**
   * A fresh reconciler (a worker thread starting) takes the main thread's
   * inputs all at once and builds one snapshot from them: never a snapshot
   * of the config alone, whose apps the main thread may not have.
   */
  restore(inputs: readonly ReconcilerInput[]): void {
    for (const input of inputs) {
      if (input.kind === 'config') this.#takeConfig(input.config);
      else if (input.kind === 'gateway') {
        if (input.config !== this.config) this.#takeConfig(input.config);
        this.#gatewayRules = input.rules;
      } else if (input.kind === 'apps') this.#clusterApps.set(input.name, input.apps);
      else this.#weights = new Map(input.weights);
    }
    this.rebuild('restore');
  }

  /** Applies an input another thread's reconciler took (the inverse of onInput). */
  apply(input: ReconcilerInput): void {
    if (input.kind === 'config') this.setConfig(input.config);
    else if (input.kind === 'gateway') this.setGatewayRules(input.rules, input.config);
    else if (input.kind === 'apps') this.setClusterApps(input.name, input.apps);
    else this.setWeights(input.weights);
  }

  rebuild(reason: string): Snapshot {
    const bindings: SnapshotBindings = {
      cluster: (name) => this.#cluster(name),
      limiter: (app, cluster, limit, qcap, timeoutMs) => this.#limiter(app, cluster, limit, qcap, timeoutMs),
      handles: (app, cluster) => this.#metrics.handles(app, cluster),
      stats: (app, cluster) => this.stats.get(app, cluster),
    };
    const snap = buildSnapshot(
      { version: ++this.#version, config: this.config, clusterApps: new Map(this.#clusterApps), weights: this.#weights, gatewayRules: this.#gatewayRules },
      bindings,
    );
    this.store.publish(snap);
    for (const [name, cluster] of this.clusters) {
      let weight = 0;
      for (const app of snap.apps.values()) weight += app.split.weights[app.split.clusters.indexOf(name)] ?? 0;
      for (const e of snap.gateway?.entries ?? []) for (const b of e.rule.backends) if (b.kind !== 'invalid' && b.cluster === name) weight += b.weight;
      cluster.setDrained(weight === 0);
    }
    for (const w of snap.warnings) this.#log.warn({ version: snap.version }, w);
    this.#log.debug({ version: snap.version, reason, apps: [...snap.apps.keys()] }, 'snapshot published');
    return snap;
  }

  #cluster(name: string): UpstreamCluster {
    let c = this.clusters.get(name);
    if (c === undefined) {
      const cfg = this.config.clusters.find((x) => x.name === name)!;
      // upstream.max_connections_per_endpoint is for the process: each data-plane thread has its own pools.
      const up = this.config.upstream;
      const workers = this.config.workers;
      c = new UpstreamCluster(cfg, workers > 1 && up.maxConnectionsPerEndpoint > 0 ? { ...up, maxConnectionsPerEndpoint: Math.ceil(up.maxConnectionsPerEndpoint / workers) } : up);
      this.clusters.set(name, c);
    }
    return c;
  }

  #limiter(app: string, cluster: string, limit: number, qcap: number, timeoutMs: number): Limiter {
    const key = `${app}\u0000${cluster}`;
    const p = this.#permits;
    let l = this.limiters.get(key);
    if (l !== undefined && p !== null && this.#unshared.has(key) && l.inFlight === 0 && l.queued === 0 && this.#sharedCell(key) !== null) {
      // It counted alone (no shared slot when it was made); idle now, it is replaced by one that shares.
      this.limiters.delete(key);
      this.#unshared.delete(key);
      l = undefined;
    }
    if (l === undefined) {
      const cell = p === null ? null : this.#sharedCell(key);
      if (p !== null && cell === null) {
        // Without a slot the threads cannot count together: each takes its share of the limit.
        this.#unshared.add(key);
        this.#log.error({ app, cluster, slots: p.buffers.slots }, 'no shared admission slot for this app and cluster: each data-plane thread admits limit / workers');
      }
      l = new Limiter(app, cluster, this.#effective(key, limit), qcap, timeoutMs, this.#clock, cell ?? undefined);
      this.limiters.set(key, l);
    } else {
      const eff = this.#effective(key, limit);
      if (l.limit !== eff || l.queueCapacity !== qcap || l.queueTimeoutMs !== timeoutMs) l.configure(eff, qcap, timeoutMs);
    }
    return l;
  }

  /** The key's shared cell: the main thread assigns a slot on first use, a worker finds the one assigned. */
  #sharedCell(key: string): PermitCell | null {
    const p = this.#permits!;
    return p.slotOf(key) === -1 ? null : p.cell(key);
  }

  /** A limiter that counts alone (no shared slot) admits its thread's share of the limit, at least 1. */
  #effective(key: string, limit: number): number {
    return this.#unshared.has(key) ? Math.max(1, Math.floor(limit / this.config.workers)) : limit;
  }
}
