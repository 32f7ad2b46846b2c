// Issue 4, must show: an atomic switch under load. 16 clients loop requests
// to /llm; in the middle the operator switches llm blue → green with one PUT.
// Zero failed requests; nothing that started after the switch answered
// reached blue; nothing that finished before the switch was called reached
// green; blue's completed count stops once its in-flight requests drained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminCall, startStack, waitFor } from './helpers/stack.ts';

interface Rec {
  readonly start: number;
  readonly end: number;
  readonly status: number;
  readonly cluster: string;
}

const CLIENTS = 16;
const PHASE_MS = 1500; // load before and after the switch: ~3 s in all

test('atomic switch under load: 16 clients, zero failures, no mixing across the switch', async () => {
  const stack = await startStack({ apps: { llm: { latency_ms: 10 } } });
  try {
    const recs: Rec[] = [];
    const errors: string[] = [];
    let stop = false;
    const client = async (id: number) => {
      let n = 0;
      while (!stop) {
        const start = performance.now();
        let status = 0;
        let cluster = '';
        try {
          const res = await fetch(`${stack.url}/llm/c${id}/${n++}`);
          await res.arrayBuffer();
          status = res.status;
          cluster = res.headers.get('x-serve-cluster') ?? '';
        } catch (err) {
          errors.push((err as Error).message);
        }
        recs.push({ start, end: performance.now(), status, cluster });
      }
    };
    const loadStart = performance.now();
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));

    // Load phase 1: let the clients run against blue (a load duration, not a wait for logic).
    await waitFor(() => performance.now() - loadStart >= PHASE_MS, PHASE_MS + 1000, 'load phase 1');
    const switchStart = performance.now();
    const r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 }, reason: 'switch test' });
    const switchEnd = performance.now();
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json['weights'], { blue: 0, green: 100 });

    // Wait for blue to drain: requests admitted or queued for blue before the switch finish there,
    // so nothing may be in flight or queued for blue at the gateway, nor running in blue's sim.
    const blueTarget = stack.gw.reconciler.current!.apps.get('llm')!.targets.find((t) => t.cluster.name === 'blue')!;
    const blueDrained = () => {
      const sim = stack.sim.cluster('blue').stats().apps['llm']!;
      return blueTarget.limiter.inFlight === 0 && blueTarget.limiter.queued === 0 && blueTarget.cluster.inFlight === 0 && sim.in_flight === 0 && sim.queued === 0;
    };
    await waitFor(blueDrained, 5000, 'blue drained');
    const blueCompletedAfterDrain = stack.sim.cluster('blue').stats().apps['llm']!.completed;

    await waitFor(() => performance.now() - switchEnd >= PHASE_MS, PHASE_MS + 1000, 'load phase 2');
    stop = true;
    await Promise.all(clients);

    const blueCompletedEnd = stack.sim.cluster('blue').stats().apps['llm']!.completed;
    const greenCompletedEnd = stack.sim.cluster('green').stats().apps['llm']!.completed;
    const failed = recs.filter((x) => x.status !== 200);
    const blue = recs.filter((x) => x.cluster === 'blue');
    const green = recs.filter((x) => x.cluster === 'green');
    const startedAfter = recs.filter((x) => x.start >= switchEnd);
    const finishedBefore = recs.filter((x) => x.end <= switchStart);
    const straddling = recs.filter((x) => x.start < switchEnd && x.end > switchStart);

    console.log(
      `switch under load: ${recs.length} requests (${CLIENTS} clients, ${Math.round(performance.now() - loadStart)} ms), ` +
        `blue ${blue.length}, green ${green.length}, failed ${failed.length}; ` +
        `switch call ${(switchEnd - switchStart).toFixed(1)} ms; straddling the switch ${straddling.length} ` +
        `(blue ${straddling.filter((x) => x.cluster === 'blue').length}, green ${straddling.filter((x) => x.cluster === 'green').length}); ` +
        `sim completed blue ${blueCompletedEnd} (after drain ${blueCompletedAfterDrain}), green ${greenCompletedEnd}`,
    );

    assert.deepEqual(errors, [], 'no transport errors');
    assert.equal(failed.length, 0, `failed requests: ${JSON.stringify(failed.slice(0, 5))}`);
    assert.ok(blue.length > 100 && green.length > 100, `enough load on both sides (blue ${blue.length}, green ${green.length})`);
    assert.equal(blue.length + green.length, recs.length, 'every response names its cluster');
    assert.deepEqual(startedAfter.filter((x) => x.cluster === 'blue'), [], 'nothing started after the switch reached blue');
    assert.deepEqual(finishedBefore.filter((x) => x.cluster === 'green'), [], 'nothing finished before the switch reached green');
    assert.ok(startedAfter.length > 100, 'load continued after the switch');
    // Blue stopped growing once its in-flight requests drained, and saw exactly the requests answered by blue.
    assert.equal(blueCompletedEnd, blueCompletedAfterDrain, 'blue completed count stopped growing after the drain');
    assert.equal(blueCompletedEnd, blue.length);
    assert.equal(greenCompletedEnd, green.length);

    // The audit log records the switch.
    const ev = await adminCall(stack, 'GET', '/api/v1/events?limit=5');
    const sw = (ev.json['events'] as Array<Record<string, unknown>>).find((e) => e['action'] === 'set_weights');
    assert.ok(sw, 'set_weights event');
    assert.deepEqual(sw['from'], { blue: 100, green: 0 });
    assert.deepEqual(sw['to'], { blue: 0, green: 100 });
    assert.equal(sw['reason'], 'switch test');
    assert.equal(sw['result'], 'ok');
  } finally {
    await stack.close();
  }
});
