// The progressive rollout state machine. [pure]
//
// A rollout moves an app's weight from its active cluster (where the weight
// is) to its pending cluster (`traffic rollout APP --to CLUSTER`) through
// `policy.steps`, KubeRay-style names: activeCluster, pendingCluster,
// trafficRoutedPercent (the pending cluster's current weight).
//
//   startRollout ──► progressing ──(gates pass after interval)──► next step … ──► succeeded
//                      │  ▲   │                                                  (100 % applied)
//              pause   │  │   │ gate fails (any time once min_requests seen)
//                      ▼  │   ├── on_failure: rollback ──► rolled_back  (active 100 %)
//                   paused│   └── on_failure: pause ─────► failed_paused (weights kept)
//                      │  │resume (restarts the step timer)      │
//                      └──┴──────────────────────────────────────┘
//   promote: progressing | paused | failed_paused ──► succeeded   (pending 100 % at once)
//   rollback: progressing | paused | failed_paused ──► rolled_back (active 100 % at once)
//
// Every function takes `now` and returns a new state; nothing here reads a
// clock. `now` is wall-clock epoch milliseconds (Clock.wallNow()), not the
// monotonic clock: the state is persisted and step timing must survive a
// restart (after one, call restartStepTimer because the step's observation
// window was lost with the process).
//
// Choice: the 100 step is never held. When the step before it passes its
// gates, the pending cluster gets 100 and the rollout is `succeeded` at once
// (as KubeRay promotes when the pending side reaches 100 %). Watching the
// cluster at 100 % is the job of ordinary alerting, not of the rollout.

import type { RolloutPolicy } from '../config/types.ts';
import type { Weights } from '../routing/traffic-split.ts';
import type { StatsSnapshot } from './step-stats.ts';

export type RolloutPhase = 'progressing' | 'paused' | 'succeeded' | 'rolled_back' | 'failed_paused';

export interface RolloutState {
  readonly app: string;
  /** Source: the cluster that held the weight when the rollout started. */
  readonly activeCluster: string;
  /** Target: the cluster the weight moves to. */
  readonly pendingCluster: string;
  /** Index into policy.steps of the step being held (after the end: the last one applied). */
  readonly stepIndex: number;
  /** The pending cluster's weight now (0..100). */
  readonly trafficRoutedPercent: number;
  readonly phase: RolloutPhase;
  /** When the current step's interval (and observation window) began. */
  readonly stepStartedAtMs: number;
  /** The policy this rollout runs with (config defaults merged with the request's overrides). */
  readonly policy: RolloutPolicy;
  /** Why the rollout is in its phase (gate failure text, "paused by operator"…); null while healthy. */
  readonly reason: string | null;
  readonly startedAtMs: number;
  readonly updatedAtMs: number;
}

/**
 * Names the current step of a rollout: the same string on every replica for
 * the same step (kubernetes mode merges only measurements of one step).
 */
export function rolloutStepKey(r: RolloutState): string {
  return `${r.startedAtMs}/${r.stepIndex}/${r.stepStartedAtMs}`;
}

export type RolloutEventKind =
  | 'started'
  | 'advanced'
  | 'completed'
  | 'failed_rolled_back'
  | 'failed_paused'
  | 'paused'
  | 'resumed'
  | 'promoted'
  | 'rolled_back';

export interface RolloutEvent {
  readonly kind: RolloutEventKind;
  /** One human sentence with the numbers; goes to the audit log and the logs as is. */
  readonly reason: string;
}

/** What one call did. */
export interface RolloutTransition {
  readonly state: RolloutState;
  /**
   * New weights for the app, or null = unchanged. Only the two rollout
   * clusters are named; every other cluster of the app is at 0
   * (traffic-state `applyWeights` fills them in).
   */
  readonly weights: Weights | null;
  /** null = nothing to record (waiting out the interval, holding for min_requests). */
  readonly event: RolloutEvent | null;
  /** Reset the pending cluster's StepStats: a new observation window starts now. */
  readonly resetStats: boolean;
}

export type RolloutRefusalCode =
  | 'INVALID_POLICY'
  | 'UNKNOWN_CLUSTER'
  | 'ALREADY_AT_TARGET'
  | 'OTHER_CLUSTER_HAS_WEIGHT'
  | 'ROLLOUT_IN_PROGRESS'
  | 'NOT_RUNNING'
  | 'ALREADY_PAUSED'
  | 'NOT_PAUSED';

export interface RolloutRefusal {
  readonly ok: false;
  readonly code: RolloutRefusalCode;
  readonly message: string;
}

export type RolloutResult = ({ readonly ok: true } & RolloutTransition) | RolloutRefusal;

/** Phases in which a rollout owns the app's weights (manual `set` should be refused). */
export function isRolloutActive(state: RolloutState | null): boolean {
  return state !== null && (state.phase === 'progressing' || state.phase === 'paused' || state.phase === 'failed_paused');
}

/**
 * Upper bounds of a rollout policy, for the admin API (and the same numbers
 * in config/schema.ts for the config file): a typo such as an interval of
 * 11,400 years must be refused, not leave a rollout that never moves.
 */
export const ROLLOUT_LIMITS = {
  /** `interval`: 24 h. */
  maxIntervalMs: 86_400_000,
  /** `max_p99_latency` and `max_ttfb_p99`: 1 h. */
  maxLatencyMs: 3_600_000,
  /** `min_requests`. */
  maxMinRequests: 1_000_000,
} as const;

/**
 * null when the policy can drive a rollout, else the first problem, naming
 * the field. `bounded: false` skips the upper bounds (ROLLOUT_LIMITS): a
 * state file saved before they existed must still load.
 */
export function validateRolloutPolicy(policy: RolloutPolicy, opts: { readonly bounded?: boolean } = {}): string | null {
  const steps = policy.steps;
  if (steps.length === 0) return 'steps must not be empty';
  let prev = 0;
  for (const s of steps) {
    if (!Number.isInteger(s) || s < 1 || s > 100) return `steps must be integers 1..100, got ${String(s)}`;
    if (s <= prev) return `steps must be strictly ascending, got ${steps.join(',')}`;
    prev = s;
  }
  if (prev !== 100) return `the last step must be 100, got ${prev}`;
  if (!(Number.isFinite(policy.intervalMs) && policy.intervalMs > 0)) return 'interval must be > 0';
  if (!(policy.maxErrorRate >= 0 && policy.maxErrorRate <= 1)) return 'max_error_rate must be within 0..1';
  if (!(policy.maxP99LatencyMs > 0)) return 'max_p99_latency must be > 0';
  if (policy.maxTtfbP99Ms !== null && !(policy.maxTtfbP99Ms > 0)) return 'max_ttfb_p99 must be > 0 when set';
  if (!(Number.isInteger(policy.minRequests) && policy.minRequests >= 0)) return 'min_requests must be an integer >= 0';
  if (policy.onFailure !== 'rollback' && policy.onFailure !== 'pause') return 'on_failure must be rollback or pause';
  if (opts.bounded !== false) {
    const L = ROLLOUT_LIMITS;
    if (policy.intervalMs > L.maxIntervalMs) return `interval must be at most ${formatLimit(L.maxIntervalMs)} (got ${formatLimit(policy.intervalMs)})`;
    if (policy.maxP99LatencyMs > L.maxLatencyMs) return `max_p99_latency must be at most ${formatLimit(L.maxLatencyMs)} (got ${formatLimit(policy.maxP99LatencyMs)})`;
    if (policy.maxTtfbP99Ms !== null && policy.maxTtfbP99Ms > L.maxLatencyMs) {
      return `max_ttfb_p99 must be at most ${formatLimit(L.maxLatencyMs)} (got ${formatLimit(policy.maxTtfbP99Ms)})`;
    }
    if (policy.minRequests > L.maxMinRequests) return `min_requests must be at most ${L.maxMinRequests} (got ${policy.minRequests})`;
  }
  return null;
}

/** "24h", "90m", "45s", "250 ms": a limit or an offending value, exact and readable at any size. */
function formatLimit(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  return formatDuration(ms);
}

/**
 * Starts a rollout of `app` to cluster `to`. `currentWeights` are the app's
 * weights now and must name every cluster serving the app (zeros included),
 * in config order.
 *
 * - The active cluster is the one with the most weight other than `to`
 *   (first in config order on a tie).
 * - A rollout moves weight between exactly two clusters: if a third one
 *   still has weight it is refused (OTHER_CLUSTER_HAS_WEIGHT) rather than
 *   drained silently; set weights first.
 * - Steps at or below the pending cluster's current weight are skipped, so
 *   weight never moves backwards (and sticky cohorts never flip). The first
 *   remaining step applies at once; if that is 100 the rollout is done.
 */
export function startRollout(
  app: string,
  currentWeights: Weights,
  to: string,
  policy: RolloutPolicy,
  now: number,
): RolloutResult {
  const problem = validateRolloutPolicy(policy);
  if (problem !== null) return refuse('INVALID_POLICY', `invalid rollout policy: ${problem}`);
  const toWeight = currentWeights[to];
  if (toWeight === undefined) {
    return refuse('UNKNOWN_CLUSTER', `cluster "${to}" does not serve app "${app}" (known: ${Object.keys(currentWeights).join(', ')})`);
  }
  if (toWeight >= 100) return refuse('ALREADY_AT_TARGET', `app "${app}" already sends 100% to "${to}"`);

  let from: string | null = null;
  let fromWeight = -1;
  for (const [name, w] of Object.entries(currentWeights)) {
    if (name !== to && w > fromWeight) {
      from = name;
      fromWeight = w;
    }
  }
  if (from === null) return refuse('UNKNOWN_CLUSTER', `app "${app}" has no cluster to move weight from`);
  for (const [name, w] of Object.entries(currentWeights)) {
    if (name !== to && name !== from && w > 0) {
      return refuse(
        'OTHER_CLUSTER_HAS_WEIGHT',
        `a rollout moves weight between two clusters, but "${name}" still has ${w}% besides "${from}" and "${to}"; set weights first`,
      );
    }
  }

  const stepIndex = policy.steps.findIndex((s) => s > toWeight);
  const pct = policy.steps[stepIndex]!;
  const done = pct === 100;
  const state: RolloutState = {
    app,
    activeCluster: from,
    pendingCluster: to,
    stepIndex,
    trafficRoutedPercent: pct,
    phase: done ? 'succeeded' : 'progressing',
    stepStartedAtMs: now,
    policy,
    reason: null,
    startedAtMs: now,
    updatedAtMs: now,
  };
  const skipped = stepIndex > 0 ? ` (steps up to ${policy.steps[stepIndex - 1]}% skipped: "${to}" already had ${toWeight}%)` : '';
  const reason = done
    ? `rollout of ${app} from ${from} to ${to} started and completed at once: ${to} 100%${skipped}`
    : `rollout of ${app} from ${from} to ${to} started: steps ${policy.steps.join(',')} every ${formatDuration(policy.intervalMs)}; ${to} at ${pct}%${skipped}`;
  return {
    ok: true,
    state,
    weights: twoWay(state, pct),
    event: { kind: 'started', reason },
    resetStats: true,
  };
}

/**
 * One tick of the rollout driver for a progressing rollout, with what the
 * gateway measured on the pending cluster since the step began.
 *
 * - Gates (error rate, p99 latency, p99 TTFB when set) are checked as soon
 *   as the window has `minRequests` requests, even before the interval ends:
 *   a failing step acts within one interval at most.
 * - Before `intervalMs` has passed since the step began: nothing happens.
 * - After it, with fewer than `minRequests` requests: hold (keep waiting;
 *   low traffic is not a failure).
 * - After it, gates passing: next step (new window), or succeeded when the
 *   next step is 100.
 *
 * Not progressing (paused, finished): returns the state unchanged.
 */
export function stepRollout(state: RolloutState, observation: StatsSnapshot, now: number): RolloutTransition {
  if (state.phase !== 'progressing') return unchanged(state);
  const policy = state.policy;
  const enough = observation.requests >= policy.minRequests;

  if (enough) {
    const failures = gateFailures(policy, observation);
    if (failures.length > 0) return failStep(state, failures, observation, now);
  }
  if (now - state.stepStartedAtMs < policy.intervalMs) return unchanged(state);
  if (!enough) return unchanged(state);

  const next = state.stepIndex + 1;
  const pct = policy.steps[next];
  if (pct === undefined) {
    // Unreachable with a valid policy (100 completes on arrival); finish safely.
    return completeAt(state, now, 'completed', `rollout of ${state.app} to ${state.pendingCluster} completed`);
  }
  const passed = `gates passed at ${state.trafficRoutedPercent}% (${describeObservation(observation)})`;
  if (pct === 100) {
    return completeAt(
      state,
      now,
      'completed',
      `${passed}; ${state.pendingCluster} at 100%: rollout of ${state.app} completed`,
    );
  }
  const nextState: RolloutState = {
    ...state,
    stepIndex: next,
    trafficRoutedPercent: pct,
    stepStartedAtMs: now,
    reason: null,
    updatedAtMs: now,
  };
  return {
    state: nextState,
    weights: twoWay(nextState, pct),
    event: { kind: 'advanced', reason: `${passed}; ${state.pendingCluster} ${state.trafficRoutedPercent}% → ${pct}%` },
    resetStats: true,
  };
}

/** Stops stepping; weights stay where they are. */
export function pauseRollout(state: RolloutState, now: number): RolloutResult {
  if (isFinished(state)) return notRunning(state);
  if (state.phase !== 'progressing') return refuse('ALREADY_PAUSED', `rollout of ${state.app} is already ${state.phase}`);
  const reason = `rollout of ${state.app} paused by operator at ${state.pendingCluster} ${state.trafficRoutedPercent}%`;
  return {
    ok: true,
    state: { ...state, phase: 'paused', reason, updatedAtMs: now },
    weights: null,
    event: { kind: 'paused', reason },
    resetStats: false,
  };
}

/**
 * Continues a paused (or failed_paused) rollout at its current step. The
 * step's timer and observation window start again from `now`.
 */
export function resumeRollout(state: RolloutState, now: number): RolloutResult {
  if (isFinished(state)) return notRunning(state);
  if (state.phase === 'progressing') return refuse('NOT_PAUSED', `rollout of ${state.app} is not paused`);
  const reason = `rollout of ${state.app} resumed at ${state.pendingCluster} ${state.trafficRoutedPercent}%${
    state.phase === 'failed_paused' ? ' after a failed gate' : ''
  }; step timer restarted`;
  return {
    ok: true,
    state: { ...state, phase: 'progressing', stepStartedAtMs: now, reason: null, updatedAtMs: now },
    weights: null,
    event: { kind: 'resumed', reason },
    resetStats: true,
  };
}

/** Sends 100 % to the pending cluster now and ends the rollout (no gates). */
export function promoteRollout(state: RolloutState, now: number): RolloutResult {
  if (isFinished(state)) return notRunning(state);
  const t = completeAt(
    state,
    now,
    'promoted',
    `rollout of ${state.app} promoted by operator: ${state.pendingCluster} ${state.trafficRoutedPercent}% → 100%`,
  );
  return { ok: true, ...t };
}

/** Returns all weight to the active cluster now and ends the rollout. */
export function rollbackRollout(state: RolloutState, now: number): RolloutResult {
  if (isFinished(state)) return notRunning(state);
  const reason = `rollout of ${state.app} rolled back by operator at ${state.pendingCluster} ${state.trafficRoutedPercent}%: ${state.activeCluster} 100%`;
  return { ok: true, ...rollBack(state, now, 'rolled_back', reason) };
}

/**
 * After a restart: a progressing rollout's observation window was lost
 * with the process, so its step starts over from `now` (the weights are
 * kept). Other phases are returned unchanged.
 */
export function restartStepTimer(state: RolloutState, now: number): RolloutTransition {
  if (state.phase !== 'progressing') return unchanged(state);
  return {
    state: { ...state, stepStartedAtMs: now, updatedAtMs: now },
    weights: null,
    event: null,
    resetStats: true,
  };
}

/** The gates the observation fails, as text with measured value vs threshold. */
export function gateFailures(policy: RolloutPolicy, obs: StatsSnapshot): string[] {
  const out: string[] = [];
  if (obs.errorRate > policy.maxErrorRate) {
    out.push(`error rate ${formatRate(obs.errorRate)} > ${formatRate(policy.maxErrorRate)} (${obs.errors} of ${obs.requests} requests)`);
  }
  if (obs.p99LatencyMs !== null && obs.p99LatencyMs > policy.maxP99LatencyMs) {
    out.push(`p99 latency ${formatMs(obs.p99LatencyMs)} > ${formatMs(policy.maxP99LatencyMs)}`);
  }
  if (policy.maxTtfbP99Ms !== null && obs.p99TtfbMs !== null && obs.p99TtfbMs > policy.maxTtfbP99Ms) {
    out.push(`p99 time to first byte ${formatMs(obs.p99TtfbMs)} > ${formatMs(policy.maxTtfbP99Ms)}`);
  }
  return out;
}

/** Where a rollout stands and why, for status readers (dashboard, CLI). */
export interface RolloutProgress {
  /** Time spent in the current step (0 when not progressing). */
  readonly timeInStepMs: number;
  /** Until the interval ends (0 once it has; null when not progressing). */
  readonly intervalLeftMs: number | null;
  /** The step after the current one (percent), or null at the end. */
  readonly nextStepPercent: number | null;
  /** "holding: 12 of 50 requests" while the window has fewer than min_requests, else null. */
  readonly holding: string | null;
  /** Gates the window fails now (measured value vs threshold); empty when passing or not judged yet. */
  readonly failing: readonly string[];
  /** One sentence: what the rollout waits for, or why it stopped. */
  readonly summary: string;
}

/**
 * Why a rollout is where it is: the same rules as stepRollout, read-only.
 * A progressing rollout with no traffic holds at "0 of N requests" (it never
 * fails for lack of traffic and never advances without evidence).
 */
export function describeRollout(state: RolloutState, obs: StatsSnapshot, now: number): RolloutProgress {
  const p = state.policy;
  const next = p.steps[state.stepIndex + 1] ?? null;
  if (state.phase !== 'progressing') {
    const summary =
      state.reason ??
      (state.phase === 'succeeded' ? `completed: ${state.pendingCluster} at 100%` : `${state.phase} at ${state.pendingCluster} ${state.trafficRoutedPercent}%`);
    return { timeInStepMs: 0, intervalLeftMs: null, nextStepPercent: state.phase === 'succeeded' ? null : next, holding: null, failing: [], summary };
  }
  const inStep = Math.max(0, now - state.stepStartedAtMs);
  const left = Math.max(0, p.intervalMs - inStep);
  const short = obs.requests < p.minRequests;
  const holding = short ? `holding: ${obs.requests} of ${p.minRequests} requests` : null;
  const failing = short ? [] : gateFailures(p, obs);
  const to = next === null ? '' : ` to ${next}%`;
  let summary: string;
  if (failing.length > 0) summary = `gate failing (${failing.join('; ')}): acting on it at the next driver tick`;
  else if (short && left === 0) summary = `${holding}: the interval is over; the next step${to} comes once ${p.minRequests} requests have been measured on ${state.pendingCluster}`;
  else if (short) summary = `${holding}; next step${to} in ${formatSeconds(left)} at the earliest, after ${p.minRequests} requests`;
  else if (left === 0) summary = `gates passing (${describeObservation(obs)}); next step${to} at the next driver tick`;
  else summary = `gates passing so far (${describeObservation(obs)}); next step${to} in ${formatSeconds(left)}`;
  return { timeInStepMs: inStep, intervalLeftMs: left, nextStepPercent: next, holding, failing, summary };
}

function formatSeconds(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `${s} s`;
  return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ---- helpers ---------------------------------------------------------------

function failStep(state: RolloutState, failures: string[], obs: StatsSnapshot, now: number): RolloutTransition {
  const what = `gate failed for ${state.pendingCluster} at step ${state.trafficRoutedPercent}% over ${obs.requests} requests: ${failures.join('; ')}`;
  if (state.policy.onFailure === 'rollback') {
    return rollBack(state, now, 'failed_rolled_back', `${what}; rolled back to ${state.activeCluster} 100%`);
  }
  const reason = `${what}; paused (weights kept)`;
  return {
    state: { ...state, phase: 'failed_paused', reason, updatedAtMs: now },
    weights: null,
    event: { kind: 'failed_paused', reason },
    resetStats: false,
  };
}

function rollBack(state: RolloutState, now: number, kind: RolloutEventKind, reason: string): RolloutTransition {
  const next: RolloutState = { ...state, phase: 'rolled_back', trafficRoutedPercent: 0, reason, updatedAtMs: now };
  return { state: next, weights: twoWay(next, 0), event: { kind, reason }, resetStats: false };
}

function completeAt(state: RolloutState, now: number, kind: RolloutEventKind, reason: string): RolloutTransition {
  const next: RolloutState = {
    ...state,
    phase: 'succeeded',
    stepIndex: state.policy.steps.length - 1,
    trafficRoutedPercent: 100,
    reason: kind === 'promoted' ? reason : null,
    updatedAtMs: now,
  };
  return { state: next, weights: twoWay(next, 100), event: { kind, reason }, resetStats: false };
}

function twoWay(state: RolloutState, pendingPercent: number): Weights {
  return { [state.activeCluster]: 100 - pendingPercent, [state.pendingCluster]: pendingPercent };
}

function unchanged(state: RolloutState): RolloutTransition {
  return { state, weights: null, event: null, resetStats: false };
}

function isFinished(state: RolloutState): boolean {
  return state.phase === 'succeeded' || state.phase === 'rolled_back';
}

function notRunning(state: RolloutState): RolloutRefusal {
  return refuse('NOT_RUNNING', `rollout of ${state.app} to ${state.pendingCluster} is not running (${state.phase})`);
}

function refuse(code: RolloutRefusalCode, message: string): RolloutRefusal {
  return { ok: false, code, message };
}

function describeObservation(obs: StatsSnapshot): string {
  const parts = [`${obs.requests} requests`, `error rate ${formatRate(obs.errorRate)}`];
  if (obs.p99LatencyMs !== null) parts.push(`p99 ${formatMs(obs.p99LatencyMs)}`);
  if (obs.p99TtfbMs !== null) parts.push(`p99 ttfb ${formatMs(obs.p99TtfbMs)}`);
  return parts.join(', ');
}

function formatRate(x: number): string {
  return String(Number(x.toFixed(4)));
}

function formatMs(ms: number): string {
  return `${Math.round(ms)} ms`;
}

function formatDuration(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000}s` : `${ms} ms`;
}
