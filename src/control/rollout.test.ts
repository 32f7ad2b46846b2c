import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RolloutPolicy } from '../config/types.ts';
import {
  describeRollout,
  gateFailures,
  isRolloutActive,
  pauseRollout,
  promoteRollout,
  restartStepTimer,
  resumeRollout,
  rollbackRollout,
  startRollout,
  stepRollout,
  validateRolloutPolicy,
  ROLLOUT_LIMITS,
} from './rollout.ts';
import { ROLLOUT_LIMITS as SCHEMA_ROLLOUT_LIMITS } from '../config/schema.ts';
import type { RolloutResult, RolloutState } from './rollout.ts';
import type { StatsSnapshot } from './step-stats.ts';

const T0 = 1_700_000_000_000;
const S = 1000;

const POLICY: RolloutPolicy = {
  steps: [5, 25, 50, 100],
  intervalMs: 30 * S,
  maxErrorRate: 0.02,
  maxP99LatencyMs: 5000,
  maxTtfbP99Ms: null,
  minRequests: 50,
  onFailure: 'rollback',
};

function obs(p: Partial<StatsSnapshot> = {}): StatsSnapshot {
  const requests = p.requests ?? 100;
  const errors = p.errors ?? 0;
  return {
    requests,
    errors,
    errorRate: requests === 0 ? 0 : errors / requests,
    p99LatencyMs: p.p99LatencyMs ?? 200,
    p99TtfbMs: p.p99TtfbMs ?? null,
    shed: 0,
  };
}

const GOOD = obs();

function ok(r: RolloutResult): Extract<RolloutResult, { ok: true }> {
  if (!r.ok) assert.fail(`refused: ${r.code} ${r.message}`);
  return r;
}

function started(policy: RolloutPolicy = POLICY, weights = { blue: 100, green: 0 }): RolloutState {
  return ok(startRollout('llm-app', weights, 'green', policy, T0)).state;
}

describe('validateRolloutPolicy', () => {
  const cases: Array<[string, Partial<RolloutPolicy>, string | null]> = [
    ['default', {}, null],
    ['single 100 step', { steps: [100] }, null],
    ['empty steps', { steps: [] }, 'steps must not be empty'],
    ['not ascending', { steps: [5, 5, 100] }, 'steps must be strictly ascending, got 5,5,100'],
    ['last not 100', { steps: [5, 50] }, 'the last step must be 100, got 50'],
    ['fraction', { steps: [2.5, 100] }, 'steps must be integers 1..100, got 2.5'],
    ['zero step', { steps: [0, 100] }, 'steps must be integers 1..100, got 0'],
    ['interval 0', { intervalMs: 0 }, 'interval must be > 0'],
    ['error rate 2', { maxErrorRate: 2 }, 'max_error_rate must be within 0..1'],
    ['latency 0', { maxP99LatencyMs: 0 }, 'max_p99_latency must be > 0'],
    ['ttfb 0', { maxTtfbP99Ms: 0 }, 'max_ttfb_p99 must be > 0 when set'],
    ['min requests -1', { minRequests: -1 }, 'min_requests must be an integer >= 0'],
    // Upper bounds (issue 7): an interval of 11,400 years left a rollout that never moves.
    ['interval 24h', { intervalMs: 24 * 3600 * S }, null],
    ['interval 11,400 years', { intervalMs: 11_400 * 365.25 * 24 * 3600 * S }, 'interval must be at most 24h (got 99932400h)'],
    ['interval 24h + 1 ms', { intervalMs: 24 * 3600 * S + 1 }, 'interval must be at most 24h (got 86400001 ms)'],
    ['interval 25h', { intervalMs: 25 * 3600 * S }, 'interval must be at most 24h (got 25h)'],
    ['latency 2h', { maxP99LatencyMs: 2 * 3600 * S }, 'max_p99_latency must be at most 1h (got 2h)'],
    ['ttfb 90m', { maxTtfbP99Ms: 90 * 60 * S }, 'max_ttfb_p99 must be at most 1h (got 90m)'],
    ['min requests 1e7', { minRequests: 10_000_000 }, 'min_requests must be at most 1000000 (got 10000000)'],
  ];
  for (const [name, patch, want] of cases) {
    it(name, () => assert.equal(validateRolloutPolicy({ ...POLICY, ...patch }), want));
  }
  it('bounded: false skips the upper bounds (a state file saved before them still loads)', () => {
    assert.equal(validateRolloutPolicy({ ...POLICY, intervalMs: 1e15 }, { bounded: false }), null);
    assert.equal(validateRolloutPolicy({ ...POLICY, intervalMs: 0 }, { bounded: false }), 'interval must be > 0');
  });
  it('the config file has the same bounds (config/schema.ts)', () => {
    assert.equal(ROLLOUT_LIMITS.maxIntervalMs, SCHEMA_ROLLOUT_LIMITS.maxIntervalMs);
    assert.equal(ROLLOUT_LIMITS.maxLatencyMs, SCHEMA_ROLLOUT_LIMITS.maxLatencyMs);
    assert.equal(ROLLOUT_LIMITS.maxMinRequests, SCHEMA_ROLLOUT_LIMITS.maxMinRequests);
  });
  it('startRollout refuses an unbounded interval with INVALID_POLICY naming the field', () => {
    const r = startRollout('app', { blue: 100, green: 0 }, 'green', { ...POLICY, intervalMs: 1e15 }, T0);
    assert.ok(!r.ok);
    assert.equal(r.code, 'INVALID_POLICY');
    assert.match(r.message, /^invalid rollout policy: interval must be at most 24h/);
  });
});

describe('startRollout', () => {
  it('applies the first step at once, between the active and pending cluster', () => {
    const r = ok(startRollout('llm-app', { blue: 100, green: 0 }, 'green', POLICY, T0));
    assert.deepEqual(r.weights, { blue: 95, green: 5 });
    assert.equal(r.state.activeCluster, 'blue');
    assert.equal(r.state.pendingCluster, 'green');
    assert.equal(r.state.phase, 'progressing');
    assert.equal(r.state.stepIndex, 0);
    assert.equal(r.state.trafficRoutedPercent, 5);
    assert.equal(r.state.stepStartedAtMs, T0);
    assert.equal(r.state.startedAtMs, T0);
    assert.equal(r.resetStats, true);
    assert.equal(r.event?.kind, 'started');
    assert.match(r.event.reason, /from blue to green started: steps 5,25,50,100 every 30s; green at 5%/);
    assert.equal(isRolloutActive(r.state), true);
  });

  it('picks the cluster holding the weight as active; zero-weight third clusters are fine', () => {
    const r = ok(startRollout('a', { red: 0, blue: 100, green: 0 }, 'green', POLICY, T0));
    assert.equal(r.state.activeCluster, 'blue');
    assert.deepEqual(r.weights, { blue: 95, green: 5 });
    const r2 = ok(startRollout('a', { blue: 10, green: 90 }, 'blue', POLICY, T0));
    assert.equal(r2.state.activeCluster, 'green');
    assert.deepEqual(r2.weights, { green: 75, blue: 25 });
  });

  it('skips steps at or below the pending cluster\'s current weight', () => {
    const r = ok(startRollout('a', { blue: 75, green: 25 }, 'green', POLICY, T0));
    assert.equal(r.state.stepIndex, 2);
    assert.deepEqual(r.weights, { blue: 50, green: 50 });
    assert.match(r.event!.reason, /steps up to 25% skipped/);
  });

  it('completes at once when the only remaining step is 100', () => {
    const r = ok(startRollout('a', { blue: 40, green: 60 }, 'green', POLICY, T0));
    assert.equal(r.state.phase, 'succeeded');
    assert.deepEqual(r.weights, { blue: 0, green: 100 });
    assert.equal(isRolloutActive(r.state), false);
    const single = ok(startRollout('a', { blue: 100, green: 0 }, 'green', { ...POLICY, steps: [100] }, T0));
    assert.equal(single.state.phase, 'succeeded');
    assert.deepEqual(single.weights, { blue: 0, green: 100 });
  });

  const refusals: Array<[string, Record<string, number>, string, Partial<RolloutPolicy>, string]> = [
    ['unknown cluster', { blue: 100, green: 0 }, 'purple', {}, 'UNKNOWN_CLUSTER'],
    ['already at target', { blue: 0, green: 100 }, 'green', {}, 'ALREADY_AT_TARGET'],
    ['third cluster has weight', { blue: 70, green: 0, red: 30 }, 'green', {}, 'OTHER_CLUSTER_HAS_WEIGHT'],
    ['bad policy', { blue: 100, green: 0 }, 'green', { steps: [5, 50] }, 'INVALID_POLICY'],
    ['only one cluster', { green: 0 }, 'green', {}, 'UNKNOWN_CLUSTER'],
  ];
  for (const [name, weights, to, patch, code] of refusals) {
    it(`refuses: ${name}`, () => {
      const r = startRollout('a', weights, to, { ...POLICY, ...patch }, T0);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.equal(r.code, code);
        assert.ok(r.message.length > 0);
      }
    });
  }
});

describe('stepRollout', () => {
  it('happy path: holds each step for the interval, then advances to 100 and succeeds', () => {
    let s = started();
    const trail: Array<[number, Record<string, number> | null, string | null]> = [];
    // [time offset, observation] ticks every 10 s for 2 minutes.
    for (let t = 10 * S; t <= 120 * S; t += 10 * S) {
      const r = stepRollout(s, GOOD, T0 + t);
      if (r.event !== null || r.weights !== null) trail.push([t / S, r.weights, r.event?.kind ?? null]);
      if (r.resetStats) assert.equal(r.state.stepStartedAtMs, T0 + t);
      s = r.state;
    }
    assert.deepEqual(trail, [
      [30, { blue: 75, green: 25 }, 'advanced'],
      [60, { blue: 50, green: 50 }, 'advanced'],
      [90, { blue: 0, green: 100 }, 'completed'],
    ]);
    assert.equal(s.phase, 'succeeded');
    assert.equal(s.trafficRoutedPercent, 100);
    assert.equal(s.stepIndex, 3);
    assert.equal(s.startedAtMs, T0);
    assert.equal(s.updatedAtMs, T0 + 90 * S);
  });

  it('advancing resets stats; the reason carries the measured numbers', () => {
    const r = stepRollout(started(), GOOD, T0 + 30 * S);
    assert.equal(r.resetStats, true);
    assert.equal(r.event?.reason, 'gates passed at 5% (100 requests, error rate 0, p99 200 ms); green 5% → 25%');
  });

  const timing: Array<{ name: string; at: number; o: StatsSnapshot; phase: string; weights: Record<string, number> | null; event: string | null }> = [
    { name: 'before the interval: nothing', at: 29_999, o: GOOD, phase: 'progressing', weights: null, event: null },
    { name: 'at the interval: advance', at: 30 * S, o: GOOD, phase: 'progressing', weights: { blue: 75, green: 25 }, event: 'advanced' },
    { name: 'min-requests hold at the interval', at: 30 * S, o: obs({ requests: 49 }), phase: 'progressing', weights: null, event: null },
    { name: 'min-requests hold long after', at: 3600 * S, o: obs({ requests: 0 }), phase: 'progressing', weights: null, event: null },
    { name: 'few requests, all failing: still a hold (not enough evidence)', at: 30 * S, o: obs({ requests: 10, errors: 10 }), phase: 'progressing', weights: null, event: null },
    { name: 'error gate fails before the interval ends', at: 5 * S, o: obs({ requests: 120, errors: 37 }), phase: 'rolled_back', weights: { blue: 100, green: 0 }, event: 'failed_rolled_back' },
    { name: 'error rate exactly at the threshold passes', at: 30 * S, o: obs({ requests: 100, errors: 2 }), phase: 'progressing', weights: { blue: 75, green: 25 }, event: 'advanced' },
    { name: 'latency gate', at: 30 * S, o: obs({ p99LatencyMs: 6200 }), phase: 'rolled_back', weights: { blue: 100, green: 0 }, event: 'failed_rolled_back' },
    { name: 'ttfb not gated when unset', at: 30 * S, o: obs({ p99TtfbMs: 99_999 }), phase: 'progressing', weights: { blue: 75, green: 25 }, event: 'advanced' },
    { name: 'clock went backwards: nothing', at: -5 * S, o: GOOD, phase: 'progressing', weights: null, event: null },
  ];
  for (const c of timing) {
    it(c.name, () => {
      const r = stepRollout(started(), c.o, T0 + c.at);
      assert.equal(r.state.phase, c.phase);
      assert.deepEqual(r.weights, c.weights);
      assert.equal(r.event?.kind ?? null, c.event);
    });
  }

  it('error gate: rolled back within one interval, reason has measured numbers vs thresholds', () => {
    let s = stepRollout(started(), GOOD, T0 + 30 * S).state; // now at 25 %
    const r = stepRollout(s, obs({ requests: 120, errors: 37 }), T0 + 31 * S);
    assert.equal(r.state.phase, 'rolled_back');
    assert.equal(r.state.trafficRoutedPercent, 0);
    assert.deepEqual(r.weights, { blue: 100, green: 0 });
    assert.equal(
      r.event?.reason,
      'gate failed for green at step 25% over 120 requests: error rate 0.3083 > 0.02 (37 of 120 requests); rolled back to blue 100%',
    );
    assert.equal(r.state.reason, r.event?.reason);
    s = r.state;
    // Finished: further ticks do nothing.
    const after = stepRollout(s, GOOD, T0 + 999 * S);
    assert.equal(after.state, s);
    assert.equal(after.event, null);
  });

  it('ttfb gate when set; several failures are all reported', () => {
    const s = started({ ...POLICY, maxTtfbP99Ms: 1000 });
    const r = stepRollout(s, obs({ p99TtfbMs: 2300, p99LatencyMs: 7000 }), T0 + 30 * S);
    assert.equal(r.event?.kind, 'failed_rolled_back');
    assert.match(r.event.reason, /p99 latency 7000 ms > 5000 ms; p99 time to first byte 2300 ms > 1000 ms/);
    const pass = stepRollout(s, obs({ p99TtfbMs: 900 }), T0 + 30 * S);
    assert.equal(pass.event?.kind, 'advanced');
  });

  it('on_failure pause: failed_paused with weights kept; resume retries the step', () => {
    const s = started({ ...POLICY, onFailure: 'pause' });
    const r = stepRollout(s, obs({ errors: 50 }), T0 + 10 * S);
    assert.equal(r.state.phase, 'failed_paused');
    assert.equal(r.weights, null);
    assert.equal(r.event?.kind, 'failed_paused');
    assert.match(r.state.reason!, /error rate 0.5 > 0.02.*paused \(weights kept\)/);
    assert.equal(isRolloutActive(r.state), true);
    // Paused: ticks do nothing.
    assert.equal(stepRollout(r.state, GOOD, T0 + 100 * S).event, null);
    const resumed = ok(resumeRollout(r.state, T0 + 200 * S));
    assert.equal(resumed.state.phase, 'progressing');
    assert.equal(resumed.state.reason, null);
    assert.equal(resumed.resetStats, true);
    assert.match(resumed.event!.reason, /after a failed gate/);
    assert.equal(stepRollout(resumed.state, GOOD, T0 + 229 * S).event, null);
    assert.equal(stepRollout(resumed.state, GOOD, T0 + 230 * S).event?.kind, 'advanced');
  });
});

describe('operator actions', () => {
  it('pause stops stepping; resume restarts the current step timer', () => {
    const s = started();
    const p = ok(pauseRollout(s, T0 + 20 * S));
    assert.equal(p.state.phase, 'paused');
    assert.equal(p.weights, null);
    assert.equal(p.event?.kind, 'paused');
    assert.equal(stepRollout(p.state, GOOD, T0 + 40 * S).weights, null);
    // Even a failing observation does nothing while paused.
    assert.equal(stepRollout(p.state, obs({ errors: 100 }), T0 + 40 * S).state.phase, 'paused');
    const r = ok(resumeRollout(p.state, T0 + 50 * S));
    assert.equal(r.state.stepStartedAtMs, T0 + 50 * S);
    assert.equal(r.resetStats, true);
    assert.equal(r.weights, null);
    assert.equal(stepRollout(r.state, GOOD, T0 + 79 * S).weights, null);
    assert.deepEqual(stepRollout(r.state, GOOD, T0 + 80 * S).weights, { blue: 75, green: 25 });
  });

  it('promote jumps to 100 and succeeds, from progressing, paused or failed_paused', () => {
    const s = started();
    const paused = ok(pauseRollout(s, T0 + S)).state;
    const failed = stepRollout(started({ ...POLICY, onFailure: 'pause' }), obs({ errors: 50 }), T0 + S).state;
    for (const from of [s, paused, failed]) {
      const r = ok(promoteRollout(from, T0 + 2 * S));
      assert.equal(r.state.phase, 'succeeded');
      assert.equal(r.state.trafficRoutedPercent, 100);
      assert.deepEqual(r.weights, { blue: 0, green: 100 });
      assert.equal(r.event?.kind, 'promoted');
      assert.equal(r.state.updatedAtMs, T0 + 2 * S);
    }
  });

  it('rollback returns all weight to the active cluster at once', () => {
    const s = stepRollout(started(), GOOD, T0 + 30 * S).state;
    const r = ok(rollbackRollout(s, T0 + 31 * S));
    assert.equal(r.state.phase, 'rolled_back');
    assert.deepEqual(r.weights, { blue: 100, green: 0 });
    assert.equal(r.event?.kind, 'rolled_back');
    assert.match(r.event.reason, /rolled back by operator at green 25%: blue 100%/);
  });

  it('restartStepTimer restarts a progressing step after a restart, leaves others alone', () => {
    const s = started();
    const r = restartStepTimer(s, T0 + 500 * S);
    assert.equal(r.state.stepStartedAtMs, T0 + 500 * S);
    assert.equal(r.resetStats, true);
    assert.equal(r.weights, null);
    const paused = ok(pauseRollout(s, T0)).state;
    assert.equal(restartStepTimer(paused, T0 + 500 * S).state, paused);
  });

  const invalid: Array<[string, (s: RolloutState) => RolloutState, (s: RolloutState) => RolloutResult, string]> = [
    ['pause twice', (s) => ok(pauseRollout(s, T0)).state, (s) => pauseRollout(s, T0), 'ALREADY_PAUSED'],
    ['pause a failed_paused', (s) => ({ ...s, phase: 'failed_paused' }), (s) => pauseRollout(s, T0), 'ALREADY_PAUSED'],
    ['resume a running one', (s) => s, (s) => resumeRollout(s, T0), 'NOT_PAUSED'],
    ['pause a succeeded one', (s) => ok(promoteRollout(s, T0)).state, (s) => pauseRollout(s, T0), 'NOT_RUNNING'],
    ['resume a rolled back one', (s) => ok(rollbackRollout(s, T0)).state, (s) => resumeRollout(s, T0), 'NOT_RUNNING'],
    ['promote a rolled back one', (s) => ok(rollbackRollout(s, T0)).state, (s) => promoteRollout(s, T0), 'NOT_RUNNING'],
    ['rollback a succeeded one', (s) => ok(promoteRollout(s, T0)).state, (s) => rollbackRollout(s, T0), 'NOT_RUNNING'],
    ['rollback twice', (s) => ok(rollbackRollout(s, T0)).state, (s) => rollbackRollout(s, T0), 'NOT_RUNNING'],
  ];
  for (const [name, setup, act, code] of invalid) {
    it(`refuses: ${name}`, () => {
      const before = setup(started());
      const r = act(before);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.code, code);
    });
  }
});

describe('gateFailures', () => {
  it('ignores null percentiles (no samples)', () => {
    assert.deepEqual(gateFailures(POLICY, { ...GOOD, p99LatencyMs: null }), []);
  });
});

describe('describeRollout (why a rollout is where it is)', () => {
  const r = () => started(); // green at 5%, step 1 of 4, interval 30 s, min_requests 50
  const cases: Array<[string, () => RolloutState, StatsSnapshot, number, Partial<{ holding: string | null; left: number | null; next: number | null; summary: RegExp; failing: number }>]> = [
    ['no traffic at all: holding, never silent', r, obs({ requests: 0 }), T0 + 10 * S, { holding: 'holding: 0 of 50 requests', left: 20 * S, next: 25, summary: /^holding: 0 of 50 requests; next step to 25% in 20 s at the earliest/ }],
    ['interval over, too few requests', r, obs({ requests: 12 }), T0 + 40 * S, { holding: 'holding: 12 of 50 requests', left: 0, summary: /interval is over; the next step to 25% comes once 50 requests/ }],
    ['enough requests, interval running', r, obs({ requests: 80 }), T0 + 5 * S, { holding: null, left: 25 * S, summary: /^gates passing so far \(80 requests.*next step to 25% in 25 s$/ }],
    ['gate failing', r, obs({ requests: 100, errors: 10 }), T0 + 5 * S, { failing: 1, summary: /^gate failing \(error rate 0\.1 > 0\.02/ }],
    ['paused: the reason', () => ok(pauseRollout(r(), T0 + S)).state, obs(), T0 + 2 * S, { holding: null, left: null, summary: /paused by operator at green 5%/ }],
    ['succeeded', () => ok(promoteRollout(r(), T0 + S)).state, obs(), T0 + 2 * S, { next: null, summary: /promoted by operator/ }],
  ];
  for (const [name, state, o, now, want] of cases) {
    it(name, () => {
      const d = describeRollout(state(), o, now);
      if ('holding' in want) assert.equal(d.holding, want.holding);
      if ('left' in want) assert.equal(d.intervalLeftMs, want.left);
      if ('next' in want) assert.equal(d.nextStepPercent, want.next);
      if (want.summary) assert.match(d.summary, want.summary);
      if (want.failing !== undefined) assert.equal(d.failing.length, want.failing);
    });
  }
});
