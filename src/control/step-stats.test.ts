import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EMPTY_SNAPSHOT, EMPTY_WINDOW, StepStats, StepStatsRegistry, mergeWindows } from './step-stats.ts';
import type { StepOutcome } from './step-stats.ts';

const ok = (latencyMs: number, ttfbMs: number | null = null): StepOutcome => ({
  upstreamError: false,
  latencyMs,
  ttfbMs,
  shed: false,
});

describe('StepStats', () => {
  it('starts empty', () => {
    assert.deepEqual(new StepStats().snapshot(), EMPTY_SNAPSHOT);
  });

  it('counts requests and upstream errors; shed requests count for neither', () => {
    const s = new StepStats();
    for (let i = 0; i < 90; i++) s.record(ok(10));
    for (let i = 0; i < 10; i++) s.record({ upstreamError: true, latencyMs: 2, ttfbMs: null, shed: false });
    for (let i = 0; i < 500; i++) s.record({ upstreamError: false, latencyMs: 30_000, ttfbMs: null, shed: true });
    const snap = s.snapshot();
    assert.equal(snap.requests, 100);
    assert.equal(snap.errors, 10);
    assert.equal(snap.errorRate, 0.1);
    assert.equal(snap.shed, 500);
    // The shed requests' 30 s waits do not reach the latency gate either.
    assert.ok(snap.p99LatencyMs !== null && snap.p99LatencyMs <= 10);
    assert.equal(snap.p99TtfbMs, null);
  });

  const quantileCases: Array<{ name: string; values: number[]; lo: number; hi: number }> = [
    { name: 'one value is exact (capped by max)', values: [250], lo: 250, hi: 250 },
    { name: 'uniform 1..1000 ms', values: Array.from({ length: 1000 }, (_, i) => i + 1), lo: 990, hi: 990 * 1.045 },
    { name: '99 fast + 1 slow: p99 is fast', values: [...new Array<number>(99).fill(5), 8000], lo: 5, hi: 5 * 1.045 },
    { name: '98 fast + 2 slow: p99 is slow', values: [...new Array<number>(98).fill(5), 8000, 8000], lo: 8000, hi: 8000 },
    { name: 'sub-millisecond values', values: [0.2, 0.3, 0.5], lo: 0.5, hi: 0.5 },
    { name: 'beyond the last bucket reports the max', values: [1e9], lo: 1e9, hi: 1e9 },
    { name: 'zero and NaN-safe', values: [0, 0, 0], lo: 0, hi: 0 },
  ];
  for (const c of quantileCases) {
    it(`p99: ${c.name}`, () => {
      const s = new StepStats();
      for (const v of c.values) s.record(ok(v, v));
      const p = s.snapshot().p99LatencyMs;
      assert.ok(p !== null && p >= c.lo && p <= c.hi, `p99 ${p} not in [${c.lo}, ${c.hi}]`);
      assert.equal(s.snapshot().p99TtfbMs, p);
    });
  }

  it('never under-reports p99 (errs high by at most one bucket)', () => {
    let x = 12345;
    const values: number[] = [];
    for (let i = 0; i < 5000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      values.push(1 + (x % 100_000) / 7);
    }
    const s = new StepStats();
    for (const v of values) s.record(ok(v));
    const exact = [...values].sort((a, b) => a - b)[Math.ceil(0.99 * values.length) - 1]!;
    const p = s.snapshot().p99LatencyMs!;
    assert.ok(p >= exact && p <= exact * 1.045, `p99 ${p} vs exact ${exact}`);
  });

  it('reset starts a new window', () => {
    const s = new StepStats();
    s.record(ok(100, 50));
    s.record({ upstreamError: false, latencyMs: 1, ttfbMs: null, shed: true });
    s.reset();
    assert.deepEqual(s.snapshot(), EMPTY_SNAPSHOT);
    s.record(ok(7));
    assert.equal(s.snapshot().requests, 1);
    assert.equal(s.snapshot().p99LatencyMs, 7);
  });
});

describe('StepStatsRegistry', () => {
  it('keeps one window per (app, cluster) and resets only the one asked', () => {
    const r = new StepStatsRegistry();
    assert.equal(r.get('a', 'blue'), r.get('a', 'blue'));
    r.get('a', 'blue').record(ok(1));
    r.get('a', 'green').record(ok(1));
    r.get('b', 'green').record(ok(1));
    r.resetFor('a', 'green');
    assert.equal(r.snapshotFor('a', 'blue').requests, 1);
    assert.equal(r.snapshotFor('a', 'green').requests, 0);
    assert.equal(r.snapshotFor('b', 'green').requests, 1);
  });
  it('snapshotFor / resetFor on unknown pairs are empty no-ops', () => {
    const r = new StepStatsRegistry();
    r.resetFor('x', 'y');
    assert.deepEqual(r.snapshotFor('x', 'y'), EMPTY_SNAPSHOT);
  });
});

describe('mergeWindows: what the leader judges when every replica measured part of a step', () => {
  it('gives exactly what one window fed every outcome gives (counts and p99 from summed buckets)', () => {
    const all = new StepStats();
    const parts = [new StepStats(), new StepStats(), new StepStats()];
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 3000; i++) {
      const o: StepOutcome = { upstreamError: rnd() < 0.03, latencyMs: 1 + rnd() * rnd() * 900, ttfbMs: rnd() < 0.1 ? null : rnd() * 50, shed: rnd() < 0.01 };
      all.record(o);
      parts[i % 3]!.record(o);
    }
    const merged = mergeWindows(parts.map((p) => JSON.parse(JSON.stringify(p.window()))));
    assert.deepEqual(merged, all.snapshot());
    assert.ok(merged.requests > 2900 && merged.errors > 0 && merged.p99LatencyMs !== null);
  });
  it('is empty for no windows, and ignores buckets that cannot exist', () => {
    assert.deepEqual(mergeWindows([]), EMPTY_SNAPSHOT);
    const w = { ...EMPTY_WINDOW, requests: 1, latency: { buckets: [[-1, 5], [1e9, 5], [3, 1]] as Array<[number, number]>, max: 2 } };
    assert.equal(mergeWindows([w]).p99LatencyMs, 2 ** (3 / 16));
  });
});
