import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RolloutPolicy } from '../config/types.ts';
import { startRollout, stepRollout } from './rollout.ts';
import type { RolloutState } from './rollout.ts';
import {
  ignoredConfigWeights,
  applyRolloutTransition,
  applyWeights,
  auditActionFor,
  emptyTrafficState,
  parseAuditEvent,
  parseTrafficState,
  serializeTrafficState,
  validateWeights,
} from './traffic-state.ts';
import type { TrafficState } from './traffic-state.ts';

const T0 = 1_700_000_000_000;
const POLICY: RolloutPolicy = {
  steps: [5, 25, 50, 100],
  intervalMs: 30_000,
  maxErrorRate: 0.02,
  maxP99LatencyMs: 5000,
  maxTtfbP99Ms: null,
  minRequests: 50,
  onFailure: 'rollback',
};

function withApp(): TrafficState {
  return applyWeights(emptyTrafficState(), 'llm-app', { blue: 100, green: 0 });
}

function rollout(): RolloutState {
  const r = startRollout('llm-app', { blue: 100, green: 0 }, 'green', POLICY, T0);
  assert.ok(r.ok);
  return r.state;
}

describe('validateWeights', () => {
  const known = ['blue', 'green'];
  const cases: Array<[string, unknown, string | null]> = [
    ['ok', { blue: 30, green: 70 }, null],
    ['single cluster', { green: 100 }, null],
    ['sum 99', { blue: 30, green: 69 }, 'weights must sum to 100, got 99'],
    ['fraction', { blue: 30.5, green: 69.5 }, 'weight for "blue" must be an integer 0..100, got 30.5'],
    ['negative', { blue: -10, green: 110 }, 'weight for "blue" must be an integer 0..100, got -10'],
    ['string', { blue: '100' }, 'weight for "blue" must be an integer 0..100, got "100"'],
    ['unknown', { purple: 100 }, 'unknown cluster "purple" (known: blue, green)'],
    ['empty', {}, 'weights must name at least one cluster'],
    ['array', [100], 'weights must be an object of cluster: weight'],
    ['null', null, 'weights must be an object of cluster: weight'],
  ];
  for (const [name, w, want] of cases) it(name, () => assert.equal(validateWeights(w, known), want));
  it('skips the cluster check with null', () => assert.equal(validateWeights({ purple: 100 }, null), null));
});

describe('applyWeights', () => {
  it('bumps the version and fills unnamed clusters with 0, keeping order', () => {
    const s0 = withApp();
    assert.equal(s0.version, 1);
    const s1 = applyWeights(s0, 'llm-app', { green: 100 });
    assert.equal(s1.version, 2);
    assert.deepEqual(Object.entries(s1.apps['llm-app']!.weights), [['blue', 0], ['green', 100]]);
    assert.deepEqual(s0.apps['llm-app']!.weights, { blue: 100, green: 0 }, 'input not mutated');
  });
  it('keeps the app\'s rollout', () => {
    const s = applyRolloutTransition(withApp(), { state: rollout(), weights: null, event: null, resetStats: false });
    assert.notEqual(applyWeights(s, 'llm-app', { blue: 100 }).apps['llm-app']!.rollout, null);
  });
});

describe('applyRolloutTransition', () => {
  it('stores the rollout state and its weights', () => {
    const r = startRollout('llm-app', { blue: 100, green: 0 }, 'green', POLICY, T0);
    assert.ok(r.ok);
    const s = applyRolloutTransition(withApp(), r);
    assert.deepEqual(s.apps['llm-app']!.weights, { blue: 95, green: 5 });
    assert.equal(s.apps['llm-app']!.rollout, r.state);
    assert.equal(s.version, 2);
  });
  it('returns the same state object when nothing changed', () => {
    const r = startRollout('llm-app', { blue: 100, green: 0 }, 'green', POLICY, T0);
    assert.ok(r.ok);
    const s = applyRolloutTransition(withApp(), r);
    const tick = stepRollout(r.state, { requests: 0, errors: 0, errorRate: 0, p99LatencyMs: null, p99TtfbMs: null, shed: 0 }, T0 + 1);
    assert.equal(applyRolloutTransition(s, tick), s);
  });
});

describe('serialize / parse', () => {
  it('round-trips a state with a rollout', () => {
    const r = startRollout('llm-app', { blue: 100, green: 0 }, 'green', { ...POLICY, maxTtfbP99Ms: 800 }, T0);
    assert.ok(r.ok);
    const s = applyRolloutTransition(applyWeights(withApp(), 'other', { blue: 0, green: 100 }), r);
    const back = parseTrafficState(serializeTrafficState(s));
    assert.ok(!(back instanceof Error), String(back));
    assert.deepEqual(back, s);
  });

  const good = JSON.parse(serializeTrafficState(applyRolloutTransition(withApp(), { state: rollout(), weights: null, event: null, resetStats: false }))) as Record<string, any>;
  const mutate = (f: (x: any) => void): string => {
    const c = structuredClone(good);
    f(c);
    return JSON.stringify(c);
  };
  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{"format": 1, "vers', /^not JSON/],
    ['empty file', '', /^not JSON/],
    ['array', '[]', /not an object/],
    ['wrong format', mutate((c) => (c.format = 2)), /unsupported format 2/],
    ['no version', mutate((c) => delete c.version), /version/],
    ['bad weights', mutate((c) => (c.apps['llm-app'].weights.blue = 99)), /apps\.llm-app\.weights: weights must sum to 100/],
    ['bad phase', mutate((c) => (c.apps['llm-app'].rollout.phase = 'exploded')), /apps\.llm-app\.rollout: phase/],
    ['rollout app mismatch', mutate((c) => (c.apps['llm-app'].rollout.app = 'x')), /app must be "llm-app"/],
    ['bad policy', mutate((c) => (c.apps['llm-app'].rollout.policy.steps = [5, 50])), /policy: the last step must be 100/],
    ['stepIndex out of range', mutate((c) => (c.apps['llm-app'].rollout.stepIndex = 9)), /stepIndex/],
    ['missing timestamps', mutate((c) => delete c.apps['llm-app'].rollout.stepStartedAtMs), /stepStartedAtMs/],
  ];
  for (const [name, json, re] of bad) {
    it(`rejects: ${name}`, () => {
      const r = parseTrafficState(json);
      assert.ok(r instanceof Error);
      assert.match(r.message, re);
    });
  }
});

describe('audit', () => {
  it('maps rollout events to audit actions', () => {
    assert.equal(auditActionFor('started'), 'rollout_start');
    assert.equal(auditActionFor('advanced'), 'rollout_step');
    assert.equal(auditActionFor('failed_rolled_back'), 'rollout_failed');
    assert.equal(auditActionFor('failed_paused'), 'rollout_failed');
    assert.equal(auditActionFor('rolled_back'), 'rollout_rollback');
    assert.equal(auditActionFor('completed'), 'rollout_complete');
  });
  const line = { id: 3, at: '2024-01-01T00:00:00.000Z', actor: 'admin', app: 'a', action: 'set_weights', from: { blue: 100 }, to: { green: 100 }, reason: 'switch', result: 'ok' };
  it('parses a good line', () => assert.deepEqual(parseAuditEvent(JSON.stringify(line)), line));
  const badLines: Array<[string, string]> = [
    ['torn', JSON.stringify(line).slice(0, 20)],
    ['unknown action', JSON.stringify({ ...line, action: 'explode' })],
    ['id 0', JSON.stringify({ ...line, id: 0 })],
    ['bad result', JSON.stringify({ ...line, result: 'maybe' })],
    ['bad from', JSON.stringify({ ...line, from: 5 })],
  ];
  for (const [name, l] of badLines) it(`rejects ${name}`, () => assert.equal(parseAuditEvent(l), null));
});

describe('ignoredConfigWeights (config weights edited after state exists)', () => {
  const state: TrafficState = { version: 3, apps: { llm: { weights: { blue: 100, green: 0 }, rollout: null } } };
  const m = (entries: Array<[string, Record<string, number> | null]>) => new Map(entries);
  const cases: Array<[string, ReturnType<typeof m>, ReturnType<typeof m>, RegExp | null]> = [
    ['unchanged config', m([['llm', { blue: 100 }]]), m([['llm', { blue: 100 }]]), null],
    ['changed to what the state holds', m([['llm', { blue: 50, green: 50 }]]), m([['llm', { blue: 100, green: 0 }]]), null],
    ['changed, state differs', m([['llm', { blue: 100 }]]), m([['llm', { blue: 50, green: 50 }]]), /^applications\.llm\.weights changed .* keeps blue=100 green=0 .*traffic set llm blue=50 green=50/],
    ['set for the first time', m([]), m([['llm', { green: 100 }]]), /applications\.llm\.weights/],
    ['defaults changed', m([['*', { blue: 100 }]]), m([['*', { green: 100 }]]), /applications\."\*"\.weights changed .*app "llm"/],
    ['weights removed', m([['llm', { green: 100 }]]), m([]), null],
  ];
  for (const [name, prev, next, want] of cases) {
    it(name, () => {
      const w = ignoredConfigWeights(prev, next, state);
      if (want === null) assert.deepEqual(w, []);
      else {
        assert.equal(w.length, 1);
        assert.match(w[0]!, want);
      }
    });
  }
});
