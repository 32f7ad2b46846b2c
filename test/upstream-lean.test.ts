// upstream.client: lean end to end: the representative proxy scenarios (small
// POST, SSE, upstream reset, retry on connect failure, queue, large streamed
// upload) through the lean HTTP/1.1 client (src/upstream/h1-client.ts), chosen
// explicitly here (the whole suite also runs on it with SG_UPSTREAM_CLIENT=lean).
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { send, sendJson, openStream, sseData } from './conformance/http-client.ts';
import { buildConfig, startStack, LogRecorder } from './helpers/stack.ts';
import { startGateway } from '../src/main.ts';
import { H1Client } from '../src/upstream/h1-client.ts';
import type { Endpoint } from '../src/upstream/endpoint.ts';

const LEAN = { upstream: { client: 'lean' } };

/** The endpoint's pooled clients are H1Clients (acquire/release: the endpoint's own API). */
function assertLean(ep: Endpoint): void {
  const conn = ep.acquire({ onConnection() {} });
  assert.ok(conn !== null);
  assert.ok(conn.client instanceof H1Client, 'upstream.client: lean builds H1Clients');
  ep.release(conn, 0);
}

async function rawUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/-/healthz') return void res.end('success');
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function rawConfig(endpoints: string[]) {
  return buildConfig({
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    state_dir: `/tmp/sg-lean-${process.pid}-${Math.random().toString(36).slice(2)}`,
    clusters: [{ name: 'blue', endpoints, serve_config: 'applications:\n  - {name: app, route_prefix: /, import_path: a:b, deployments: [{name: D, max_ongoing_requests: 100}]}\n' }],
    health: { probe_interval: '60s', probe_timeout: '10s' },
    ...LEAN,
  });
}

test('lean: small POST and keep-alive GETs through the simulated Serve', async (t) => {
  const s = await startStack({ gateway: LEAN });
  t.after(() => s.close());
  assert.equal(s.config.upstream.client, 'lean');
  assertLean(s.gw.reconciler.clusters.get('blue')!.endpoints[0]!);
  const r = await sendJson(`${s.url}/llm/v1/chat?x=1`, { prompt: 'hi' });
  assert.equal(r.status, 200);
  const body = JSON.parse(r.body);
  assert.equal(body.app, 'llm');
  assert.equal(body.query, 'x=1');
  assert.equal(body.request_id, r.headers['x-request-id']);
  for (let i = 0; i < 5; i++) assert.equal((await send(`${s.url}/llm`)).status, 200);
});

test('lean: SSE streams chunk by chunk', async (t) => {
  const s = await startStack({ gateway: LEAN });
  t.after(() => s.close());
  const stream = await openStream(`${s.url}/llm/stream?tokens=5&interval_ms=30`);
  assert.equal(stream.res.headers['content-type']?.startsWith('text/event-stream'), true);
  const chunks: string[] = [stream.first];
  stream.res.on('data', (c: Buffer) => chunks.push(c.toString()));
  stream.res.resume();
  await new Promise((r) => stream.res.once('end', r));
  const data = sseData(chunks.join(''));
  assert.equal(data.length, 6);
  assert.equal(data.at(-1), '[DONE]');
  assert.ok(chunks.length >= 5, `tokens arrive as separate chunks (got ${chunks.length})`);
});

test('lean: connect failure is retried on another endpoint', async (t) => {
  const s = await startStack({ gateway: { ...LEAN, health: { probe_interval: '60s', eject_after_failures: 1 } } });
  t.after(() => s.close());
  await s.sim.cluster('blue').killProxy(0);
  const results = await Promise.all(Array.from({ length: 10 }, () => send(`${s.url}/llm`)));
  assert.deepEqual(results.map((r) => r.status), Array(10).fill(200));
  const metrics = await (await fetch(`${s.admin}/metrics`)).text();
  assert.match(metrics, /serve_gateway_retries_total\{cluster="blue",reason="connect"\} [1-9]/);
});

test('lean: queue full sheds with 503 QF; queue timeout gives 503 QT', async (t) => {
  const s = await startStack({ apps: { llm: { latency_ms: 300 } }, gateway: { ...LEAN, admission: { queue_size: 2, queue_timeout: '100ms' } } });
  t.after(() => s.close());
  const results = await Promise.all(Array.from({ length: 16 }, () => send(`${s.url}/llm`)));
  const byFlag = new Map<string, number>();
  for (const r of results) {
    const k = String(r.headers['x-gateway-flag'] ?? r.status);
    byFlag.set(k, (byFlag.get(k) ?? 0) + 1);
  }
  assert.equal(byFlag.get('200'), 8, JSON.stringify([...byFlag]));
  assert.equal(byFlag.get('QF'), 6);
  assert.equal(byFlag.get('QT'), 2);
});

test('lean: a reused socket the upstream closed is retried for a GET; a POST reset after it was written is 502 UR, never sent twice', async (t) => {
  const perSocket = new WeakMap<object, number>();
  const seen = new Map<string, number>();
  const up = await rawUpstream((req, res) => {
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
  for (let i = 0; i < 4; i++) {
    const r = await send(`${gw.url}/x`, { headers: { 'x-request-id': `get-${i}` } });
    assert.equal(r.status, 200, `GET ${i}: ${r.headers['x-gateway-flag']} ${r.body}`);
  }
  const metrics = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_retries_total');
  assert.match(metrics, /reason="stale_connection"\} [1-9]/);
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await send(`${gw.url}/x`, { method: 'POST', body: 'payload', headers: { 'x-request-id': `post-${i}` } });
    statuses.push(r.status);
    if (r.status !== 200) assert.equal(r.headers['x-gateway-flag'], 'UR');
  }
  assert.ok(statuses.includes(502), `one POST met the reset: ${statuses.join(',')}`);
  for (const [id, n] of seen) if (id.startsWith('post-')) assert.equal(n, 1, `${id} reached the upstream ${n} times`);
});

test('lean: large streamed uploads (chunked, and content-length over buffer_body_bytes) arrive whole', async (t) => {
  const up = await rawUpstream((req, res) => {
    let bytes = 0;
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => res.end(JSON.stringify({ bytes, sum: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null })));
  });
  const gw = await startGateway({ config: rawConfig([up.url]), logger: new LogRecorder(), watch: false, adminToken: null });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const part = Buffer.alloc(1 << 20);
  for (let i = 0; i < part.length; i++) part[i] = i % 251;
  const h = createHash('sha256');
  for (let k = 0; k < 8; k++) h.update(part);
  const expectSum = h.digest('hex');
  const chunked = await send(`${gw.url}/up`, { method: 'POST', body: Array(8).fill(part) });
  assert.equal(chunked.status, 200);
  assert.deepEqual(JSON.parse(chunked.body), { bytes: 8 << 20, sum: expectSum, te: 'chunked', cl: null });
  const withLength = await send(`${gw.url}/up`, { method: 'PUT', headers: { 'content-length': String(8 << 20) }, body: Array(8).fill(part) });
  assert.equal(withLength.status, 200);
  assert.deepEqual(JSON.parse(withLength.body), { bytes: 8 << 20, sum: expectSum, te: null, cl: String(8 << 20) });
});
