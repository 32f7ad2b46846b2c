import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAvailable, newEndpointHealth, recordFailure, recordProbe, recordSuccess } from './outlier.ts';

const policy = { ejectAfterFailures: 3, ejectBaseMs: 1000, ejectMaxMs: 5000 };

test('unprobed endpoints are available; a failed probe removes them', () => {
  const h = newEndpointHealth();
  assert.equal(isAvailable(h, 0), true);
  recordProbe(h, false, 'This node is being drained.');
  assert.equal(isAvailable(h, 0), false);
  recordProbe(h, true, 'success');
  assert.equal(isAvailable(h, 0), true);
});

test('ejection after N consecutive failures, with growing back-off capped at max', () => {
  const h = newEndpointHealth();
  recordFailure(h, 0, policy);
  recordFailure(h, 0, policy);
  assert.equal(isAvailable(h, 0), true);
  recordFailure(h, 0, policy);
  assert.equal(isAvailable(h, 999), false);
  assert.equal(isAvailable(h, 1000), true);
  recordFailure(h, 1000, policy);
  assert.equal(h.ejectedUntilMs, 3000);
  for (let t = 3000, i = 0; i < 5; i++, t = h.ejectedUntilMs) recordFailure(h, t, policy);
  assert.ok(h.ejectedUntilMs - 0 <= 30_000);
  const last = h.ejectedUntilMs;
  recordFailure(h, last, policy);
  assert.equal(h.ejectedUntilMs - last, 5000);
});

test('a success resets the failure streak; a good probe lifts an ejection', () => {
  const h = newEndpointHealth();
  recordFailure(h, 0, policy);
  recordFailure(h, 0, policy);
  recordSuccess(h);
  recordFailure(h, 0, policy);
  assert.equal(isAvailable(h, 0), true);
  recordFailure(h, 0, policy);
  recordFailure(h, 0, policy);
  assert.equal(isAvailable(h, 10), false);
  recordProbe(h, true, 'success');
  assert.equal(isAvailable(h, 10), true);
});
