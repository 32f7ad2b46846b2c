import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildSplit,
  pickCluster,
  splitPoint,
  stickyKeyFromCookieHeader,
  stickyPoint,
} from './traffic-split.ts';
import { seededRandom } from '../../test/helpers/seeded-random.ts';

function randomKeys(n: number, seed: number): string[] {
  const r = seededRandom(seed);
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push(`session-${Math.floor(r() * 1e12).toString(36)}-${i}`);
  return keys;
}

describe('buildSplit', () => {
  it('orders by config and fills missing clusters with 0', () => {
    const s = buildSplit(['blue', 'green', 'red'], { green: 30, blue: 70 });
    assert.deepEqual(s, { clusters: ['blue', 'green', 'red'], weights: [70, 30, 0] });
  });
  const bad: Array<[string, Record<string, number>]> = [
    ['sum 90', { blue: 60, green: 30 }],
    ['fraction', { blue: 50.5, green: 49.5 }],
    ['negative', { blue: 110, green: -10 }],
    ['unknown cluster', { blue: 50, purple: 50 }],
  ];
  for (const [name, w] of bad) {
    it(`throws on ${name}`, () => {
      assert.throws(() => buildSplit(['blue', 'green'], w), RangeError);
    });
  }
});

describe('pickCluster', () => {
  const s = buildSplit(['a', 'b', 'c'], { a: 20, b: 0, c: 80 });
  const cases: Array<[number, number]> = [
    [0, 0],
    [19.999, 0],
    [20, 2], // b has weight 0: never picked, even at its boundary
    [99.999, 2],
    [100, 2], // clamped
    [-1, 0], // clamped
  ];
  for (const [point, want] of cases) {
    it(`point ${point} → index ${want}`, () => assert.equal(pickCluster(s, point), want));
  }
  it('skips zero-weight clusters at the start and end', () => {
    const z = buildSplit(['a', 'b', 'c'], { a: 0, b: 100, c: 0 });
    for (const p of [0, 0.5, 50, 99.99, 100]) assert.equal(pickCluster(z, p), 1);
  });
  it('returns -1 for an empty split', () => {
    assert.equal(pickCluster({ clusters: [], weights: [] }, 10), -1);
  });
  it('non-sticky picks follow the weights', () => {
    const r = seededRandom(7);
    const split = buildSplit(['blue', 'green'], { blue: 75, green: 25 });
    let green = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) if (pickCluster(split, splitPoint(null, r())) === 1) green++;
    assert.ok(Math.abs(green / n - 0.25) < 0.02, `green share ${green / n}`);
  });
});

describe('stickyPoint', () => {
  it('is stable: pinned values, the same in every process (no seed)', () => {
    // A change here moves every sticky session to a new point: do it on purpose only.
    const got = ['', 'user-1', 'user-2', 'abc'].map((k) => stickyPoint(k).toFixed(6));
    assert.deepEqual(got, ['66.892219', '46.703404', '19.865136', '11.244570']);
    assert.equal(stickyPoint('user-42'), stickyPoint('user-' + String(42)));
  });
  it('is in [0, 100) with fractional precision', () => {
    for (const k of randomKeys(2000, 1)) {
      const p = stickyPoint(k);
      assert.ok(p >= 0 && p < 100, `${k} → ${p}`);
    }
    const distinct = new Set(randomKeys(2000, 2).map(stickyPoint));
    assert.ok(distinct.size > 1990);
  });
  it('spreads sequential keys evenly over ten deciles', () => {
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) buckets[Math.floor(stickyPoint(`user-${i}`) / 10)]! += 1;
    for (const b of buckets) assert.ok(b > 850 && b < 1150, `decile count ${b}`);
  });
});

describe('sticky cohorts', () => {
  const keys = randomKeys(1000, 42);
  const order = ['blue', 'green'];
  const sweep = [0, 5, 25, 50, 100];

  it('the set of keys on the target only grows as weight moves to it (blue → green)', () => {
    let prev = new Set<string>();
    for (const g of sweep) {
      const split = buildSplit(order, { blue: 100 - g, green: g });
      const onGreen = new Set(keys.filter((k) => pickCluster(split, stickyPoint(k)) === 1));
      for (const k of prev) assert.ok(onGreen.has(k), `${k} flipped back to blue at green=${g}`);
      prev = onGreen;
    }
    assert.equal(prev.size, keys.length);
  });

  it('also only grows when the target is the first cluster (green → blue)', () => {
    let prev = new Set<string>();
    for (const b of sweep) {
      const split = buildSplit(order, { blue: b, green: 100 - b });
      const onBlue = new Set(keys.filter((k) => pickCluster(split, stickyPoint(k)) === 0));
      for (const k of prev) assert.ok(onBlue.has(k));
      prev = onBlue;
    }
    assert.equal(prev.size, keys.length);
  });

  it('shares track the weights (±10 points at every step, 50/50 included)', () => {
    for (const g of sweep) {
      const split = buildSplit(order, { blue: 100 - g, green: g });
      const onGreen = keys.filter((k) => pickCluster(split, stickyPoint(k)) === 1).length;
      const share = (onGreen / keys.length) * 100;
      assert.ok(Math.abs(share - g) <= 10, `green=${g}: share ${share}`);
    }
  });

  it('a key keeps its cluster while the weights stay put', () => {
    const split = buildSplit(order, { blue: 50, green: 50 });
    for (const k of keys.slice(0, 50)) {
      assert.equal(pickCluster(split, splitPoint(k, 0.99)), pickCluster(split, splitPoint(k, 0.01)));
    }
  });
});

describe('stickyKeyFromCookieHeader', () => {
  const cases: Array<[string | undefined, string, string | null]> = [
    [undefined, 'sid', null],
    ['', 'sid', null],
    ['sid=abc', 'sid', 'abc'],
    ['a=1; sid=abc; b=2', 'sid', 'abc'],
    ['a=1;sid=abc', 'sid', 'abc'],
    ['xsid=1; sid=2', 'sid', '2'],
    ['sidx=1; sid=2', 'sid', '2'],
    ['sid=', 'sid', null],
    ['sid = abc ', 'sid', 'abc'],
    ['sid="quoted value"', 'sid', 'quoted value'],
    ['sid=a=b', 'sid', 'a=b'],
    ['sid=first; sid=second', 'sid', 'first'],
    ['other=1', 'sid', null],
    ['sid', 'sid', null],
    ['; ; sid=z;', 'sid', 'z'],
    ['sid=abc', '', null],
  ];
  for (const [header, name, want] of cases) {
    it(`${JSON.stringify(header)} [${name}] → ${JSON.stringify(want)}`, () => {
      assert.equal(stickyKeyFromCookieHeader(header, name), want);
    });
  }
});
