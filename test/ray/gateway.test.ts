// serve-gateway in front of two real Ray Serve clusters (blue, green), both
// serving test/ray/apps/gateway-apps.yaml: routing with nested prefixes, SSE
// streaming, admission sized from the live dashboard, WebSockets (a FastAPI
// app) straight to Serve and through the gateway, and a blue→green switch
// under load with no failed request.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { send, sseData } from '../conformance/http-client.ts';
import { APPS_DIR, CLUSTER_SETUP_TIMEOUT_MS, RayCluster, rayUnavailable, startClusters, waitUntil } from './ray-cluster.ts';
import type { ServeDoc } from './ray-cluster.ts';
import { capacityOf, observeGateway, runLoad, startGatewayFor, waitLive } from './gateway-stack.ts';
import type { GatewayStack } from './gateway-stack.ts';
import { openWs, rawUpgrade, refusedWs } from './ws-client.ts';
import type { WsConn } from './ws-client.ts';

const skip = rayUnavailable();
const APPS = ['llm', 'llm-v2', 'slow', 'fail', 'default', 'wsapp'];
const BACKPRESSURE = /^Request dropped due to backpressure/;

describe('gateway in front of real Ray Serve', { skip: skip ?? false }, () => {
  let blue: RayCluster;
  let green: RayCluster;
  let stack: GatewayStack;

  before(async () => {
    const { clusters } = await startClusters(['blue', 'green']);
    [blue, green] = clusters as [RayCluster, RayCluster];
    const file = join(APPS_DIR, 'gateway-apps.yaml');
    await Promise.all([blue.deploy(file), green.deploy(file)]);
    const docs: ServeDoc[] = [blue.serveDoc(file), green.serveDoc(file)];
    stack = await startGatewayFor([blue, green], docs);
    await Promise.all([waitLive(stack, 'blue', APPS), waitLive(stack, 'green', APPS)]);
  }, { timeout: CLUSTER_SETUP_TIMEOUT_MS });

  after(async () => {
    await stack?.close();
    blue?.stop();
    green?.stop();
    for (const c of [blue, green]) if (c) await c.waitGone();
  });

  test('routing: nested prefixes, path unchanged, errors passed through', { timeout: 30_000 }, async () => {
    const cases: [string, string][] = [
      ['/llm', 'llm'],
      ['/llm/v1/chat/completions', 'llm'],
      ['/llm/v2', 'llm-v2'],
      ['/llm/v2/models', 'llm-v2'],
      ['/llm/v20', 'llm'],
      ['/llmx', 'default'],
      ['/', 'default'],
      ['/slow/x?latency_ms=0', 'slow'],
    ];
    for (const [path, app] of cases) {
      const r = await send(`${stack.url}${path}`);
      assert.equal(r.status, 200, `${path}: ${r.body}`);
      const body = JSON.parse(r.body) as { app: string; cluster: string; path: string };
      assert.equal(body.app, app, path);
      assert.equal(body.cluster, 'blue', path);
      assert.equal(body.path, path.split('?')[0], `${path}: the path reaches Serve unchanged`);
      assert.equal(r.headers['x-serve-cluster'], 'blue');
    }
    const f = await send(`${stack.url}/fail/boom`);
    assert.equal(f.status, 500);
    assert.equal(f.body, 'Internal Server Error');
    const direct = await send(`${blue.serveUrl}/fail/boom`);
    assert.equal(direct.status, 500, 'the failing app answers 500 on Serve directly too');
  });

  test('SSE token streams through the gateway, frame by frame', { timeout: 30_000 }, async () => {
    const t0 = performance.now();
    const r = await send(`${stack.url}/llm/v1/chat/completions?tokens=6&interval_ms=50`, { headers: { accept: 'text/event-stream' } });
    const total = performance.now() - t0;
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    const frames = sseData(r.body);
    assert.equal(frames.at(-1), '[DONE]');
    assert.deepEqual(frames.slice(0, -1).map((f) => (JSON.parse(f) as { index: number }).index), [0, 1, 2, 3, 4, 5]);
    assert.ok(total >= 250, `the stream took ${total} ms: tokens were paced`);
    // The first frame arrives long before the stream ends (not buffered).
    const first = await new Promise<number>((resolve, reject) => {
      const start = performance.now();
      import('node:http').then(({ request }) => {
        const req = request(`${stack.url}/llm/stream?tokens=10&interval_ms=100`, { agent: false }, (res) => {
          res.once('data', () => {
            resolve(performance.now() - start);
            req.destroy();
          });
        });
        req.on('error', () => {});
        req.end();
      }, reject);
    });
    assert.ok(first < 700, `first frame after ${first} ms (a 1 s stream)`);
  });

  test('admission: never more than max_ongoing_requests × replicas reach Serve', { timeout: 60_000 }, async () => {
    const cap = await capacityOf(stack, 'slow', 'blue');
    assert.equal(cap.replicas, 2, 'RUNNING replicas from the live dashboard');
    assert.equal(cap.capacity, 4, 'max_ongoing_requests 2 × 2 replicas');
    await send(`${blue.serveUrl}/slow/_reset`);
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => send(`${stack.url}/slow/burst-${i}?latency_ms=600`)));
    const stats = JSON.parse((await send(`${blue.serveUrl}/slow/_stats`)).body) as { max: number; total: number };
    const ok = burst.filter((r) => r.status === 200).length;
    // The gateway answers its own rejections with Serve's text too, flagged x-gateway-flag.
    const serveBackpressure = burst.filter((r) => BACKPRESSURE.test(r.body) && r.headers['x-gateway-flag'] === undefined).length;
    const gatewayRejected = burst.filter((r) => r.status === 503 && r.headers['x-gateway-flag'] !== undefined).length;
    const served: Record<string, number> = {};
    for (const r of burst) if (r.status === 200) served[String(r.headers['x-serve-cluster'])] = (served[String(r.headers['x-serve-cluster'])] ?? 0) + 1;
    console.log(`admission burst: served by ${JSON.stringify(served)}`);
    console.log(`admission burst: 20 sent, ${ok} ok, ${gatewayRejected} rejected by the gateway, ${serveBackpressure} Serve backpressure; app saw max ${stats.max} concurrent of ${stats.total}`);
    assert.equal(serveBackpressure, 0, 'Serve never had to shed load');
    assert.ok(stats.max <= 4, `Serve ran ${stats.max} requests at once (limit 4)`);
    assert.equal(stats.max, 4, 'the whole capacity was used');
    assert.equal(ok + gatewayRejected, 20, `statuses: ${burst.map((r) => r.status).join(',')}`);
    // The counter actor is updated asynchronously from two replicas; one run in
    // several counted one admitted request short, so only an upper bound here.
    assert.ok(stats.total >= 4 && stats.total <= ok, `the app counted ${stats.total} of ${ok} served`);
    // The same burst straight at Serve: its own queue (max_queued_requests 2) sheds the excess.
    const direct = await Promise.all(Array.from({ length: 20 }, (_, i) => send(`${blue.serveUrl}/slow/direct-${i}?latency_ms=600`)));
    const directShed = direct.filter((r) => r.status === 503 && BACKPRESSURE.test(r.body)).length;
    console.log(`same burst direct to Serve: ${direct.filter((r) => r.status === 200).length} ok, ${directShed} Serve backpressure 503`);
    assert.ok(directShed > 0, 'without the gateway Serve sheds the burst itself');
  });

  // ---------------------------------------------------------------- WebSockets
  // wsapp (test/ray/apps/ws_app.py): a FastAPI ingress with a WebSocket echo,
  // 2 replicas × max_ongoing_requests 2. Every open WebSocket is one ongoing
  // request of its replica for Serve, and holds one gateway admission slot.

  const wsLimiter = (cluster: string) => {
    const t = stack.gw.reconciler.current!.apps.get('wsapp')!.targets.find((x) => x.cluster.name === cluster);
    assert.ok(t, `wsapp has a ${cluster} target`);
    return t.limiter;
  };
  // A slot is released when the gateway sees the WebSocket end (both sockets
  // closed): immediate when idle, seconds on a busy 2-core machine.
  const SLOT_WAIT_MS = 20_000;
  const slotWait = { everyMs: 20, observe: () => `wsapp in flight: blue ${wsLimiter('blue').inFlight}, green ${wsLimiter('green').inFlight}` };
  const whoami = async (c: WsConn): Promise<{ app: string; cluster: string; replica: string; path: string }> => JSON.parse(await c.ask('whoami'));
  const closeAll = async (conns: WsConn[]) => {
    await Promise.all(conns.map((c) => c.close()));
  };
  /** Replica → number of the connections it holds. */
  const byReplica = async (conns: WsConn[]): Promise<number[]> => {
    const n: Record<string, number> = {};
    for (const c of conns) {
      const r = (await whoami(c)).replica;
      n[r] = (n[r] ?? 0) + 1;
    }
    return Object.values(n).sort();
  };

  test('WebSocket straight to Serve (no gateway): FastAPI echo; Serve holds a 5th connection until a slot frees', { timeout: 60_000 }, async () => {
    const url = `ws://127.0.0.1:${blue.servePort}/wsapp/ws/echo`;
    const conns: WsConn[] = [];
    let fifth: Promise<WsConn | Error> | null = null;
    try {
      const c = await openWs(url);
      conns.push(c);
      for (const m of ['hello', 'über ✓', 'x'.repeat(20_000)]) assert.equal(await c.ask(m), `echo: ${m}`);
      const who = await whoami(c);
      console.log(`direct WebSocket: ${JSON.stringify(who)}`);
      assert.equal(who.app, 'wsapp');
      assert.equal(who.cluster, 'blue');
      assert.ok(who.path.endsWith('/ws/echo'), who.path);
      for (let i = 0; i < 3; i++) conns.push(await openWs(url));
      assert.deepEqual(await byReplica(conns), [2, 2], '4 connections on 2 replicas, max_ongoing_requests 2 each');
      // A 5th connection straight to Serve: no slot on any replica.
      let fifthAt = 0;
      const t0 = performance.now();
      fifth = openWs(url, 30_000).then(
        (x) => ((fifthAt = performance.now()), x),
        (e: unknown) => e as Error,
      );
      await new Promise((r) => setTimeout(r, 2000));
      const openWhileFull = fifthAt !== 0;
      const tClose = performance.now();
      await conns.shift()!.close();
      const f = await fifth;
      fifth = null;
      if (f instanceof Error) throw f;
      conns.push(f);
      console.log(`direct WebSocket: 5th connection with 4 held: open after ${Math.round(fifthAt - t0)} ms (one closed at ${Math.round(tClose - t0)} ms); open while full: ${openWhileFull}`);
      assert.equal(await f.ask('fifth'), 'echo: fifth');
      assert.equal(openWhileFull, false, 'Serve did not accept a 5th WebSocket while 4 held every slot');
    } finally {
      await closeAll(conns);
      const f = await fifth;
      if (f && !(f instanceof Error)) await f.close();
    }
  });

  test('WebSocket through the gateway: echo, holds one admission slot while open, released on close', { timeout: 60_000 }, async () => {
    const url = `${stack.url.replace(/^http/, 'ws')}/wsapp/ws/echo`;
    assert.equal(wsLimiter('blue').inFlight, 0);
    const c = await openWs(url);
    try {
      for (const m of ['hello', 'über ✓', 'x'.repeat(20_000)]) assert.equal(await c.ask(m), `echo: ${m}`);
      const who = await whoami(c);
      assert.equal(who.app, 'wsapp');
      assert.equal(who.cluster, 'blue');
      assert.ok(who.path.endsWith('/ws/echo'), who.path);
      assert.equal(wsLimiter('blue').inFlight, 1, 'the open WebSocket holds a slot');
      assert.equal(wsLimiter('green').inFlight, 0);
    } finally {
      const ev = await c.close();
      assert.equal(ev.code, 1000, 'clean close handshake through the gateway');
    }
    await waitUntil('wsapp slot released', SLOT_WAIT_MS, async () => wsLimiter('blue').inFlight === 0, slotWait);
    // The handshake's response head as a raw client sees it.
    const raw = await rawUpgrade(`${stack.url}/wsapp/ws/echo`);
    assert.equal(raw.status, 101);
    assert.equal(String(raw.headers['upgrade']).toLowerCase(), 'websocket');
    assert.equal(raw.headers['x-serve-cluster'], 'blue');
    assert.ok(raw.headers['sec-websocket-accept'], 'Serve (uvicorn) answered the handshake');
    await waitUntil('wsapp slot released after the raw upgrade', SLOT_WAIT_MS, async () => wsLimiter('blue').inFlight === 0, slotWait);
  });

  test('WebSocket through the gateway: closed by the app (code 4000), or refused by it (no such route): the slot is released', { timeout: 60_000 }, async () => {
    const base = stack.url.replace(/^http/, 'ws');
    const c = await openWs(`${base}/wsapp/ws/echo`);
    assert.equal(await c.ask('one'), 'echo: one');
    c.ws.send('close');
    const ev = await c.closed;
    assert.equal(ev.code, 4000, 'the close code from the app reaches the client');
    assert.equal(ev.reason, 'bye');
    await waitUntil('slot released after the app closed', SLOT_WAIT_MS, async () => wsLimiter('blue').inFlight === 0, slotWait);
    // No WebSocket route at this path: the app refuses the handshake.
    const direct = await rawUpgrade(`${blue.serveUrl}/wsapp/ws/nope`);
    const via = await rawUpgrade(`${stack.url}/wsapp/ws/nope`);
    console.log(`WebSocket to a missing route: Serve ${direct.status} ${JSON.stringify(direct.body)}, through the gateway ${via.status} ${JSON.stringify(via.body)}`);
    assert.notEqual(direct.status, 101);
    assert.equal(via.status, direct.status, 'the refusal passes through unchanged');
    assert.equal(via.headers['x-gateway-flag'], undefined, 'answered by Serve, not the gateway');
    const refused = await refusedWs(`${base}/wsapp/ws/nope`);
    assert.deepEqual([refused.opened, refused.error], [false, true]);
    await waitUntil('slot released after the refusal', SLOT_WAIT_MS, async () => wsLimiter('blue').inFlight === 0, slotWait);
  });

  test('WebSocket admission: max_ongoing_requests × replicas connections, then 503 QF; a slot frees on close', { timeout: 60_000 }, async () => {
    const cap = await capacityOf(stack, 'wsapp', 'blue');
    assert.equal(cap.replicas, 2);
    assert.equal(cap.capacity, 4, 'max_ongoing_requests 2 × 2 replicas');
    const url = `${stack.url.replace(/^http/, 'ws')}/wsapp/ws/echo`;
    const conns: WsConn[] = [];
    try {
      for (let i = 0; i < 4; i++) conns.push(await openWs(url));
      assert.equal(wsLimiter('blue').inFlight, 4, 'every slot held');
      assert.deepEqual(await byReplica(conns), [2, 2], 'Serve placed them 2 per replica');
      const refused = await refusedWs(url);
      console.log(`gateway WebSocket: 5th connection with 4 held: ${JSON.stringify(refused)}`);
      assert.equal(refused.opened, false, 'the 5th WebSocket never opens');
      assert.equal(refused.error, true, 'the client sees an error event');
      assert.equal(refused.code, 1006, 'abnormal closure: the handshake failed');
      const raw = await rawUpgrade(`${stack.url}/wsapp/ws/echo`);
      assert.equal(raw.status, 503, raw.body);
      assert.equal(raw.headers['x-gateway-flag'], 'QF');
      assert.equal(raw.headers['retry-after'], '1');
      assert.match(raw.body, BACKPRESSURE);
      assert.equal(wsLimiter('blue').inFlight, 4, 'refusals hold no slot');
      for (const c of conns) assert.equal(await c.ask('still here'), 'echo: still here', 'the held connections are untouched');
      await conns.shift()!.close();
      await waitUntil('one slot free', SLOT_WAIT_MS, async () => wsLimiter('blue').inFlight === 3, slotWait);
      const again = await openWs(url);
      conns.push(again);
      assert.equal(await again.ask('again'), 'echo: again');
      assert.equal(wsLimiter('blue').inFlight, 4);
    } finally {
      await closeAll(conns);
    }
    await waitUntil('every wsapp slot released', SLOT_WAIT_MS, async () => wsLimiter('blue').inFlight === 0, slotWait);
  });

  test('switch all traffic blue → green under load: no failed request', { timeout: 60_000 }, async () => {
    const tLoad = Date.now();
    // Load until stopped (bounded by the test timeout), not for a fixed time: on a
    // busy machine the switch itself can take seconds, and requests must run on
    // both sides of it.
    const load = runLoad(stack.url, { clients: 8, durationMs: 60_000, path: '/llm/chat' });
    try {
      const observe = async () => `load ${JSON.stringify(load.snapshot())}\n${await observeGateway(stack, 'green', ['llm'])}`;
      await waitUntil('2.5 s of load on blue before the switch', 20_000, async () => {
        const s = load.snapshot();
        return s.ok >= 50 && Date.now() - tLoad >= 2500;
      }, { observe });
      for (const app of APPS) await stack.setWeights(app, { blue: 0, green: 100 });
      load.mark();
      const tSwitch = Date.now();
      await waitUntil('2.5 s of load after the switch', 20_000, async () => {
        const s = load.snapshot();
        return Object.values(s.afterMark).reduce((a, b) => a + b, 0) >= 50 && Date.now() - tSwitch >= 2500;
      }, { observe });
    } finally {
      load.stop();
    }
    const res = await load.done;
    console.log(`switch under load: ${res.ok + res.failed} requests (${res.streams} streams), ${res.failed} failed; by cluster ${JSON.stringify(res.byCluster)}; started after the switch ${JSON.stringify(res.afterMark)}`);
    assert.deepEqual(res.failures, []);
    assert.equal(res.failed, 0);
    assert.ok((res.byCluster['blue'] ?? 0) > 0 && (res.byCluster['green'] ?? 0) > 0, 'both clusters served');
    assert.deepEqual(Object.keys(res.afterMark), ['green'], 'requests started after the switch all went to green');
    assert.equal(res.endedBy, 'stop', 'the load ran through the switch');
    const r = await send(`${stack.url}/llm/after`);
    assert.equal((JSON.parse(r.body) as { cluster: string }).cluster, 'green');
  });
});
