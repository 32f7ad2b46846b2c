import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickEndpoint } from './balancer.ts';

const ep = (inFlight: number, ok = true) => ({ inFlight, ok });
const avail = (e: { ok: boolean }) => e.ok;

test('least in-flight wins; ties rotate with the cursor', () => {
  assert.equal(pickEndpoint([ep(3), ep(1), ep(2)], avail, 0, -1), 1);
  const eps = [ep(0), ep(0), ep(0)];
  assert.deepEqual([0, 1, 2, 3].map((c) => pickEndpoint(eps, avail, c, -1)), [0, 1, 2, 0]);
});

test('unavailable endpoints are skipped; none available gives -1', () => {
  assert.equal(pickEndpoint([ep(0, false), ep(5)], avail, 0, -1), 1);
  assert.equal(pickEndpoint([ep(0, false), ep(5, false)], avail, 0, -1), -1);
  assert.equal(pickEndpoint([], avail, 0, -1), -1);
});

test('the excluded endpoint is used only when it is the sole available one', () => {
  assert.equal(pickEndpoint([ep(0), ep(9)], avail, 0, 0), 1);
  assert.equal(pickEndpoint([ep(0), ep(9, false)], avail, 0, 0), 0);
});
