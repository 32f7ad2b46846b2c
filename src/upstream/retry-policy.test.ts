import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyUpstreamError, decideRetry, type RetryInput } from './retry-policy.ts';

const base: RetryInput = {
  failure: 'connect',
  attempts: 1,
  maxAttempts: 3,
  replayable: true,
  idempotent: true,
  downstreamStarted: false,
  activeRequests: 100,
  activeRetries: 0,
  budgetRatio: 0.2,
  minRetryConcurrency: 3,
};

test('retry table', () => {
  const cases: Array<[Partial<RetryInput>, string]> = [
    [{}, 'retry'],
    [{ failure: 'backpressure' }, 'retry'],
    [{ failure: 'reset' }, 'fail'],
    [{ failure: 'timeout' }, 'fail'],
    [{ downstreamStarted: true }, 'fail'],
    [{ replayable: false }, 'fail'],
    [{ attempts: 3 }, 'fail'],
    [{ activeRetries: 20 }, 'fail'],
    [{ activeRetries: 19 }, 'retry'],
    [{ activeRequests: 1, activeRetries: 2 }, 'retry'],
    [{ activeRequests: 1, activeRetries: 3 }, 'fail'],
    [{ failure: 'stale_connection', activeRetries: 1000 }, 'retry'],
    [{ failure: 'stale_connection', attempts: 2 }, 'retry'],
    [{ failure: 'stale_connection', attempts: 3 }, 'fail'],
    [{ failure: 'stale_connection', replayable: false }, 'fail'],
    // The request was written to Serve: a POST (or any request with a body) may have run.
    [{ failure: 'stale_connection', idempotent: false }, 'fail'],
    // retry.max_attempts 1 means no retry of any kind.
    [{ failure: 'stale_connection', maxAttempts: 1 }, 'fail'],
    [{ failure: 'connect', maxAttempts: 1 }, 'fail'],
  ];
  for (const [over, want] of cases) assert.equal(decideRetry({ ...base, ...over }), want, JSON.stringify(over));
});

test('classification', () => {
  assert.equal(classifyUpstreamError('ECONNREFUSED', true, false), 'connect');
  assert.equal(classifyUpstreamError('UND_ERR_CONNECT_TIMEOUT', false, false), 'connect');
  assert.equal(classifyUpstreamError('UND_ERR_HEADERS_TIMEOUT', false, false), 'timeout');
  assert.equal(classifyUpstreamError('UND_ERR_SOCKET', true, false), 'stale_connection');
  assert.equal(classifyUpstreamError('ECONNRESET', true, true), 'reset');
  assert.equal(classifyUpstreamError('UND_ERR_SOCKET', false, false), 'reset');
});
