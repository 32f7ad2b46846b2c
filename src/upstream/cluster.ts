// The upstream side of one Ray cluster: its Serve proxy endpoints, a cursor
// for the balancer, the circuit state set by the prober, and counters the
// status API reports (in-flight, open streams) for drain / safe-to-delete.
import type { ClusterConfig, UpstreamConfig } from '../config/types.ts';
import { isAvailable } from '../health/outlier.ts';
import { pickEndpoint } from './balancer.ts';
import { Endpoint } from './endpoint.ts';

export class UpstreamCluster {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  /** Set by the prober's circuit breaker: true = no new requests. */
  circuitOpen = false;
  inFlight = 0;
  openStreams = 0;
  #cursor = 0;
  #now = 0;
  readonly #isAvailable = (e: Endpoint) => isAvailable(e.health, this.#now);

  constructor(cfg: ClusterConfig, upstream: UpstreamConfig) {
    this.name = cfg.name;
    this.endpoints = cfg.endpoints.map((origin) => new Endpoint(origin, cfg.name, upstream));
  }

  /** An endpoint for a new request, or null (no available endpoint or circuit open). */
  pick(now: number, exclude: Endpoint | null): Endpoint | null {
    if (this.circuitOpen) return null;
    this.#now = now;
    const i = pickEndpoint(this.endpoints, this.#isAvailable, this.#cursor++, exclude === null ? -1 : this.endpoints.indexOf(exclude));
    if (this.#cursor > 1e9) this.#cursor = 0;
    return i === -1 ? null : this.endpoints[i]!;
  }

  /** Serving: circuit closed and at least one endpoint available. */
  isServing(now: number): boolean {
    if (this.circuitOpen) return false;
    for (const e of this.endpoints) if (isAvailable(e.health, now)) return true;
    return false;
  }

  /** Weight 0 in every app: close idle connections now and the rest as their requests end. */
  setDrained(drained: boolean): void {
    for (const e of this.endpoints) {
      if (drained && !e.draining) e.closeIdle(0, true);
      e.draining = drained;
    }
  }

  get drained(): boolean {
    return this.endpoints.length > 0 && this.endpoints.every((e) => e.draining);
  }

  closeIdle(now: number, all: boolean): number {
    let n = 0;
    for (const e of this.endpoints) n += e.closeIdle(now, all);
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.close()));
  }

  /** Same endpoints in the same order: the runtime object can be kept across reloads. */
  sameEndpoints(cfg: ClusterConfig): boolean {
    return cfg.endpoints.length === this.endpoints.length && cfg.endpoints.every((o, i) => this.endpoints[i]!.origin === o);
  }
}
