// Data plane end to end: real gateway, real sockets, simulated Serve clusters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { send, sendJson, openStream, sseData } from './conformance/http-client.ts';
import { buildConfig, startStack, waitFor, LogRecorder } from './helpers/stack.ts';
import { startGateway } from '../src/main.ts';

const NO_ROOT = `
applications:
  - name: llm
    route_prefix: /llm
    import_path: app:llm
    deployments:
      - name: LLMServer
        max_ongoing_requests: 4
        num_replicas: 2
`;

test('routes by prefix, keeps path and query, adds request id and cluster headers', async (t) => {
  const s = await startStack();
  t.after(() => s.close());
  const r = await sendJson(`${s.url}/llm/v1/chat?x=1&y=%2F`, { prompt: 'hi' });
  assert.equal(r.status, 200);
  const body = JSON.parse(r.body);
  assert.equal(body.app, 'llm');
  assert.equal(body.path, '/llm/v1/chat');
  assert.equal(body.query, 'x=1&y=%2F');
  assert.equal(r.headers['x-serve-cluster'], 'blue');
  assert.match(String(r.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  assert.equal(body.request_id, r.headers['x-request-id'], 'the id sent upstream is the one returned');
  const own = await send(`${s.url}/llm`, { headers: { 'x-request-id': 'client-id-1' } });
  assert.equal(own.headers['x-request-id'], 'client-id-1');
  assert.equal(JSON.parse(own.body).request_id, 'client-id-1');
  const root = await send(`${s.url}/llmx`);
  assert.equal(JSON.parse(root.body).app, 'default', '/llmx is not under /llm (segment boundary)');
});

test('no route: 404 with Serve text and flag NR', async (t) => {
  const s = await startStack({ serveYaml: NO_ROOT });
  t.after(() => s.close());
  const r = await send(`${s.url}/nowhere/x?q=1`, { headers: { host: 'llm.example.com' } });
  assert.equal(r.status, 404);
  assert.equal(r.headers['x-gateway-flag'], 'NR');
  assert.equal(r.body, "Path '/nowhere/x' not found. Ping http://llm.example.com/-/routes for available routes.");
  assert.ok(r.headers['x-request-id']);
  const routes = await send(`${s.url}/-/routes`);
  assert.equal(routes.body, '{"/llm":"llm"}');
  const health = await send(`${s.url}/-/healthz`);
  assert.equal(health.body, 'success');
});

test('SSE streams chunk by chunk with headers before the first token', async (t) => {
  const s = await startStack();
  t.after(() => s.close());
  const stream = await openStream(`${s.url}/llm/stream?tokens=5&interval_ms=30`);
  assert.equal(stream.res.headers['content-type']?.startsWith('text/event-stream'), true);
  assert.equal(stream.res.headers['x-serve-cluster'], 'blue');
  const chunks: string[] = [stream.first];
  stream.res.on('data', (c: Buffer) => chunks.push(c.toString()));
  stream.res.resume();
  await new Promise((r) => stream.res.once('end', r));
  const data = sseData(chunks.join(''));
  assert.equal(data.length, 6);
  assert.equal(data.at(-1), '[DONE]');
  assert.ok(chunks.length >= 5, `tokens arrive as separate chunks (got ${chunks.length})`);
});

test('a client that disconnects mid-stream cancels upstream and frees the slot', async (t) => {
  const s = await startStack();
  t.after(() => s.close());
  const stream = await openStream(`${s.url}/llm/stream?tokens=200&interval_ms=20`);
  const llm = () => s.sim.cluster('blue').stats().apps['llm']!;
  assert.equal(llm().in_flight, 1);
  stream.destroy();
  await waitFor(() => llm().in_flight === 0 && llm().cancelled === 1, 3000, 'upstream cancel');
  await waitFor(() => s.gw.reconciler.current!.apps.get('llm')!.targets[0]!.limiter.inFlight === 0, 3000, 'permit released');
  const after = await send(`${s.url}/llm`);
  assert.equal(after.status, 200);
  const logged = s.logs.lines.find((l) => (l.obj as { flag?: string }).flag === 'DC');
  assert.ok(logged, 'DC is access-logged');
});

test('admission never lets more than the computed limit reach Serve under a 10x burst', async (t) => {
  const s = await startStack({ apps: { llm: { latency_ms: 60 } } });
  t.after(() => s.close());
  const target = s.gw.reconciler.current!.apps.get('llm')!.targets[0]!;
  assert.equal(target.limit, 8, '4 max_ongoing_requests x 2 replicas');
  const results = await Promise.all(Array.from({ length: 80 }, () => send(`${s.url}/llm`)));
  assert.deepEqual([...new Set(results.map((r) => r.status))], [200]);
  const st = s.sim.cluster('blue').stats().apps['llm']!;
  assert.ok(st.max_in_flight_seen <= 8, `upstream saw ${st.max_in_flight_seen} at once`);
  assert.equal(st.max_in_flight_seen, 8, 'and the capacity is used');
  assert.equal(st.rejected, 0);
});

test('queue full sheds with 503 QF + Retry-After; queue timeout gives 503 QT', async (t) => {
  const s = await startStack({
    apps: { llm: { latency_ms: 300 } },
    gateway: { admission: { queue_size: 2, queue_timeout: '100ms' } },
  });
  t.after(() => s.close());
  const results = await Promise.all(Array.from({ length: 16 }, () => send(`${s.url}/llm`)));
  const byFlag = new Map<string, number>();
  for (const r of results) byFlag.set(String(r.headers['x-gateway-flag'] ?? r.status), (byFlag.get(String(r.headers['x-gateway-flag'] ?? r.status)) ?? 0) + 1);
  assert.equal(byFlag.get('200'), 8, JSON.stringify([...byFlag]));
  assert.equal(byFlag.get('QF'), 6);
  assert.equal(byFlag.get('QT'), 2);
  const qf = results.find((r) => r.headers['x-gateway-flag'] === 'QF')!;
  assert.equal(qf.status, 503);
  assert.equal(qf.headers['retry-after'], '1');
  assert.equal(qf.body, 'Request dropped due to backpressure (num_queued_requests=2, max_queued_requests=2).');
  const metrics = await (await fetch(`${s.admin}/metrics`)).text();
  assert.match(metrics, /serve_gateway_admission_rejections_total\{app="llm",cluster="blue",reason="queue_full"\} 6/);
  assert.match(metrics, /serve_gateway_requests_total\{app="llm",cluster="blue",code="503",flag="QT"\} 2/);
});

test('a queued request whose client leaves never reaches upstream', async (t) => {
  const s = await startStack({ apps: { llm: { latency_ms: 400 } } });
  t.after(() => s.close());
  const running = Array.from({ length: 8 }, () => send(`${s.url}/llm`));
  const limiter = s.gw.reconciler.current!.apps.get('llm')!.targets[0]!.limiter;
  await waitFor(() => limiter.inFlight === 8, 2000, 'capacity used');
  const req = httpRequest(`${s.url}/llm/queued-then-gone`, { agent: false });
  req.on('error', () => {});
  req.end();
  await waitFor(() => limiter.queued === 1, 2000, 'request queued');
  req.destroy();
  await waitFor(() => limiter.queued === 0, 2000, 'queue entry dropped');
  await Promise.all(running);
  const st = s.sim.cluster('blue').stats().apps['llm']!;
  assert.equal(st.completed, 8, 'only the 8 admitted requests reached Serve');
});

test('connect failure is retried on another endpoint; the dead endpoint is ejected', async (t) => {
  const s = await startStack({ gateway: { health: { probe_interval: '60s', eject_after_failures: 1 } } });
  t.after(() => s.close());
  await s.sim.cluster('blue').killProxy(0);
  const results = await Promise.all(Array.from({ length: 10 }, () => send(`${s.url}/llm`)));
  assert.deepEqual(results.map((r) => r.status), Array(10).fill(200));
  const ep0 = s.gw.reconciler.clusters.get('blue')!.endpoints[0]!;
  assert.ok(ep0.health.ejectedUntilMs > 0, 'ejected after a connect failure');
  const metrics = await (await fetch(`${s.admin}/metrics`)).text();
  assert.match(metrics, /serve_gateway_retries_total\{cluster="blue",reason="connect"\} [1-9]/);
});

test('all endpoints of the chosen cluster down: fails over to the other cluster serving the app', async (t) => {
  const s = await startStack();
  t.after(() => s.close());
  await s.sim.cluster('blue').killProxy(0);
  await s.sim.cluster('blue').killProxy(1);
  await waitFor(() => !s.gw.reconciler.clusters.get('blue')!.isServing(s.gw.clock.now()), 5000, 'blue marked down by probes');
  const r = await send(`${s.url}/llm`);
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-serve-cluster'], 'green');
});

test('a draining Serve proxy (healthz 503) gets no new requests; in-flight ones finish', async (t) => {
  const s = await startStack({ apps: { llm: { latency_ms: 200 } } });
  t.after(() => s.close());
  const slow = send(`${s.url}/llm`);
  const blue = s.sim.cluster('blue');
  await waitFor(() => blue.stats().apps['llm']!.in_flight === 1, 2000, 'in flight');
  const busy = blue.stats().proxies.findIndex((p) => p.requests === 1);
  blue.drainProxy(busy);
  const ep = s.gw.reconciler.clusters.get('blue')!.endpoints[busy]!;
  await waitFor(() => ep.health.probeOk === false, 3000, 'probe sees draining');
  const before = blue.stats().proxies[busy]!.requests;
  const more = await Promise.all(Array.from({ length: 6 }, () => send(`${s.url}/llm`)));
  assert.deepEqual(more.map((r) => r.status), Array(6).fill(200));
  assert.equal(blue.stats().proxies[busy]!.requests, before, 'no new request went to the draining proxy');
  assert.equal((await slow).status, 200, 'the in-flight request finished');
});

test('dashboard down: routing continues with the last known capacity; status says unreachable', async (t) => {
  const s = await startStack();
  t.after(() => s.close());
  const blue = s.sim.cluster('blue');
  await waitFor(() => s.gw.dashboardStates.get('blue')?.reachable === true, 3000, 'dashboard polled');
  blue.scale('llm', 3);
  await waitFor(() => s.gw.reconciler.current!.apps.get('llm')!.targets[0]!.limit === 12, 3000, 'live replicas picked up');
  await blue.stopDashboard();
  await waitFor(() => s.gw.dashboardStates.get('blue')?.reachable === false, 3000, 'poll failure seen');
  assert.equal(s.gw.reconciler.current!.apps.get('llm')!.targets[0]!.limit, 12, 'capacity kept');
  assert.equal((await send(`${s.url}/llm`)).status, 200);
  const status = await (await fetch(`${s.admin}/api/v1/status`)).json() as { clusters: Array<{ name: string; dashboard: { reachable: boolean } }>; apps: Array<{ name: string; clusters: Array<{ status: string }> }> };
  assert.equal(status.clusters.find((c) => c.name === 'blue')!.dashboard.reachable, false);
  assert.equal(status.apps.find((a) => a.name === 'llm')!.clusters[0]!.status, 'UNKNOWN', 'unknown, never deleted');
  await blue.startDashboard();
  await waitFor(() => s.gw.dashboardStates.get('blue')?.reachable === true, 3000, 'dashboard back');
});

// ── raw upstreams for cases the simulator does not produce ────────────────

async function rawUpstream(handler: (req: IncomingMessage, res: import('node:http').ServerResponse, n: number) => void): Promise<{ server: Server; url: string }> {
  let n = 0;
  const server = createServer((req, res) => {
    if (req.url === '/-/healthz') return void res.end('success');
    handler(req, res, n++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function rawConfig(endpoints: string[], extra: Record<string, unknown> = {}) {
  return buildConfig({
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    state_dir: `/tmp/sg-raw-${process.pid}-${Math.random().toString(36).slice(2)}`,
    clusters: [{ name: 'blue', endpoints, serve_config: 'applications:\n  - {name: app, route_prefix: /, import_path: a:b, deployments: [{name: D, max_ongoing_requests: 100}]}\n' }],
    health: { probe_interval: '60s', probe_timeout: '10s' },
    ...extra,
  });
}

test('headers: hop-by-hop stripped both ways, x-forwarded-* set, body streamed', async (t) => {
  const up = await rawUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'keep-alive': 'timeout=90' });
      res.end(JSON.stringify({ headers: req.headers, bytes: Buffer.concat(chunks).length }));
    });
  });
  const gw = await startGateway({ config: rawConfig([up.url]), logger: new LogRecorder(), watch: false, adminToken: null });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const big = Buffer.alloc(300_000, 120);
  const r = await send(`${gw.url}/x`, {
    method: 'POST',
    headers: { connection: 'keep-alive, x-private', 'x-private': 'p', 'x-forwarded-for': '10.1.1.1', 'x-forwarded-proto': 'https', te: 'trailers' },
    body: [big.subarray(0, 100_000), big.subarray(100_000)],
  });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body) as { headers: Record<string, string>; bytes: number };
  assert.equal(seen.bytes, 300_000, 'chunked request body streamed upstream intact');
  assert.equal(seen.headers['x-private'], undefined);
  assert.equal(seen.headers['te'], undefined);
  assert.equal(seen.headers['x-forwarded-for'], '10.1.1.1, 127.0.0.1');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  assert.match(seen.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
  assert.equal(r.headers['x-hop'], undefined);
  assert.equal(r.headers['keep-alive'] === 'timeout=90', false);
  assert.equal(r.headers['x-request-id'], seen.headers['x-request-id']);
});

test('a reused connection that the upstream closed is retried for an idempotent request without a body', async (t) => {
  // Every second request on a connection finds the socket closed under it, as
  // when Serve's keep-alive timer fires just as the gateway reuses the socket.
  const perSocket = new WeakMap<object, number>();
  const up = await rawUpstream((req, res) => {
    if (req.url === '/-/healthz') return void res.end('success');
    const k = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, k);
    if (k === 2) {
      req.socket.destroy();
      return;
    }
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const gw = await startGateway({ config: rawConfig([up.url]), logger: new LogRecorder(), watch: false, adminToken: null });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  for (let i = 0; i < 6; i++) {
    const r = await send(`${gw.url}/x`);
    assert.equal(r.status, 200, `request ${i}: ${r.headers['x-gateway-flag']} ${r.body}`);
    assert.equal(r.body, 'ok');
  }
  const metrics = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_retries_total');
  assert.match(metrics, /reason="stale_connection"\} [1-9]/);
});

test('a POST whose reused connection was reset after it was written is never sent again (SPEC §5)', async (t) => {
  // The upstream reads the whole request, then resets: it may have run, so a
  // retry could execute it twice. The client gets 502 UR; Serve saw it once.
  const perSocket = new WeakMap<object, number>();
  const seen = new Map<string, number>();
  const up = await rawUpstream((req, res) => {
    if (req.url === '/-/healthz') return void res.end('success');
    const k = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, k);
    const id = String(req.headers['x-request-id']);
    seen.set(id, (seen.get(id) ?? 0) + 1);
    req.resume();
    req.on('end', () => (k === 2 ? req.socket.destroy() : res.end('ok')));
  });
  const gw = await startGateway({ config: rawConfig([up.url]), logger: new LogRecorder(), watch: false, adminToken: null });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await send(`${gw.url}/x`, { method: 'POST', body: 'payload', headers: { 'x-request-id': `post-${i}` } });
    statuses.push(r.status);
    if (r.status !== 200) assert.equal(r.headers['x-gateway-flag'], 'UR');
  }
  assert.ok(statuses.includes(502), `one POST met the reset: ${statuses.join(',')}`);
  for (const [id, n] of seen) assert.equal(n, 1, `${id} reached the upstream ${n} times`);
});

test("Serve's backpressure 503 is retried on another endpoint (the request never ran)", async (t) => {
  const busy = await rawUpstream((req, res) => {
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('Request dropped due to backpressure (num_queued_requests=2, max_queued_requests=2).');
  });
  const free = await rawUpstream((req, res) => {
    req.resume();
    res.end('served');
  });
  const gw = await startGateway({ config: rawConfig([busy.url, free.url]), logger: new LogRecorder(), watch: false, adminToken: null });
  t.after(async () => {
    await gw.close();
    busy.server.close();
    free.server.close();
  });
  for (let i = 0; i < 4; i++) {
    const r = await send(`${gw.url}/x`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'served');
  }
});

for (const client of ['undici', 'lean'] as const) {
  test(`mid-stream upstream failure cuts the client stream (never a fake success), ${client} client`, async (t) => {
    const up = await rawUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      setImmediate(() => res.socket?.destroy());
    });
    const gw = await startGateway({ config: rawConfig([up.url], { upstream: { client } }), logger: new LogRecorder(), watch: false, adminToken: null });
    t.after(async () => {
      await gw.close();
      up.server.close();
    });
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest(`${gw.url}/s`, { agent: false }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve('end'));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    assert.notEqual(outcome, 'end', 'the client sees a cut stream, not a clean end');
  });
}

test('stream response headers reach the client before the upstream sends any body byte', async (t) => {
  let release: (() => void) | null = null;
  const up = await rawUpstream((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    release = () => res.end('data: [DONE]\n\n');
  });
  const gw = await startGateway({ config: rawConfig([up.url]), logger: new LogRecorder(), watch: false, adminToken: null });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/s`, { agent: false }, (res) => {
      // Headers are here while the upstream still holds its body back.
      assert.equal(res.headers['content-type'], 'text/event-stream');
      assert.equal(res.headers['x-serve-cluster'], 'blue');
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      release!();
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(body, 'data: [DONE]\n\n');
});
