// The router one Serve proxy runs per application: requests not yet assigned
// to a replica wait in this proxy's FIFO, bounded by max_queued_requests
// (per proxy, as in Serve: serve.md §2.3). Assignment itself (P2C over the
// shared replicas, woken on release) is AppRuntime's.
import type { AppRuntime, Replica, Waiter } from './app-runtime.ts';

export type RouteResult =
  | { readonly kind: 'assigned'; readonly replica: Replica }
  | { readonly kind: 'queued' }
  | { readonly kind: 'rejected'; readonly message: string };

export function backpressureMessage(queued: number, max: number): string {
  return `Request dropped due to backpressure (num_queued_requests=${queued}, max_queued_requests=${max}).`;
}

export class ProxyRouter {
  readonly runtime: AppRuntime;
  /** Requests of this proxy waiting for a replica. */
  queued = 0;

  constructor(runtime: AppRuntime) {
    this.runtime = runtime;
  }

  /**
   * Assigns at once when a replica has room and nobody waits ahead; else
   * queues `waiter` (its assign() runs later and must call dequeued()), or
   * rejects when this proxy already holds max_queued_requests.
   */
  route(waiter: Waiter): RouteResult {
    const rt = this.runtime;
    if (!rt.hasWaiters) {
      const r = rt.tryAcquire();
      if (r !== null) return { kind: 'assigned', replica: r };
    }
    const max = rt.app.maxQueuedRequests;
    if (max !== -1 && this.queued >= max) {
      rt.stats.rejected++;
      return { kind: 'rejected', message: backpressureMessage(this.queued, max) };
    }
    this.queued++;
    rt.wait(waiter);
    return { kind: 'queued' };
  }

  /** A queued waiter was assigned (called from its assign()). */
  dequeued(): void {
    this.queued--;
  }

  /** Drops a queued waiter (client gone, timeout); false if already assigned. */
  cancel(waiter: Waiter): boolean {
    if (!this.runtime.unwait(waiter)) return false;
    this.queued--;
    return true;
  }
}
