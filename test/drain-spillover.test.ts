// A cluster at weight 0 drains (idle connections closed, safe_to_delete once
// its streams end); spill-over sends a full cluster's excess to the other side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { send, openStream } from './conformance/http-client.ts';
import { adminCall, startStack, waitFor } from './helpers/stack.ts';

interface ClusterStatus {
  name: string;
  drained: boolean;
  safe_to_delete: boolean;
  open_streams: number;
  in_flight: number;
  endpoints: Array<{ connections: number }>;
}

test('after a switch the old cluster drains: idle connections close, safe_to_delete once streams end', async (t) => {
  const s = await startStack();
  t.after(() => s.close());
  await Promise.all(Array.from({ length: 6 }, () => send(`${s.url}/llm`)));
  const blue = s.gw.reconciler.clusters.get('blue')!;
  assert.ok(blue.endpoints.reduce((n, e) => n + e.idleConnections, 0) > 0, 'pooled connections to blue');
  const stream = await openStream(`${s.url}/llm/stream?tokens=15&interval_ms=30`);
  const ended = new Promise((r) => stream.res.once('end', r));
  stream.res.resume();
  const r = await adminCall(s, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 0, green: 100 } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const r2 = await adminCall(s, 'PUT', '/api/v1/apps/default/weights', { weights: { blue: 0, green: 100 } });
  assert.equal(r2.status, 200);
  const statusOf = async () => ((await adminCall(s, 'GET', '/api/v1/status')).json['clusters'] as ClusterStatus[]).find((c) => c.name === 'blue')!;
  let st = await statusOf();
  assert.equal(st.drained, true);
  assert.equal(st.open_streams, 1);
  assert.equal(st.safe_to_delete, false, 'a stream is still running on blue');
  assert.equal(blue.endpoints.reduce((n, e) => n + e.idleConnections, 0), 0, 'idle connections closed at once');
  await ended;
  await waitFor(() => blue.inFlight === 0, 2000, 'stream finished');
  st = await statusOf();
  assert.equal(st.safe_to_delete, true);
  assert.equal(blue.endpoints.reduce((n, e) => n + e.connections, 0), 0, 'the stream connection closed when it ended');
  assert.equal((await send(`${s.url}/llm`)).headers['x-serve-cluster'], 'green');
});

test('spill-over: when the chosen cluster is full, the excess goes to the other cluster instead of 503', async (t) => {
  const common = { apps: { llm: { latency_ms: 250 } } };
  const s = await startStack({
    ...common,
    gateway: {
      admission: { queue_size: 0 },
      applications: { '*': { weights: { blue: 100 } }, llm: { weights: { blue: 100, green: 0 }, spillover: true } },
    },
  });
  t.after(() => s.close());
  const results = await Promise.all(Array.from({ length: 14 }, () => send(`${s.url}/llm`)));
  const by = new Map<string, number>();
  for (const r of results) {
    const k = r.status === 200 ? String(r.headers['x-serve-cluster']) : `${r.status}${r.headers['x-gateway-flag'] ?? ''}`;
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(by), { blue: 8, green: 6 });

  const plain = await startStack({ ...common, gateway: { admission: { queue_size: 0 } } });
  t.after(() => plain.close());
  const shed = await Promise.all(Array.from({ length: 14 }, () => send(`${plain.url}/llm`)));
  assert.equal(shed.filter((r) => r.headers['x-gateway-flag'] === 'QF').length, 6, 'without spill-over the excess is shed');
});
