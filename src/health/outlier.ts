// Passive and active health of one endpoint as plain data with pure
// transitions. The balancer asks isAvailable() at pick time; health is not part
// of the routing snapshot because it changes far more often.

export interface EndpointHealth {
  /** Last /-/healthz result: true 200 success, false 503/other, null not probed yet. */
  probeOk: boolean | null;
  /** Last probe's message (e.g. "This node is being drained."). */
  probeMessage: string;
  consecutiveFailures: number;
  ejectedUntilMs: number;
  ejections: number;
  /** Probes recorded so far (a worker thread applies each new one the main thread's prober made). */
  probeSeq: number;
}

export interface EjectPolicy {
  readonly ejectAfterFailures: number;
  readonly ejectBaseMs: number;
  readonly ejectMaxMs: number;
}

export function newEndpointHealth(): EndpointHealth {
  return { probeOk: null, probeMessage: '', consecutiveFailures: 0, ejectedUntilMs: 0, ejections: 0, probeSeq: 0 };
}

/** Takes new requests: not known-bad by probe, and not ejected. Unprobed counts as available. */
export function isAvailable(h: EndpointHealth, now: number): boolean {
  return h.probeOk !== false && now >= h.ejectedUntilMs;
}

/** A connect failure (passive) or a probe that could not connect. */
export function recordFailure(h: EndpointHealth, now: number, p: EjectPolicy): void {
  h.consecutiveFailures++;
  if (h.consecutiveFailures >= p.ejectAfterFailures && now >= h.ejectedUntilMs) {
    // Back-off grows with each ejection in a row (Envoy outlier detection).
    h.ejections++;
    h.ejectedUntilMs = now + Math.min(p.ejectMaxMs, p.ejectBaseMs * 2 ** (h.ejections - 1));
  }
}

export function recordSuccess(h: EndpointHealth): void {
  if (h.consecutiveFailures !== 0) h.consecutiveFailures = 0;
  if (h.ejections !== 0) h.ejections = 0;
}

export function recordProbe(h: EndpointHealth, ok: boolean, message: string): void {
  h.probeSeq++;
  h.probeOk = ok;
  h.probeMessage = message;
  if (ok) {
    h.consecutiveFailures = 0;
    h.ejectedUntilMs = 0;
    h.ejections = 0;
  }
}
