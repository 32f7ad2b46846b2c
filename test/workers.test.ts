// `workers: 2`: two data-plane threads share the listen port and one set of
// admission counters. Serve (the simulated cluster, counting at the upstream)
// never sees more than the limit; /metrics, the status and the rollout gates'
// windows count every thread's requests; SIGTERM drains both threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { send, openStream, sseData } from './conformance/http-client.ts';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCall, startStack, waitFor } from './helpers/stack.ts';

interface WorkersStatus {
  count: number;
  threads: Array<{ index: number; running: boolean; restarts: number; requests_handled: number }>;
}

test('workers: 2 — admission stays exact across threads, and metrics, status and gate windows see both', async (t) => {
  const s = await startStack({ apps: { llm: { latency_ms: 60 } }, gateway: { workers: 2, admission: { queue_size: 1000 } } });
  t.after(() => s.close());
  const target = s.gw.reconciler.current!.apps.get('llm')!.targets[0]!;
  assert.equal(target.limit, 8, '4 max_ongoing_requests x 2 replicas');
  // 120 requests at once, each on its own connection: the kernel spreads them over both threads.
  const results = await Promise.all(Array.from({ length: 120 }, () => send(`${s.url}/llm`)));
  assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
  const st = s.sim.cluster('blue').stats().apps['llm']!;
  assert.ok(st.max_in_flight_seen <= 8, `upstream saw ${st.max_in_flight_seen} at once with two threads`);
  assert.equal(st.max_in_flight_seen, 8, 'and the capacity is used');
  assert.equal(st.rejected, 0);

  const status = await adminCall(s, 'GET', '/api/v1/status');
  const workers = status.json['workers'] as WorkersStatus;
  assert.equal(workers.count, 2);
  assert.equal(workers.threads.length, 1);
  assert.equal(workers.threads[0]!.running, true);
  const byWorker = workers.threads[0]!.requests_handled;
  const byMain = s.gw.proxy.counters.handled;
  assert.equal(byWorker + byMain, 120, `worker ${byWorker} + main ${byMain}`);
  assert.ok(byWorker > 0 && byMain > 0, `both threads took connections (worker ${byWorker}, main ${byMain})`);
  // The admission counters went back to zero: every permit was released, in whichever thread.
  assert.equal(target.limiter.inFlight, 0);
  assert.equal(target.limiter.queued, 0);

  const metrics = await fetch(`${s.admin}/metrics`, { headers: { authorization: 'Bearer test-token' } }).then((r) => r.text());
  assert.match(metrics, /serve_gateway_requests_total\{app="llm",cluster="blue",code="200",flag=""\} 120\n/);
  assert.match(metrics, /serve_gateway_request_duration_seconds_count\{app="llm",cluster="blue"\} 120\n/);
  // What a rollout gate would judge: every thread's requests.
  assert.equal(s.gw.reconciler.stats.snapshotFor('llm', 'blue').requests, 120);
});

test('workers: 2 — a full queue sheds across threads; SIGTERM drains a stream on either thread', async (t) => {
  const s = await startStack({
    apps: { llm: { latency_ms: 200, tokens: 10, token_interval_ms: 40 } },
    gateway: { workers: 2, admission: { queue_size: 4 }, shutdown: { drain_delay: '0s', grace_period: '10s' } },
  });
  t.after(() => s.close());
  // Limit 8 + queue 4 for the process: of 30 at once, 12 are served, 18 shed.
  const results = await Promise.all(Array.from({ length: 30 }, () => send(`${s.url}/llm`)));
  const ok = results.filter((r) => r.status === 200).length;
  const shed = results.filter((r) => r.status === 503 && r.headers['x-gateway-flag'] === 'QF').length;
  assert.equal(ok + shed, 30, JSON.stringify(results.map((r) => r.status)));
  assert.ok(ok >= 12, `${ok} served: the limit and the queue are the whole process's`);
  assert.ok(ok <= 12 + 8, `${ok} served`);
  // Streams on both threads (separate connections), then SIGTERM: both finish whole.
  const streams = await Promise.all(Array.from({ length: 4 }, () => openStream(`${s.url}/llm/stream?tokens=10&interval_ms=40`)));
  const bodies = streams.map(
    (st) =>
      new Promise<string>((resolve) => {
        let body = st.first;
        st.res.setEncoding('utf8');
        st.res.on('data', (c: string) => (body += c));
        st.res.on('close', () => resolve(body));
        st.res.resume();
      }),
  );
  await s.gw.shutdown();
  for (const b of await Promise.all(bodies)) {
    const frames = sseData(b);
    assert.equal(frames.length, 11, 'ten tokens and [DONE]: each stream ran to its end during the drain');
    assert.equal(frames.at(-1), '[DONE]');
  }
  const status = await send(`${s.url}/llm`).catch((e: Error) => e);
  assert.ok(status instanceof Error, 'nothing listens after the drain');
});

test('workers: 2 — a worker thread that dies holding permits gives them back and is replaced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-crash-'));
  process.env['CRASH_MARKER'] = join(dir, 'crashed');
  t.after(() => {
    delete process.env['CRASH_MARKER'];
    rmSync(dir, { recursive: true, force: true });
  });
  const s = await startStack({
    apps: { llm: { latency_ms: 300 } },
    gateway: { workers: 2, admission: { queue_size: 1000 } },
    gatewayOptions: { workerThreadUrl: new URL('./helpers/crashing-worker.ts', import.meta.url) },
  });
  t.after(() => s.close());
  const target = s.gw.reconciler.current!.apps.get('llm')!.targets[0]!;
  // Enough connections that the worker thread gets several: it dies holding their permits.
  const first = await Promise.all(Array.from({ length: 24 }, () => send(`${s.url}/llm`).catch((e: Error) => e)));
  assert.ok(existsSync(process.env['CRASH_MARKER']!), 'the worker crashed');
  assert.ok(first.some((r) => r instanceof Error), "the dead thread's connections were cut");
  const restarted = async () => ((await adminCall(s, 'GET', '/api/v1/status')).json['workers'] as WorkersStatus).threads[0]!;
  let w = await restarted();
  for (const deadline = Date.now() + 30_000; !(w.running && w.restarts === 1); w = await restarted()) {
    assert.ok(Date.now() < deadline, `worker not replaced: ${JSON.stringify(w)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Its permits came back: nothing is in flight, so the counters are at zero (a leak would keep them up).
  await waitFor(() => target.limiter.inFlight === 0 && target.limiter.queued === 0, 10_000, `permits back (in flight ${target.limiter.inFlight})`);
  assert.ok(s.logs.lines.some((l) => l.msg === 'data-plane worker exited; starting a new one' && (l.obj as { permitsFreed?: number }).permitsFreed! > 0));
  // The whole capacity serves again, across both threads, and never more than it.
  const again = await Promise.all(Array.from({ length: 40 }, () => send(`${s.url}/llm`)));
  assert.deepEqual([...new Set(again.map((r) => r.status))], [200]);
  assert.ok(s.sim.cluster('blue').stats().apps['llm']!.max_in_flight_seen <= 8);
});
