// Active health: every probe interval each cluster's endpoints are asked
// `GET /-/healthz` (200 "success" = takes new requests; 503 = draining or no
// replicas, let in-flight finish). Each cluster's probe round runs through an
// opossum circuit breaker: when rounds keep finding no healthy endpoint the
// circuit opens, the data plane stops sending to the cluster (failing over to
// another cluster that serves the app), and after the reset timeout one
// half-open round decides whether it closes again.
import CircuitBreaker from 'opossum';
import { request } from 'undici';
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { HealthConfig } from '../config/types.ts';
import type { Logger } from '../core/log.ts';
import { recordFailure, recordProbe } from './outlier.ts';
import type { Endpoint } from '../upstream/endpoint.ts';
import type { UpstreamCluster } from '../upstream/cluster.ts';

export interface ProbeResult {
  readonly ok: boolean;
  readonly message: string;
  /** Could not connect (counts toward ejection), as opposed to an HTTP answer. */
  readonly unreachable: boolean;
}

export async function probeEndpoint(origin: string, timeoutMs: number): Promise<ProbeResult> {
  try {
    const res = await request(`${origin}/-/healthz`, {
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = (await res.body.text()).trim();
    const ok = res.statusCode === 200 && text.includes('success');
    return { ok, message: text.slice(0, 200) || `HTTP ${res.statusCode}`, unreachable: false };
  } catch (err) {
    const e = err as Error & { code?: string };
    return { ok: false, message: e.code ?? e.message, unreachable: true };
  }
}

export class ClusterProber {
  readonly cluster: UpstreamCluster;
  readonly breaker: CircuitBreaker<[], number>;
  #timer: TimerHandle | null = null;
  #stopped = false;
  readonly #cfg: HealthConfig;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #probe: (origin: string, timeoutMs: number) => Promise<ProbeResult>;

  constructor(
    cluster: UpstreamCluster,
    cfg: HealthConfig,
    clock: Clock,
    log: Logger,
    probe: (origin: string, timeoutMs: number) => Promise<ProbeResult> = probeEndpoint,
  ) {
    this.cluster = cluster;
    this.#cfg = cfg;
    this.#clock = clock;
    this.#log = log;
    this.#probe = probe;
    this.breaker = new CircuitBreaker(() => this.#round(), {
      timeout: false,
      errorThresholdPercentage: 50,
      volumeThreshold: cfg.ejectAfterFailures,
      resetTimeout: cfg.ejectBaseMs,
      rollingCountTimeout: Math.max(10_000, cfg.probeIntervalMs * cfg.ejectAfterFailures * 2),
      name: `cluster:${cluster.name}`,
    });
    this.breaker.on('open', () => {
      cluster.circuitOpen = true;
      this.#log.warn({ cluster: cluster.name }, 'circuit opened: no healthy Serve endpoint');
    });
    this.breaker.on('halfOpen', () => this.#log.info({ cluster: cluster.name }, 'circuit half-open: probing'));
    this.breaker.on('close', () => {
      cluster.circuitOpen = false;
      this.#log.info({ cluster: cluster.name }, 'circuit closed: cluster serving again');
    });
  }

  start(): void {
    void this.probeOnce();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.breaker.shutdown();
  }

  /** One probe round through the breaker, then schedules the next. */
  async probeOnce(): Promise<void> {
    try {
      await this.breaker.fire();
    } catch {
      // Counted by the breaker; endpoint states were updated by the round.
    }
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => void this.probeOnce(), this.#cfg.probeIntervalMs);
    this.#timer.unref?.();
  }

  async #round(): Promise<number> {
    const results = await Promise.all(this.cluster.endpoints.map((e) => this.#probeOne(e)));
    const healthy = results.filter(Boolean).length;
    if (healthy === 0) throw new Error(`no healthy endpoint in cluster ${this.cluster.name}`);
    return healthy;
  }

  async #probeOne(e: Endpoint): Promise<boolean> {
    const r = await this.#probe(e.origin, this.#cfg.probeTimeoutMs);
    const was = e.health.probeOk;
    if (r.unreachable) {
      recordFailure(e.health, this.#clock.now(), this.#cfg);
      e.health.probeSeq++;
      e.health.probeOk = false;
      e.health.probeMessage = r.message;
    } else {
      recordProbe(e.health, r.ok, r.message);
    }
    if (was !== e.health.probeOk) {
      this.#log.info({ cluster: e.cluster, endpoint: e.origin, healthy: e.health.probeOk, message: r.message }, 'endpoint health changed');
    }
    return r.ok;
  }
}
