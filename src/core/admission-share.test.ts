import { test } from 'node:test';
import assert from 'node:assert/strict';
import { perGatewayLimit } from './admission-share.ts';

test('a replica admits the capacity divided by the replicas, rounded down, at least 1', () => {
  const cases: Array<[capacity: number, replicas: number, each: number]> = [
    [48, 1, 48],
    [48, 2, 24],
    [10, 3, 3], // 3 replicas × 3 = 9 ≤ 10; ceil would give 12 > 10
    [5, 2, 2],
    [2, 3, 1], // below one each: 1, so a scale-from-zero app can start
    [0, 2, 1],
    [7, 0, 7], // a replica count below 1 counts as 1
  ];
  for (const [capacity, replicas, each] of cases) {
    assert.equal(perGatewayLimit(capacity, replicas), each, `${capacity} over ${replicas}`);
    if (capacity >= replicas && replicas >= 1) assert.ok(each * replicas <= capacity, 'the replicas together never exceed the capacity');
  }
});
