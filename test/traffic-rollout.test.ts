// Issue 4, must show: progressive rollouts end to end through the admin API,
// driven by the gateway's own driver (short intervals) with load running:
// a target that starts failing is rolled back as soon as its gate has seen
// min_requests (not at the end of the interval) and the audit log says why; the happy path reaches 100;
// pause/resume/promote/rollback act at once; on_failure: pause keeps weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminCall, startStack, waitFor, type Stack } from './helpers/stack.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A few clients looping on /llm until stopped; counts answers per cluster and status. */
function load(stack: Stack, clients = 4) {
  const byCluster: Record<string, number> = {};
  const byStatus: Record<number, number> = {};
  let stop = false;
  const run = async (id: number) => {
    let n = 0;
    while (!stop) {
      try {
        const res = await fetch(`${stack.url}/llm/r${id}/${n++}`);
        await res.arrayBuffer();
        byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
        const c = res.headers.get('x-serve-cluster') ?? '-';
        byCluster[c] = (byCluster[c] ?? 0) + 1;
      } catch {
        byStatus[0] = (byStatus[0] ?? 0) + 1;
      }
    }
  };
  const all = Array.from({ length: clients }, (_, i) => run(i));
  return {
    byCluster,
    byStatus,
    async stop() {
      stop = true;
      await Promise.all(all);
    },
  };
}

const rollout = (stack: Stack) => stack.gw.traffic.rolloutOf('llm');
const events = async (stack: Stack): Promise<Json[]> => (await adminCall(stack, 'GET', '/api/v1/events?limit=50')).json['events'] as Json[];

test('a rollout whose target starts failing is rolled back as soon as the gate has min_requests, not at the end of the interval, and the audit log says why', async () => {
  const stack = await startStack();
  const l = load(stack);
  try {
    // An interval of an hour: the gate must act on min_requests, long before the
    // interval ends, so a rollback that comes at all proves it (no wall-clock assertion).
    const r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', {
      to: 'green',
      steps: [50, 100],
      interval: '1h',
      min_requests: 10,
      max_error_rate: 0.05,
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.deepEqual(r.json['weights'], { blue: 50, green: 50 });
    assert.equal(r.json['rollout']['phase'], 'progressing');

    // The target starts failing.
    const faultAt = performance.now();
    stack.sim.cluster('green').setFaults('llm', { errorRate: 1 });
    await waitFor(() => rollout(stack)?.phase === 'rolled_back', 60_000, 'automatic rollback (long before the 1 h interval)');
    const tookMs = performance.now() - faultAt;
    assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
    console.log(`rollback: green failing → rolled back in ${tookMs.toFixed(0)} ms (interval 1 h, min_requests 10)`);

    const failed = (await events(stack)).find((e) => e['action'] === 'rollout_failed');
    assert.ok(failed, 'rollout_failed in the audit log');
    assert.equal(failed['actor'], 'rollout');
    assert.match(failed['reason'], /gate failed for green at step 50%/);
    assert.match(failed['reason'], /error rate [\d.]+ > 0\.05/);
    assert.match(failed['reason'], /rolled back to blue 100%/);
    assert.deepEqual(failed['from'], { blue: 50, green: 50 });
    assert.deepEqual(failed['to'], { blue: 100, green: 0 });

    // After the rollback every new request goes to blue again.
    const before = { ...l.byCluster };
    await waitFor(() => (l.byCluster['blue'] ?? 0) - (before['blue'] ?? 0) >= 40, 3000, 'blue traffic after rollback');
    const greenNow = l.byCluster['green'] ?? 0;
    await waitFor(() => (l.byCluster['blue'] ?? 0) - (before['blue'] ?? 0) >= 80, 3000, 'more blue traffic');
    assert.equal(l.byCluster['green'] ?? 0, greenNow, 'no request reaches green after the rollback');

    const metrics = await (await fetch(`${stack.admin}/metrics`)).text();
    assert.match(metrics, /serve_gateway_rollout_outcomes_total\{app="llm",outcome="rolled_back"\} 1/);
    assert.match(metrics, /serve_gateway_traffic_weight\{app="llm",cluster="blue"\} 100/);
  } finally {
    await l.stop();
    await stack.close();
  }
});

test('happy path: the driver walks 20 → 50 → 100 and the rollout succeeds', async () => {
  const stack = await startStack();
  const l = load(stack);
  try {
    const r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [20, 50, 100], interval: '200ms', min_requests: 10 });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    await waitFor(() => rollout(stack)?.phase === 'succeeded', 5000, 'rollout succeeded');
    assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 0, green: 100 });
    const ev = (await events(stack)).filter((e) => e['app'] === 'llm').map((e) => e['action']);
    assert.deepEqual(ev.slice(0, 3), ['rollout_complete', 'rollout_step', 'rollout_start']);
    const status = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
    const app = (status.json['apps'] as Json[]).find((a) => a['name'] === 'llm')!;
    assert.equal(app['rollout']['phase'], 'succeeded');
    assert.deepEqual(app['weights'], { blue: 0, green: 100 });
    await l.stop();
    assert.deepEqual(Object.keys(l.byStatus), ['200'], `only 200s during the rollout: ${JSON.stringify(l.byStatus)}`);
    const metrics = await (await fetch(`${stack.admin}/metrics`)).text();
    assert.match(metrics, /serve_gateway_rollout_steps_total\{app="llm",cluster="green"\} 3/);
    assert.match(metrics, /serve_gateway_rollout_outcomes_total\{app="llm",outcome="succeeded"\} 1/);
  } finally {
    await l.stop();
    await stack.close();
  }
});

test('pause, resume, promote and rollback act at once (driven by tick())', async () => {
  const stack = await startStack();
  try {
    // A long interval: nothing advances on its own; tick() is called directly.
    let r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [10, 50, 100], interval: '1h', min_requests: 0 });
    assert.equal(r.status, 201);
    assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 90, green: 10 });

    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/pause');
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json['rollout']['phase'], 'paused');
    assert.deepEqual(r.json['weights'], { blue: 90, green: 10 });
    await stack.gw.traffic.tick();
    assert.equal(rollout(stack)?.phase, 'paused');
    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/pause');
    assert.equal(r.status, 409);
    assert.equal(r.json['error']['code'], 'ALREADY_PAUSED');

    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/resume');
    assert.equal(r.status, 200);
    assert.equal(r.json['rollout']['phase'], 'progressing');
    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/resume');
    assert.equal(r.json['error']['code'], 'NOT_PAUSED');

    // Manual weights are refused while the rollout owns them.
    r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 100 } });
    assert.equal(r.status, 409);
    assert.equal(r.json['error']['code'], 'ROLLOUT_IN_PROGRESS');

    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/promote');
    assert.equal(r.status, 200);
    assert.equal(r.json['rollout']['phase'], 'succeeded');
    assert.deepEqual(r.json['weights'], { blue: 0, green: 100 });
    // Takes effect for the very next request.
    const res = await fetch(`${stack.url}/llm/after-promote`);
    await res.arrayBuffer();
    assert.equal(res.headers.get('x-serve-cluster'), 'green');
    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/promote');
    assert.equal(r.status, 409);
    assert.equal(r.json['error']['code'], 'NOT_RUNNING');

    // Back the other way, then an operator rollback.
    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'blue', steps: [25, 100], interval: '1h' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.deepEqual(r.json['weights'], { blue: 25, green: 75 });
    r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/rollback');
    assert.equal(r.status, 200);
    assert.equal(r.json['rollout']['phase'], 'rolled_back');
    assert.deepEqual(r.json['weights'], { blue: 0, green: 100 });
    const res2 = await fetch(`${stack.url}/llm/after-rollback`);
    await res2.arrayBuffer();
    assert.equal(res2.headers.get('x-serve-cluster'), 'green');

    const ev = (await events(stack)).filter((e) => e['app'] === 'llm').map((e) => `${e['action']}:${e['result']}`);
    assert.deepEqual(ev.reverse(), [
      'rollout_start:ok',
      'rollout_pause:ok',
      'rollout_pause:refused',
      'rollout_resume:ok',
      'rollout_resume:refused',
      'set_weights:refused',
      'rollout_promote:ok',
      'rollout_promote:refused',
      'rollout_start:ok',
      'rollout_rollback:ok',
    ]);
    r = await adminCall(stack, 'POST', '/api/v1/apps/default/rollout/pause');
    assert.equal(r.status, 409);
    assert.equal(r.json['error']['code'], 'NO_ROLLOUT');
  } finally {
    await stack.close();
  }
});

test('on_failure: pause keeps the weights and waits for the operator', async () => {
  const stack = await startStack();
  try {
    stack.sim.cluster('green').setFaults('llm', { errorRate: 1 });
    // Readiness looks at status and health, not error rate: the rollout starts.
    const r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [50, 100], interval: '1h', min_requests: 5, on_failure: 'pause' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    // Drive the step with requests (about half reach green, all of those fail), then tick.
    let green = 0;
    for (let i = 0; green < 5 && i < 200; i++) {
      const res = await fetch(`${stack.url}/llm/p${i}`);
      await res.arrayBuffer();
      if (res.headers.get('x-serve-cluster') === 'green') green++;
    }
    await stack.gw.traffic.tick();
    const ro = rollout(stack)!;
    assert.equal(ro.phase, 'failed_paused');
    assert.match(ro.reason!, /error rate 1 > 0\.02/);
    assert.match(ro.reason!, /paused \(weights kept\)/);
    assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 50, green: 50 });
    const failed = (await events(stack)).find((e) => e['action'] === 'rollout_failed')!;
    assert.equal(failed['to'], null);
    // The operator decides: roll back.
    const rb = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/rollback');
    assert.equal(rb.status, 200);
    assert.deepEqual(rb.json['weights'], { blue: 100, green: 0 });
  } finally {
    await stack.close();
  }
});

test('a rollout whose target loses every endpoint is rolled back (requests failed over count against it)', async () => {
  const stack = await startStack();
  const l = load(stack, 4);
  try {
    const r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [20, 50, 100], interval: '2s', min_requests: 10 });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    await stack.sim.cluster('green').killProxy(0);
    await waitFor(() => rollout(stack)?.phase === 'rolled_back', 5000, 'rollback after the target went down');
    assert.match(String(rollout(stack)?.reason), /error rate/);
    await l.stop();
    assert.deepEqual(Object.keys(l.byStatus), ['200'], `clients saw only 200s (failover): ${JSON.stringify(l.byStatus)}`);
  } finally {
    await l.stop();
    await stack.close();
  }
});
