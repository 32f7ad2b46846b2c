// Entry point of the simulated Ray Serve clusters: start every cluster's
// proxies and dashboard plus the control API, and expose the fault switches
// as methods (tests call them directly; the control API calls the same ones).
import type { ConfigIssue, HostPort } from '../config/types.ts';
import { ControlApi } from './control-api.ts';
import type { ControlTarget } from './control-api.ts';
import type { AppFaults } from './app-runtime.ts';
import { SimCluster, SimError } from './sim-cluster.ts';
import type { ClusterStats } from './sim-cluster.ts';
import { readSimConfigFile } from './sim-config.ts';
import type { SimConfig } from './sim-config.ts';

export interface SimOptions {
  /** Start the control API (when the config has `control`). Default true. */
  readonly control?: boolean;
  /** Overrides the config's control address (e.g. port 0 in tests). */
  readonly controlAddress?: HostPort;
}

export interface SimStats {
  readonly clusters: Record<string, ClusterStats>;
}

export class SimConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'SimConfigError';
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}: ${i.path === '' ? '' : `${i.path}: `}${i.message}`;
}

/** Reads and validates a sim YAML file; throws SimConfigError listing every problem. */
export function loadSimConfig(path: string): SimConfig {
  const r = readSimConfigFile(path);
  if (!r.ok) throw new SimConfigError(r.issues);
  return r.config;
}

export class Sim {
  readonly clusters: readonly SimCluster[];
  readonly control: ControlApi | null;
  #closed = false;

  constructor(clusters: readonly SimCluster[], control: ControlApi | null) {
    this.clusters = clusters;
    this.control = control;
  }

  cluster(name: string): SimCluster {
    const c = this.clusters.find((x) => x.name === name);
    if (!c) throw new SimError(404, `no cluster "${name}"`);
    return c;
  }

  /** Control API origin, or null when not started. */
  get controlUrl(): string | null {
    return this.control ? this.control.url : null;
  }

  /** One line per listening address (what `serve-gateway sim` prints). */
  addresses(): string[] {
    const lines: string[] = [];
    for (const c of this.clusters) {
      c.proxies.forEach((p) => lines.push(`cluster ${c.name} proxy ${p.index} ${p.url}`));
      if (c.dashboard) lines.push(`cluster ${c.name} dashboard ${c.dashboard.url}`);
    }
    if (this.control) lines.push(`control ${this.control.url}`);
    return lines;
  }

  stats(): SimStats {
    const clusters: Record<string, ClusterStats> = {};
    for (const c of this.clusters) clusters[c.name] = c.stats();
    return { clusters };
  }

  /** Clears faults, app statuses, drains and stats in every cluster. */
  reset(): void {
    for (const c of this.clusters) c.reset();
  }

  killProxy(cluster: string, i: number): Promise<void> {
    return this.cluster(cluster).killProxy(i);
  }

  reviveProxy(cluster: string, i: number): Promise<void> {
    return this.cluster(cluster).reviveProxy(i);
  }

  drainProxy(cluster: string, i: number): void {
    this.cluster(cluster).drainProxy(i);
  }

  undrainProxy(cluster: string, i: number): void {
    this.cluster(cluster).undrainProxy(i);
  }

  stopDashboard(cluster: string): Promise<void> {
    return this.cluster(cluster).stopDashboard();
  }

  startDashboard(cluster: string): Promise<void> {
    return this.cluster(cluster).startDashboard();
  }

  setFaults(cluster: string, app: string, faults: Partial<AppFaults>): AppFaults {
    return this.cluster(cluster).setFaults(app, faults);
  }

  scale(cluster: string, app: string, replicas: number): void {
    this.cluster(cluster).scale(app, replicas);
  }

  setAppStatus(cluster: string, app: string, status: string): void {
    this.cluster(cluster).setAppStatus(app, status);
  }

  /** Closes every listener and destroys open connections. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.clusters.map((c) => c.close()), this.control?.stop()]);
  }
}

/** Starts all clusters (and the control API); port 0 addresses resolve to real ports. */
export async function startSim(config: SimConfig, opts: SimOptions = {}): Promise<Sim> {
  const clusters = config.clusters.map((c) => new SimCluster(c));
  const controlAddress = opts.controlAddress ?? config.control;
  const target: ControlTarget = {
    cluster: (name) => started.cluster(name),
    stats: () => started.stats(),
    reset: () => started.reset(),
  };
  const control = opts.control !== false && controlAddress ? new ControlApi(target, controlAddress) : null;
  const started: Sim = new Sim(clusters, control);
  try {
    for (const c of clusters) await c.start();
    if (control) await control.start();
  } catch (err) {
    await started.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') {
      throw new Error(`sim: cannot listen: ${e.message}`, { cause: err });
    }
    throw err;
  }
  return started;
}
