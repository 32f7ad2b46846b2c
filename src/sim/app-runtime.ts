// One Serve application inside one simulated cluster: the replicas of its
// ingress deployment (each a semaphore of max_ongoing_requests, shared by all
// proxies of the cluster), the requests waiting for a replica, faults, stats.
// Per-proxy routing (the bounded FIFO of max_queued_requests) is in
// proxy-router.ts; this file only knows replicas and the global wait order.
import { randomBytes } from 'node:crypto';
import type { ServeApp, ServeAppStatus } from '../config/types.ts';
import type { AppBehaviour } from './sim-config.ts';

export interface Replica {
  readonly id: string;
  inFlight: number;
  /** Scaled away: takes no new requests, removed once idle. */
  stopping: boolean;
  readonly startTimeS: number;
}

/** A request waiting for a replica (FIFO across the cluster, woken on release). */
export interface Waiter {
  assign(replica: Replica): void;
}

export interface AppFaults {
  /** 0..1 share of requests answered with `status` after their latency. */
  readonly errorRate: number;
  /** Extra latency added to every request. */
  readonly latencyMs: number;
  /** Status of injected errors (500 → Serve's `Internal Server Error`). */
  readonly status: number;
}

export const NO_FAULTS: AppFaults = { errorRate: 0, latencyMs: 0, status: 500 };

export interface AppStats {
  /** Requests holding a replica slot now. */
  inFlight: number;
  /** Requests waiting for a replica now (all proxies). */
  queued: number;
  maxInFlightSeen: number;
  /** Requests that got a complete response from the app (any status it chose). */
  completed: number;
  /** 503 backpressure (max_queued_requests). */
  rejected: number;
  /** Client disconnects before the response ended (Serve logs 499). */
  cancelled: number;
  /** Injected errors and DEPLOY_FAILED replies. */
  errors: number;
  /** request_timeout_s expiries (408 or cut stream). */
  timeouts: number;
}

export function newAppStats(): AppStats {
  return { inFlight: 0, queued: 0, maxInFlightSeen: 0, completed: 0, rejected: 0, cancelled: 0, errors: 0, timeouts: 0 };
}

export class AppRuntime {
  readonly app: ServeApp;
  readonly cluster: string;
  readonly behaviour: AppBehaviour;
  /** Replicas of the ingress deployment, in creation order. */
  replicas: Replica[] = [];
  status: ServeAppStatus = 'RUNNING';
  faults: AppFaults = NO_FAULTS;
  stats: AppStats = newAppStats();
  readonly #waiters = new Set<Waiter>();
  /** Number of replicas not stopping. */
  #running = 0;

  constructor(cluster: string, app: ServeApp, behaviour: AppBehaviour) {
    this.cluster = cluster;
    this.app = app;
    this.behaviour = behaviour;
    this.scale(app.replicas);
  }

  get runningReplicas(): number {
    return this.#running;
  }

  /**
   * Power of two choices: two distinct random running replicas, the one with
   * fewer in-flight requests below max_ongoing_requests wins. When both are
   * full, Serve retries with fresh picks; the sim scans instead of backing
   * off, and returns null only when every replica is full.
   */
  tryAcquire(): Replica | null {
    const limit = this.app.maxOngoingRequests;
    const rs = this.replicas;
    const n = rs.length;
    if (n === 0) return null;
    let pick: Replica | null = null;
    const ia = (Math.random() * n) | 0;
    const a = rs[ia] as Replica;
    if (n === 1) {
      if (!a.stopping && a.inFlight < limit) pick = a;
    } else {
      let j = (Math.random() * (n - 1)) | 0;
      const b = rs[j >= ia ? j + 1 : j] as Replica;
      for (const r of a.inFlight <= b.inFlight ? [a, b] : [b, a]) {
        if (!r.stopping && r.inFlight < limit) {
          pick = r;
          break;
        }
      }
      if (pick === null) {
        for (j = 0; j < n; j++) {
          const r = rs[j] as Replica;
          if (!r.stopping && r.inFlight < limit && (pick === null || r.inFlight < pick.inFlight)) pick = r;
        }
      }
    }
    if (pick !== null) this.#take(pick);
    return pick;
  }

  #take(r: Replica): void {
    r.inFlight++;
    const s = this.stats;
    s.inFlight++;
    if (s.inFlight > s.maxInFlightSeen) s.maxInFlightSeen = s.inFlight;
  }

  /** Frees a slot and hands it to the oldest waiter. */
  release(r: Replica): void {
    r.inFlight--;
    this.stats.inFlight--;
    if (r.stopping && r.inFlight === 0) this.replicas = this.replicas.filter((x) => x !== r);
    this.#dispatch();
  }

  wait(w: Waiter): void {
    this.#waiters.add(w);
    this.stats.queued++;
  }

  /** Removes a waiter (client gone, timeout); false if it was already assigned. */
  unwait(w: Waiter): boolean {
    if (!this.#waiters.delete(w)) return false;
    this.stats.queued--;
    return true;
  }

  get hasWaiters(): boolean {
    return this.#waiters.size > 0;
  }

  #dispatch(): void {
    while (this.#waiters.size > 0) {
      const w = this.#waiters.values().next().value as Waiter;
      const r = this.tryAcquire();
      if (r === null) return;
      this.#waiters.delete(w);
      this.stats.queued--;
      w.assign(r);
    }
  }

  /** Sets the running replica count; removed replicas finish their requests first. */
  scale(n: number): void {
    const running = this.replicas.filter((r) => !r.stopping);
    if (n > running.length) {
      const now = Date.now() / 1000;
      for (let i = running.length; i < n; i++) {
        this.replicas.push({ id: randomBytes(4).toString('hex'), inFlight: 0, stopping: false, startTimeS: now });
      }
    } else {
      for (const r of running.slice(n)) r.stopping = true;
      this.replicas = this.replicas.filter((r) => !r.stopping || r.inFlight > 0);
    }
    this.#running = n;
    this.#dispatch();
  }

  resetStats(): void {
    const s = newAppStats();
    s.inFlight = this.stats.inFlight;
    s.queued = this.stats.queued;
    s.maxInFlightSeen = s.inFlight;
    this.stats = s;
  }
}
