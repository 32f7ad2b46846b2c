// What the main thread and its data-plane worker threads say to each other
// (structured-cloned over the worker's MessagePort). docs/workers.md.
import type { PermitBuffers } from '../admission/permits.ts';
import type { ReconcilerInput } from '../control/reconciler.ts';
import type { StatsWindow } from '../control/step-stats.ts';
import type { MetricDeltas } from '../metrics/instruments.ts';

/** workerData of a worker thread. */
export interface WorkerInit {
  /** 1..N-1 (the main thread is 0). */
  readonly index: number;
  readonly permits: PermitBuffers;
  readonly slots: ReadonlyArray<readonly [string, number]>;
  /** The main reconciler's inputs now (Reconciler.inputs()). */
  readonly inputs: readonly ReconcilerInput[];
  readonly host: string;
  readonly port: number;
  /** Access-log lines on stdout (JSON, batched), or none. */
  readonly accessLog: 'stdout' | 'off';
  readonly logLevel: string;
  readonly reportMs: number;
}

/** A cluster's health as the main thread's probers see it. */
export interface HealthView {
  readonly name: string;
  readonly circuitOpen: boolean;
  readonly endpoints: ReadonlyArray<readonly [origin: string, probeOk: boolean | null, message: string, probeSeq: number]>;
}

export type ToWorker =
  | { readonly t: 'input'; readonly slots: ReadonlyArray<readonly [string, number]>; readonly input: ReconcilerInput }
  | { readonly t: 'health'; readonly clusters: readonly HealthView[] }
  | { readonly t: 'collect'; readonly id: number }
  | { readonly t: 'drain'; readonly drainDelayMs: number; readonly gracePeriodMs: number };

/** What a worker counted since its last report, and its load now. */
export interface WorkerReport {
  readonly metrics: MetricDeltas;
  readonly stats: ReadonlyArray<readonly [app: string, cluster: string, window: StatsWindow]>;
  readonly activeRequests: number;
  /** Requests received since the thread started. */
  readonly handled: number;
  readonly upgrades: number;
  readonly clusters: ReadonlyArray<readonly [name: string, inFlight: number, openStreams: number]>;
}

export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'report'; readonly id: number | null; readonly report: WorkerReport }
  | { readonly t: 'drained' };
