// The durable shape of all traffic: per app, its weights and its rollout.
// [pure] This is what state-store.ts writes to `state_dir` (file mode) and
// what a ConfigMap would hold (kubernetes mode); every change bumps
// `version` (optimistic concurrency, "has it changed" checks).
//
// Also the audit record type: one AuditEvent per operator action or rollout
// transition, refused ones included.

import type { Weights } from '../routing/traffic-split.ts';
import { validateRolloutPolicy } from './rollout.ts';
import type { RolloutEventKind, RolloutPhase, RolloutState, RolloutTransition } from './rollout.ts';

export interface AppTraffic {
  /** Every cluster serving the app, in config order, zeros included; sum 100. */
  readonly weights: Weights;
  /** The app's latest rollout (finished ones stay until the next one starts), or null. */
  readonly rollout: RolloutState | null;
}

export interface TrafficState {
  /** Incremented on every change. */
  readonly version: number;
  readonly apps: Readonly<Record<string, AppTraffic>>;
}

/** Written into the file as `format`; bump on an incompatible change. */
export const TRAFFIC_STATE_FORMAT = 1;

export function emptyTrafficState(): TrafficState {
  return { version: 0, apps: {} };
}

/**
 * null when `weights` is usable, else why not: integers 0..100, summing to
 * 100, at least one cluster, every cluster in `knownClusters` (null = skip
 * that check, as when reading a saved file before the config is known).
 */
export function validateWeights(weights: unknown, knownClusters: readonly string[] | null): string | null {
  if (typeof weights !== 'object' || weights === null || Array.isArray(weights)) return 'weights must be an object of cluster: weight';
  const entries = Object.entries(weights as Record<string, unknown>);
  if (entries.length === 0) return 'weights must name at least one cluster';
  let sum = 0;
  for (const [name, w] of entries) {
    if (knownClusters !== null && !knownClusters.includes(name)) {
      return `unknown cluster "${name}" (known: ${knownClusters.join(', ')})`;
    }
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 100) {
      return `weight for "${name}" must be an integer 0..100, got ${JSON.stringify(w)}`;
    }
    sum += w;
  }
  if (sum !== 100) return `weights must sum to 100, got ${sum}`;
  return null;
}

/**
 * Sets an app's weights. Clusters the app already has but `weights` does not
 * name get 0 (so `{green: 100}` is an atomic switch); key order is kept, new
 * clusters are appended. Validate first (validateWeights).
 */
export function applyWeights(state: TrafficState, app: string, weights: Weights): TrafficState {
  const prev = state.apps[app];
  const merged: Record<string, number> = {};
  if (prev !== undefined) for (const name of Object.keys(prev.weights)) merged[name] = weights[name] ?? 0;
  for (const [name, w] of Object.entries(weights)) merged[name] = w;
  return {
    version: state.version + 1,
    apps: { ...state.apps, [app]: { weights: merged, rollout: prev?.rollout ?? null } },
  };
}

/**
 * Records a rollout transition for its app: the new rollout state, and the
 * weights when the transition moved them. Returns `state` itself when
 * nothing changed (so the caller can skip the save).
 */
export function applyRolloutTransition(state: TrafficState, transition: RolloutTransition): TrafficState {
  const app = transition.state.app;
  const prev = state.apps[app];
  if (prev !== undefined && prev.rollout === transition.state && transition.weights === null) return state;
  const withWeights = transition.weights === null ? state : applyWeights(state, app, transition.weights);
  const cur = withWeights.apps[app];
  return {
    version: state.version + 1,
    apps: { ...withWeights.apps, [app]: { weights: cur?.weights ?? {}, rollout: transition.state } },
  };
}

export function serializeTrafficState(state: TrafficState): string {
  return `${JSON.stringify({ format: TRAFFIC_STATE_FORMAT, version: state.version, apps: state.apps }, null, 2)}\n`;
}

/** Parses and validates a saved state; an Error says what is wrong (never throws). */
export function parseTrafficState(json: string): TrafficState | Error {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return new Error(`not JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) return new Error('not an object');
  if (raw['format'] !== TRAFFIC_STATE_FORMAT) return new Error(`unsupported format ${JSON.stringify(raw['format'])} (want ${TRAFFIC_STATE_FORMAT})`);
  const version = raw['version'];
  if (!isNonNegInt(version)) return new Error('version must be an integer >= 0');
  const apps = raw['apps'];
  if (!isObject(apps)) return new Error('apps must be an object');
  const out: Record<string, AppTraffic> = {};
  for (const [app, entry] of Object.entries(apps)) {
    if (!isObject(entry)) return new Error(`apps.${app} must be an object`);
    const problem = validateWeights(entry['weights'], null);
    if (problem !== null) return new Error(`apps.${app}.weights: ${problem}`);
    const rollout = entry['rollout'] ?? null;
    if (rollout !== null) {
      const bad = checkRollout(rollout, app);
      if (bad !== null) return new Error(`apps.${app}.rollout: ${bad}`);
    }
    out[app] = { weights: entry['weights'] as Weights, rollout: rollout as RolloutState | null };
  }
  return { version, apps: out };
}

const PHASES: readonly RolloutPhase[] = ['progressing', 'paused', 'succeeded', 'rolled_back', 'failed_paused'];

function checkRollout(r: unknown, app: string): string | null {
  if (!isObject(r)) return 'must be an object or null';
  if (r['app'] !== app) return `app must be "${app}"`;
  for (const k of ['activeCluster', 'pendingCluster'] as const) {
    if (typeof r[k] !== 'string' || r[k] === '') return `${k} must be a non-empty string`;
  }
  if (!PHASES.includes(r['phase'] as RolloutPhase)) return `phase must be one of ${PHASES.join(', ')}`;
  for (const k of ['stepStartedAtMs', 'startedAtMs', 'updatedAtMs'] as const) {
    if (typeof r[k] !== 'number' || !Number.isFinite(r[k])) return `${k} must be a number`;
  }
  if (r['reason'] !== null && typeof r['reason'] !== 'string') return 'reason must be a string or null';
  const policy = r['policy'];
  if (!isObject(policy) || !Array.isArray(policy['steps'])) return 'policy must be an object with steps';
  if (policy['maxTtfbP99Ms'] === undefined) return 'policy.maxTtfbP99Ms must be a number or null';
  const policyProblem = validateRolloutPolicy(policy as unknown as RolloutState['policy'], { bounded: false });
  if (policyProblem !== null) return `policy: ${policyProblem}`;
  const steps = policy['steps'] as number[];
  const stepIndex = r['stepIndex'];
  if (!isNonNegInt(stepIndex) || stepIndex >= steps.length) return 'stepIndex must index policy.steps';
  const pct = r['trafficRoutedPercent'];
  if (!isNonNegInt(pct) || pct > 100) return 'trafficRoutedPercent must be an integer 0..100';
  return null;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

// ---- audit -----------------------------------------------------------------

export type AuditAction =
  | 'set_weights'
  | 'rollout_start'
  | 'rollout_step'
  | 'rollout_pause'
  | 'rollout_resume'
  | 'rollout_promote'
  | 'rollout_rollback'
  | 'rollout_failed'
  | 'rollout_complete'
  | 'state_recovered';

export interface AuditEvent {
  /** 1, 2, 3… continuing across restarts. */
  readonly id: number;
  /** ISO 8601 wall-clock time. */
  readonly at: string;
  /** Who: "admin" (token holder), "rollout" (the driver), "gateway" (startup recovery)… */
  readonly actor: string;
  /** The app, or "*" for gateway-wide events (state_recovered). */
  readonly app: string;
  readonly action: AuditAction;
  /** Weights before; null when not about weights (pause, refused start…). */
  readonly from: Weights | null;
  /** Weights after; null when unchanged, refused or failed. */
  readonly to: Weights | null;
  readonly reason: string;
  /**
   * ok: the change was recorded (before the state file was written, see
   * state-store.ts); refused: not allowed; failed: an earlier `ok` entry
   * (named in `reason`) whose state write failed or never happened, so it
   * was not applied.
   */
  readonly result: 'ok' | 'refused' | 'failed';
  /**
   * On `ok`: the state version this change produced (TrafficState.version as
   * saved); on `failed`: the version of the change that was not applied.
   * Absent on refusals and gateway events. Every version found in the state
   * file has an `ok` entry with that version.
   */
  readonly version?: number;
}

/** What state-store.appendAudit takes: the store numbers it. */
export type AuditEventInput = Omit<AuditEvent, 'id'>;

const ACTION_BY_EVENT: Readonly<Record<RolloutEventKind, AuditAction>> = {
  started: 'rollout_start',
  advanced: 'rollout_step',
  completed: 'rollout_complete',
  failed_rolled_back: 'rollout_failed',
  failed_paused: 'rollout_failed',
  paused: 'rollout_pause',
  resumed: 'rollout_resume',
  promoted: 'rollout_promote',
  rolled_back: 'rollout_rollback',
};

/** The audit action for a rollout event kind. */
export function auditActionFor(kind: RolloutEventKind): AuditAction {
  return ACTION_BY_EVENT[kind];
}

const ACTIONS: ReadonlySet<string> = new Set<AuditAction>([
  'set_weights',
  'rollout_start',
  'rollout_step',
  'rollout_pause',
  'rollout_resume',
  'rollout_promote',
  'rollout_rollback',
  'rollout_failed',
  'rollout_complete',
  'state_recovered',
]);

/** One audit-log line back into an event, or null when it is not one (torn write, garbage). */
export function parseAuditEvent(line: string): AuditEvent | null {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(raw)) return null;
  if (!isNonNegInt(raw['id']) || raw['id'] === 0) return null;
  if (typeof raw['at'] !== 'string' || typeof raw['actor'] !== 'string' || typeof raw['app'] !== 'string') return null;
  if (typeof raw['action'] !== 'string' || !ACTIONS.has(raw['action'])) return null;
  if (typeof raw['reason'] !== 'string') return null;
  if (raw['result'] !== 'ok' && raw['result'] !== 'refused' && raw['result'] !== 'failed') return null;
  if (raw['version'] !== undefined && !isNonNegInt(raw['version'])) return null;
  for (const k of ['from', 'to'] as const) if (raw[k] !== null && !isObject(raw[k])) return null;
  return raw as unknown as AuditEvent;
}

/**
 * Config reload: weights edited in the config file do not move traffic for an
 * app the traffic state already holds weights for (the state wins: it is what
 * operators and rollouts set). One warning per such app whose config weights
 * changed, saying what is kept and how to apply the new weights; empty when
 * nothing was ignored. `prev`/`next` map app names ("*" = defaults) to their
 * config weights (null = none set).
 */
export function ignoredConfigWeights(
  prev: ReadonlyMap<string, Readonly<Record<string, number>> | null>,
  next: ReadonlyMap<string, Readonly<Record<string, number>> | null>,
  state: TrafficState,
): string[] {
  const out: string[] = [];
  const weightsOf = (m: typeof prev, app: string) => (m.has(app) ? (m.get(app) ?? null) : (m.get('*') ?? null));
  for (const [app, t] of Object.entries(state.apps)) {
    const before = weightsOf(prev, app);
    const after = weightsOf(next, app);
    if (after === null || sameEntries(before, after) || sameEntries(t.weights, after)) continue;
    const key = next.has(app) ? `applications.${app}.weights` : 'applications."*".weights';
    const kept = Object.entries(t.weights).map(([c, w]) => `${c}=${w}`).join(' ');
    const want = Object.entries(after).map(([c, w]) => `${c}=${w}`).join(' ');
    out.push(
      `${key} changed in the config file, but app "${app}" keeps ${kept} from the traffic state; run "serve-gateway traffic set ${app} ${want}" to apply the new weights`,
    );
  }
  return out;
}

function sameEntries(a: Readonly<Record<string, number>> | null, b: Readonly<Record<string, number>> | null): boolean {
  if (a === null || b === null) return a === b;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if ((a[k] ?? 0) !== (b[k] ?? 0)) return false;
  return true;
}
