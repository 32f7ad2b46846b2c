// The one writer of traffic state: operator changes and the rollout driver
// go through here. Each change is decided by the pure
// functions in rollout.ts / traffic-state.ts into a candidate state, recorded
// (audit entry first, then the state file: FileStateStore.commit) and only
// when both writes succeeded becomes the controller's state and is published
// as a new snapshot. A failed write changes nothing, now or later: the
// candidate is dropped, the operator gets 503 STATE_WRITE_FAILED, and a
// rollout step the driver could not record is not taken (the rollout stays
// on its step and the next tick decides again and retries the write).
//
// Changes run one at a time (#exclusive). With a shared store (kubernetes
// mode: a ConfigMap written with optimistic concurrency) a write can find that
// another replica changed the state first: the store throws StateConflictError,
// the controller takes the store's newer state and decides the change again
// on it (re-read and re-apply), so a change is never applied on a stale state.
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { RolloutPolicy } from '../config/types.ts';
import type { Instruments } from '../metrics/instruments.ts';
import type { Weights } from '../routing/traffic-split.ts';
import type { Reconciler } from './reconciler.ts';
import type { StatsSnapshot } from './step-stats.ts';
import {
  isRolloutActive,
  pauseRollout,
  promoteRollout,
  restartStepTimer,
  resumeRollout,
  rolloutStepKey,
  rollbackRollout,
  startRollout,
  stepRollout,
  type RolloutResult,
  type RolloutState,
  type RolloutTransition,
} from './rollout.ts';
import { StateConflictError, StateWriteError } from './state-store.ts';
import type { TrafficStore } from './state-store.ts';
import {
  applyRolloutTransition,
  applyWeights,
  auditActionFor,
  emptyTrafficState,
  validateWeights,
  type AuditEvent,
  type TrafficState,
} from './traffic-state.ts';

export interface TrafficDeps {
  readonly reconciler: Reconciler;
  readonly store: TrafficStore;
  /**
   * Whether this replica drives rollouts now (kubernetes mode: it holds the
   * leader Lease). Default: always. The others keep their timer but skip ticks.
   */
  readonly drives?: () => boolean;
  /**
   * What the gates judge for (app, cluster) in the current step: by default
   * this replica's own measurements; in kubernetes mode the leader merges
   * every replica's (shared-step-stats).
   */
  readonly observe?: (app: string, cluster: string) => StatsSnapshot | null;
  /**
   * Restart each progressing step's timer at start (default true: the step's
   * measurements died with the old process). False with shared state: the
   * other replicas' measurements of the step live on.
   */
  readonly restartStepsAtStart?: boolean;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Instruments;
  /** Called with every audit entry written (kubernetes mode mirrors them as Events on the RayService). */
  readonly onAudit?: (e: AuditEvent) => void;
}

/** The last failed state write, until a write succeeds again (status API, logs). */
export interface StateWriteFailure {
  readonly message: string;
  /** Wall-clock ms of the first failure in this run of failures. */
  readonly sinceMs: number;
  /** Wall-clock ms of the latest failure. */
  readonly lastMs: number;
  /** Failed writes in a row. */
  readonly attempts: number;
  readonly app: string;
  readonly action: string;
}

/** Outcome of an operator action: ok, or a refusal with an HTTP status and a stable code. */
export type ActionResult =
  | { readonly ok: true; readonly weights: Weights; readonly rollout: RolloutState | null }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

export interface RolloutRequest {
  readonly to: string;
  readonly steps?: readonly number[];
  readonly intervalMs?: number;
  readonly maxErrorRate?: number;
  readonly maxP99LatencyMs?: number;
  readonly maxTtfbP99Ms?: number | null;
  readonly minRequests?: number;
  readonly onFailure?: 'rollback' | 'pause';
  readonly force?: boolean;
}

const REFUSAL_STATUS: Record<string, number> = {
  INVALID_POLICY: 400,
  UNKNOWN_CLUSTER: 400,
  ALREADY_AT_TARGET: 409,
  OTHER_CLUSTER_HAS_WEIGHT: 409,
  ROLLOUT_IN_PROGRESS: 409,
  NOT_RUNNING: 409,
  ALREADY_PAUSED: 409,
  NOT_PAUSED: 409,
};

/** A change that keeps meeting newer state (another replica writing as fast) gives up after this many tries. */
const MAX_CONFLICT_RETRIES = 5;
/** Driver period with no short rollout interval in play. */
const TICK_MS = 1000;
/** Floor of the driver period (a rollout with a tiny interval must not spin the loop). */
const MIN_TICK_MS = 20;
/** The driver ticks this many times per rollout interval at least, so a failed gate acts well within one interval. */
const TICKS_PER_INTERVAL = 10;

export class TrafficController {
  #state: TrafficState = emptyTrafficState();
  #timer: TimerHandle | null = null;
  #running = false;
  /** Highest state version any audit entry names: a version is never given to two changes. */
  #versionFloor = 0;
  #writeFailure: StateWriteFailure | null = null;
  /** Apps whose driver step could not be recorded: the failure, until a write for the app succeeds. */
  readonly #stalled = new Map<string, StateWriteFailure>();
  readonly #d: TrafficDeps;
  /** The tail of the changes queue (#exclusive). */
  #queue: Promise<void> = Promise.resolve();

  constructor(deps: TrafficDeps) {
    this.#d = deps;
  }

  get state(): TrafficState {
    return this.#state;
  }

  /** The current run of failed state writes, or null when the last write succeeded. */
  get writeFailure(): StateWriteFailure | null {
    return this.#writeFailure;
  }

  /** Why the app's rollout is held on its step (its next transition could not be recorded), or null. */
  rolloutStall(app: string): StateWriteFailure | null {
    return this.#stalled.get(app) ?? null;
  }

  /** Loads persisted state (a damaged file is moved aside, never fatal) and publishes the first snapshot. */
  start(): void {
    const { state, recovered } = this.#d.store.load();
    if (recovered !== null) {
      this.#d.log.error({ stateDir: this.#d.reconciler.config.stateDir }, recovered);
      this.#audit({ actor: 'gateway', app: '*', action: 'state_recovered', from: null, to: null, reason: recovered, result: 'ok' });
    }
    let s = state ?? emptyTrafficState();
    this.#reconcileAudit(state, recovered !== null);
    // Step timing restarts: the measurements of a step in progress died with the old process.
    if (this.#d.restartStepsAtStart !== false) {
      for (const t of Object.values(s.apps)) {
        if (t.rollout?.phase === 'progressing') s = applyRolloutTransition(s, restartStepTimer(t.rollout, this.#d.clock.wallNow()));
      }
    }
    this.#state = s;
    this.#publish();
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== null) this.#d.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Config reload: weights naming clusters that are gone are dropped (config weights apply again). */
  onConfigChanged(): void {
    this.#publish();
  }

  /** Effective weights of an app (what requests use now), or null for an unknown app. */
  weightsOf(app: string): Weights | null {
    const route = this.#d.reconciler.current?.apps.get(app);
    if (route === undefined) return null;
    const w: Record<string, number> = {};
    route.split.clusters.forEach((c, i) => (w[c] = route.split.weights[i]!));
    return w;
  }

  /** Gateway API mode: why the app's weights are not ours to set (an HTTPRoute owns them), else null. */
  #ownedBy(app: string): string | null {
    const route = this.#d.reconciler.current?.apps.get(app)?.weightsFrom ?? null;
    return route === null
      ? null
      : `the weights of "${app}" come from HTTPRoute ${route} (Gateway API mode); change its backendRefs' weights instead (KubeRay's incremental upgrade writes them)`;
  }

  rolloutOf(app: string): RolloutState | null {
    return this.#state.apps[app]?.rollout ?? null;
  }

  /** True when no app sends any weight to the cluster (it may be drained and deleted). */
  clusterDrained(cluster: string): boolean {
    const snap = this.#d.reconciler.current;
    if (snap === null) return false;
    for (const app of snap.apps.values()) {
      const i = app.split.clusters.indexOf(cluster);
      if (i !== -1 && app.split.weights[i]! > 0) return false;
    }
    return true;
  }

  events(limit: number): AuditEvent[] {
    return this.#d.store.readAudit(limit);
  }

  setWeights(app: string, weights: unknown, opts: { force?: boolean; actor: string; reason?: string }): Promise<ActionResult> {
    return this.#exclusive(() => this.#setWeights(app, weights, opts));
  }

  async #setWeights(app: string, weights: unknown, opts: { force?: boolean; actor: string; reason?: string }): Promise<ActionResult> {
    const current = this.weightsOf(app);
    if (current === null) return this.#refused(app, 'set_weights', null, 404, 'UNKNOWN_APP', `no application "${app}" is routed by this gateway`, opts.actor);
    const owner = this.#ownedBy(app);
    if (owner !== null) return this.#refused(app, 'set_weights', current, 409, 'WEIGHTS_OWNED_BY_HTTPROUTE', owner, opts.actor);
    const clusters = this.#clusterNames();
    const bad = validateWeights(weights, clusters);
    if (bad !== null) return this.#refused(app, 'set_weights', current, 400, 'INVALID_WEIGHTS', bad, opts.actor);
    const next = withAllClusters(weights as Weights, clusters);
    const rollout = this.rolloutOf(app);
    if (isRolloutActive(rollout)) {
      return this.#refused(app, 'set_weights', current, 409, 'ROLLOUT_IN_PROGRESS',
        `a rollout of "${app}" to "${rollout!.pendingCluster}" is ${rollout!.phase}; promote or roll it back first`, opts.actor);
    }
    if (opts.force !== true) {
      for (const c of clusters) {
        if ((next[c] ?? 0) > (current[c] ?? 0)) {
          const why = this.notReadyReason(app, c);
          if (why !== null) return this.#refused(app, 'set_weights', current, 409, 'NOT_READY', `${why}; pass force to override`, opts.actor);
        }
      }
    }
    if (sameWeights(current, next)) return { ok: true, weights: current, rollout };
    const atomic = Object.values(next).includes(100);
    const failed = await this.#commit(applyWeights(this.#state, app, next), {
      actor: opts.actor,
      app,
      action: 'set_weights',
      from: current,
      to: next,
      reason: opts.reason ?? (atomic ? 'atomic switch' : 'weights set'),
    });
    if (failed !== null) return failed;
    this.#d.log.info({ app, from: current, to: next, actor: opts.actor }, 'traffic weights changed');
    return { ok: true, weights: next, rollout };
  }

  startRollout(app: string, req: RolloutRequest, actor: string): Promise<ActionResult> {
    return this.#exclusive(() => this.#startRollout(app, req, actor));
  }

  async #startRollout(app: string, req: RolloutRequest, actor: string): Promise<ActionResult> {
    const current = this.weightsOf(app);
    if (current === null) return this.#refused(app, 'rollout_start', null, 404, 'UNKNOWN_APP', `no application "${app}" is routed by this gateway`, actor);
    const owner = this.#ownedBy(app);
    if (owner !== null) return this.#refused(app, 'rollout_start', current, 409, 'WEIGHTS_OWNED_BY_HTTPROUTE', owner, actor);
    const existing = this.rolloutOf(app);
    if (isRolloutActive(existing)) {
      return this.#refused(app, 'rollout_start', current, 409, 'ROLLOUT_IN_PROGRESS', `a rollout of "${app}" to "${existing!.pendingCluster}" is already ${existing!.phase}`, actor);
    }
    if (!this.#clusterNames().includes(req.to)) {
      return this.#refused(app, 'rollout_start', current, 400, 'UNKNOWN_CLUSTER', `no cluster named "${req.to}"`, actor);
    }
    if (req.force !== true) {
      const why = this.notReadyReason(app, req.to);
      if (why !== null) return this.#refused(app, 'rollout_start', current, 409, 'NOT_READY', `${why}; pass force to override`, actor);
    }
    const base = (this.#d.reconciler.config.applications.get(app) ?? this.#d.reconciler.config.defaults).rollout;
    const policy: RolloutPolicy = {
      steps: req.steps ?? base.steps,
      intervalMs: req.intervalMs ?? base.intervalMs,
      maxErrorRate: req.maxErrorRate ?? base.maxErrorRate,
      maxP99LatencyMs: req.maxP99LatencyMs ?? base.maxP99LatencyMs,
      maxTtfbP99Ms: req.maxTtfbP99Ms !== undefined ? req.maxTtfbP99Ms : base.maxTtfbP99Ms,
      minRequests: req.minRequests ?? base.minRequests,
      onFailure: req.onFailure ?? base.onFailure,
    };
    const r = startRollout(app, current, req.to, policy, this.#d.clock.wallNow());
    return this.#applyResult(app, current, r, actor, 'rollout_start');
  }

  /**
   * pause | resume | promote | rollback, acting at once. `promote` and `resume` move (or go on
   * moving) weight to the pending cluster, so they pass the readiness gate first unless `force`;
   * `rollback` is the way out and is never gated.
   */
  controlRollout(app: string, action: 'pause' | 'resume' | 'promote' | 'rollback', actor: string, opts: { force?: boolean } = {}): Promise<ActionResult> {
    return this.#exclusive(() => this.#controlRollout(app, action, actor, opts));
  }

  async #controlRollout(app: string, action: 'pause' | 'resume' | 'promote' | 'rollback', actor: string, opts: { force?: boolean }): Promise<ActionResult> {
    const current = this.weightsOf(app);
    const auditAction = `rollout_${action}` as const;
    if (current === null) return this.#refused(app, auditAction, null, 404, 'UNKNOWN_APP', `no application "${app}" is routed by this gateway`, actor);
    const owner = this.#ownedBy(app);
    if (owner !== null) return this.#refused(app, auditAction, current, 409, 'WEIGHTS_OWNED_BY_HTTPROUTE', owner, actor);
    const rollout = this.rolloutOf(app);
    if (rollout === null) return this.#refused(app, auditAction, current, 409, 'NO_ROLLOUT', `app "${app}" has no rollout`, actor);
    if ((action === 'promote' || action === 'resume') && opts.force !== true && isRolloutActive(rollout)) {
      const why = this.notReadyReason(app, rollout.pendingCluster);
      if (why !== null) return this.#refused(app, auditAction, current, 409, 'NOT_READY', `${why}; pass force to override`, actor);
    }
    const now = this.#d.clock.wallNow();
    const fn = { pause: pauseRollout, resume: resumeRollout, promote: promoteRollout, rollback: rollbackRollout }[action];
    return this.#applyResult(app, current, fn(rollout, now), actor, auditAction);
  }

  /** Why weight may not move to `cluster` for `app`, or null when it is serving. */
  notReadyReason(app: string, cluster: string): string | null {
    const snap = this.#d.reconciler.current;
    const route = snap?.apps.get(app);
    if (route === undefined || snap === null) return `app "${app}" is unknown`;
    const i = route.split.clusters.indexOf(cluster);
    const target = route.targets[i];
    if (target === undefined) return `cluster "${cluster}" is unknown`;
    if (target.serveApp === null) return `app "${app}" is not deployed on cluster "${cluster}"`;
    const status = target.serveApp.status;
    if (status !== 'RUNNING' && status !== 'UNKNOWN') return `app "${app}" on cluster "${cluster}" is ${status}, not RUNNING`;
    if (!target.cluster.isServing(this.#d.clock.now())) return `cluster "${cluster}" has no healthy Serve endpoint`;
    return null;
  }

  /**
   * One driver pass over progressing rollouts (also called by tests). A
   * replica that does not drive rollouts (not the leader) does nothing.
   */
  tick(): Promise<void> {
    if (this.#d.drives !== undefined && !this.#d.drives()) return Promise.resolve();
    return this.#exclusive(async () => {
      const now = this.#d.clock.wallNow();
      for (const [app, t] of Object.entries(this.#state.apps)) {
        const r = t.rollout;
        if (r === null || r.phase !== 'progressing') continue;
        const obs = this.#d.observe?.(app, r.pendingCluster) ?? this.#d.reconciler.stats.snapshotFor(app, r.pendingCluster);
        const before = t.weights;
        // A step that cannot be recorded is not taken: the rollout stays where it is and the
        // next tick decides again (with fresher numbers) and retries the write.
        await this.#applyTransition(app, before, stepRollout(r, obs, now), 'rollout');
      }
    });
  }

  /**
   * Runs `fn` after every change before it has finished (one change at a
   * time). When the store reports that another writer changed the state
   * first, the store's newer state is taken and `fn` runs again on it.
   */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn();
        } catch (err) {
          if (!(err instanceof StateConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw err;
          this.#adopt(err.current, 'conflict');
        }
      }
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /**
   * Another replica's change (the shared store's watch): it becomes this
   * replica's state when it is newer. Returns whether it was taken.
   */
  adoptRemote(state: TrafficState): Promise<boolean> {
    return this.#exclusive(async () => this.#adopt(state, 'remote'));
  }

  #adopt(state: TrafficState, why: 'remote' | 'conflict'): boolean {
    if (state.version <= this.#state.version) return false;
    // A rollout that moved to another step (by the leader): this replica's window starts again too.
    for (const [app, t] of Object.entries(state.apps)) {
      const r = t.rollout;
      const was = this.#state.apps[app]?.rollout ?? null;
      if (r !== null && (was === null || rolloutStepKey(was) !== rolloutStepKey(r))) this.#d.reconciler.stats.resetFor(app, r.pendingCluster);
    }
    this.#state = state;
    this.#versionFloor = Math.max(this.#versionFloor, state.version);
    this.#publish();
    this.#reschedule();
    this.#d.log.debug?.({ version: state.version, why }, 'traffic state from the shared store');
    return true;
  }

  async #applyResult(app: string, current: Weights, r: RolloutResult, actor: string, action: AuditEvent['action']): Promise<ActionResult> {
    if (!r.ok) return this.#refused(app, action, current, REFUSAL_STATUS[r.code] ?? 409, r.code, r.message, actor);
    const failed = await this.#applyTransition(app, current, r, actor);
    if (failed !== null) return failed;
    // A rollout started or resumed with a short interval must not wait out the previous (longer) driver period.
    this.#reschedule();
    return { ok: true, weights: this.weightsOf(app) ?? current, rollout: r.state };
  }

  /** Records and applies a rollout transition; the refusal to answer when it could not be recorded. */
  async #applyTransition(app: string, before: Weights, t: RolloutTransition, actor: string): Promise<ActionResult | null> {
    const next = applyRolloutTransition(this.#state, t);
    if (next === this.#state || t.event === null) {
      // Nothing to record (waiting out the interval, holding for min_requests).
      if (t.resetStats) this.#d.reconciler.stats.resetFor(app, t.state.pendingCluster);
      return null;
    }
    const after = next.apps[app]?.weights ?? before;
    const failed = await this.#commit(next, {
      actor,
      app,
      action: auditActionFor(t.event.kind),
      from: t.weights === null ? null : before,
      to: t.weights === null ? null : after,
      reason: t.event.reason,
    });
    if (failed !== null) return failed;
    // Only now: the new step's observation window starts with the step actually taken.
    if (t.resetStats) this.#d.reconciler.stats.resetFor(app, t.state.pendingCluster);
    this.#count(app, t);
    const level = t.event.kind.startsWith('failed') ? 'warn' : 'info';
    this.#d.log[level]({ app, event: t.event.kind, weights: after }, t.event.reason);
    return null;
  }

  #count(app: string, t: RolloutTransition): void {
    const kind = t.event!.kind;
    if (t.weights !== null && (kind === 'started' || kind === 'advanced' || kind === 'completed')) {
      this.#d.metrics.rolloutSteps.labels(app, t.state.pendingCluster).inc();
    }
    const outcome = { completed: 'succeeded', failed_rolled_back: 'rolled_back', failed_paused: 'paused_on_failure', promoted: 'promoted', rolled_back: 'aborted' }[kind as string];
    if (outcome !== undefined) this.#d.metrics.rolloutOutcomes.labels(app, outcome).inc();
  }

  /**
   * Records a refusal decided outside the controller (the admin API's body
   * validation, an unknown cluster role), so that every refused call of a
   * token holder is in the audit log.
   */
  auditRefusal(app: string, action: AuditEvent['action'], status: number, code: string, message: string, actor: string): ActionResult {
    return this.#refused(app, action, this.weightsOf(app), status, code, message, actor);
  }

  #refused(app: string, action: AuditEvent['action'], current: Weights | null, status: number, code: string, message: string, actor: string): ActionResult {
    this.#audit({ actor, app, action, from: current, to: null, reason: `${code}: ${message}`, result: 'refused' });
    return refuse(status, code, message);
  }

  /**
   * Records `candidate` (audit entry, then state file) and only then makes it
   * the state and publishes it. On failure nothing changes and the refusal
   * to answer is returned (the failure is logged and kept for status).
   */
  async #commit(candidate: TrafficState, e: Omit<AuditEvent, 'id' | 'at' | 'result' | 'version'>): Promise<ActionResult | null> {
    // Versions are never reused, even after a change whose state write failed.
    const version = Math.max(candidate.version, this.#versionFloor + 1);
    const next = version === candidate.version ? candidate : { ...candidate, version };
    const at = new Date(this.#d.clock.wallNow()).toISOString();
    try {
      await this.#d.store.commit(next, { ...e, at, result: 'ok', version });
    } catch (err) {
      if (err instanceof StateConflictError) throw err; // #exclusive re-reads and decides again
      if (err instanceof StateWriteError && err.phase === 'state') this.#versionFloor = version;
      return this.#writeFailed(e.app, e.action, err, e.actor === 'rollout');
    }
    this.#versionFloor = version;
    this.#state = next;
    this.#writeSucceeded(e.app);
    this.#publish();
    this.#d.onAudit?.({ ...e, id: 0, at, result: 'ok', version });
    return null;
  }

  #writeFailed(app: string, action: string, err: unknown, byDriver: boolean): ActionResult {
    const now = this.#d.clock.wallNow();
    const message = (err as Error)?.message ?? String(err);
    const prev = this.#writeFailure;
    const failure: StateWriteFailure = {
      message,
      sinceMs: prev?.sinceMs ?? now,
      lastMs: now,
      attempts: (prev?.attempts ?? 0) + 1,
      app,
      action,
    };
    this.#writeFailure = failure;
    this.#d.metrics.stateWriteFailures.labels(byDriver ? 'driver' : 'api').inc();
    const stalledBefore = this.#stalled.get(app);
    if (byDriver) this.#stalled.set(app, { ...failure, sinceMs: stalledBefore?.sinceMs ?? now, attempts: (stalledBefore?.attempts ?? 0) + 1 });
    // The driver retries every tick: log the first failure of a run, not every retry.
    if (!byDriver || stalledBefore === undefined) {
      this.#d.log.error(
        { app, action, store: this.#d.store.where, err: message },
        byDriver
          ? 'TRAFFIC STATE NOT SAVED: rollout step not taken; the rollout stays on its step and retries every tick'
          : 'TRAFFIC STATE NOT SAVED: change refused; traffic unchanged',
      );
    }
    return refuse(
      503,
      'STATE_WRITE_FAILED',
      `the traffic state could not be saved in ${this.#d.store.where} (${message}); nothing was changed`,
    );
  }

  #writeSucceeded(app: string): void {
    const stalled = this.#stalled.get(app);
    if (stalled !== undefined) {
      this.#stalled.delete(app);
      this.#d.log.info({ app, attempts: stalled.attempts }, 'traffic state saved again; rollout moves on');
    }
    if (this.#writeFailure !== null) {
      this.#d.log.info({ store: this.#d.store.where, failedWrites: this.#writeFailure.attempts }, 'traffic state writes work again');
      this.#writeFailure = null;
    }
  }

  /**
   * At start: the newest versioned audit entry may name a change whose state
   * write never happened (the process died between the two writes, or the
   * write failed and so did the `failed` entry). Mark it `failed` (with its
   * version, so it is marked once) so the audit log says what traffic really
   * did, and never reuse its version.
   */
  #reconcileAudit(loaded: TrafficState | null, damaged: boolean): void {
    let last: AuditEvent | null;
    try {
      last = this.#d.store.lastVersionedEvent();
    } catch (err) {
      this.#d.log.error({ err: (err as Error).message }, 'could not read the audit log');
      return;
    }
    const savedVersion = loaded?.version ?? 0;
    this.#versionFloor = Math.max(savedVersion, last?.version ?? 0);
    if (damaged || last === null || last.result !== 'ok' || (last.version ?? 0) <= savedVersion) return;
    const reason = `not applied: event #${last.id} (version ${last.version}) was recorded but the state file was not written (${
      loaded === null ? 'there is no state file' : `the state file is at version ${savedVersion}`
    }); traffic unchanged`;
    this.#d.log.warn({ app: last.app, event: last.id }, reason);
    this.#audit({ actor: 'gateway', app: last.app, action: last.action, from: last.from, to: null, reason, result: 'failed', version: last.version! });
  }

  #audit(e: Omit<AuditEvent, 'id' | 'at'>): void {
    try {
      const entry = { ...e, at: new Date(this.#d.clock.wallNow()).toISOString() };
      this.#d.store.appendAudit(entry);
      this.#d.onAudit?.(entry as AuditEvent);
    } catch (err) {
      this.#d.log.error({ err: (err as Error).message }, 'could not append to the audit log');
    }
  }

  #publish(): void {
    const clusters = this.#clusterNames();
    const weights = new Map<string, Weights>();
    for (const [app, t] of Object.entries(this.#state.apps)) {
      if (validateWeights(t.weights, clusters) === null) weights.set(app, t.weights);
    }
    this.#d.reconciler.setWeights(weights);
  }

  #clusterNames(): string[] {
    return this.#d.reconciler.config.clusters.map((c) => c.name);
  }

  /**
   * The driver period: TICK_MS, or a tenth of the shortest interval of a
   * progressing rollout (at least MIN_TICK_MS). Gates are judged on every
   * tick, so with a fixed 1 s period a rollout with a sub-second interval
   * would act on a failed gate only after several intervals.
   */
  #tickDelay(): number {
    let d = TICK_MS;
    for (const t of Object.values(this.#state.apps)) {
      const r = t.rollout;
      if (r !== null && r.phase === 'progressing') d = Math.min(d, Math.max(MIN_TICK_MS, Math.floor(r.policy.intervalMs / TICKS_PER_INTERVAL)));
    }
    return d;
  }

  #reschedule(): void {
    if (!this.#running) return;
    if (this.#timer !== null) this.#d.clock.clearTimeout(this.#timer);
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = this.#d.clock.setTimeout(() => {
      this.#timer = null;
      if (!this.#running) return;
      this.tick().then(
        () => undefined,
        (err: unknown) => this.#d.log.error({ err: (err as Error).message }, 'rollout driver tick failed'),
      );
      if (this.#running && this.#timer === null) this.#schedule();
    }, this.#tickDelay());
    this.#timer.unref?.();
  }
}

function refuse(status: number, code: string, message: string): ActionResult {
  return { ok: false, status, code, message };
}

function withAllClusters(w: Weights, clusters: readonly string[]): Weights {
  const out: Record<string, number> = {};
  for (const c of clusters) out[c] = w[c] ?? 0;
  return out;
}

function sameWeights(a: Weights, b: Weights): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if ((a[k] ?? 0) !== (b[k] ?? 0)) return false;
  return true;
}
