// Issue 7's data-plane defects, one test each, against a real gateway and a
// recording upstream on loopback (raw sockets where node's client would not
// send the bytes). docs/security.md says how each one is enforced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { buildConfig, LogRecorder, waitFor } from './helpers/stack.ts';
import { startGateway, type Gateway } from '../src/main.ts';

interface Seen {
  method: string;
  url: string;
  id: string;
  xff: string;
}

/** A Serve-like upstream that records every request; `/ws` upgrades are answered by `onUpgrade`. */
async function recordingUpstream(handler?: (req: IncomingMessage, res: ServerResponse) => void, onUpgrade?: (socket: Socket) => void): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/-/healthz') return void res.end('success');
    seen.push({ method: req.method ?? '', url: req.url ?? '', id: String(req.headers['x-request-id'] ?? ''), xff: String(req.headers['x-forwarded-for'] ?? '') });
    if (handler) return handler(req, res);
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', id: String(req.headers['x-request-id'] ?? ''), xff: String(req.headers['x-forwarded-for'] ?? '') });
    if (onUpgrade) return onUpgrade(socket);
    // Refuse the upgrade but keep the connection open, as a Serve app that answers 403 would.
    socket.write('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nforbidden');
    // Whatever comes next on this socket would be parsed by Serve as a new request.
    let buf = '';
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const m = /^([A-Z]+) (\S+) HTTP\/1\.1\r\n/.exec(buf);
      if (m) seen.push({ method: m[1]!, url: m[2]!, id: /x-request-id: (\S+)/i.exec(buf)?.[1] ?? '', xff: /x-forwarded-for: ([^\r]+)/i.exec(buf)?.[1] ?? '' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const SERVE = (maxOngoing: number) =>
  `applications:\n  - {name: llm, route_prefix: /llm, import_path: a:b, deployments: [{name: D, max_ongoing_requests: ${maxOngoing}}]}\n` +
  `  - {name: ws, route_prefix: /ws, import_path: a:c, deployments: [{name: W, max_ongoing_requests: 4}]}\n`;

async function gatewayFor(url: string, opts: { maxOngoing?: number; extra?: Record<string, unknown> } = {}): Promise<Gateway> {
  const gw = await startGateway({
    config: buildConfig({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      state_dir: `/tmp/sg-edge-${process.pid}-${Math.random().toString(36).slice(2)}`,
      clusters: [{ name: 'blue', endpoints: [url], serve_config: SERVE(opts.maxOngoing ?? 4) }],
      health: { probe_interval: '60s', probe_timeout: '10s' },
      admission: { queue_size: 10, queue_timeout: '20s' },
      shutdown: { drain_delay: '0s', grace_period: '300ms' },
      ...opts.extra,
    }),
    logger: new LogRecorder(),
    watch: false,
    adminToken: null,
  });
  const ep = gw.reconciler.clusters.get('blue')!.endpoints[0]!;
  await waitFor(() => ep.health.probeOk === true, 20_000, 'first probe');
  return gw;
}

/** Writes raw bytes on a new connection; resolves with everything read until the gateway closes it. */
function rawExchange(gwUrl: string, bytes: string, opts: { closeAfterMs?: number } = {}): Promise<string> {
  const u = new URL(gwUrl);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port) });
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(out));
    s.on('connect', () => s.write(bytes));
    if (opts.closeAfterMs !== undefined) setTimeout(() => s.destroy(), opts.closeAfterMs).unref();
  });
}

function gateStats(gw: Gateway, app: string) {
  return gw.reconciler.current!.apps.get(app)!.targets[0]!.stats.snapshot();
}

test('defect 1: a refused upgrade is relayed as a response and the connection closed; nothing behind it reaches Serve raw', { timeout: 30_000 }, async (t) => {
  const up = await recordingUpstream();
  const gw = await gatewayFor(up.url);
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  // The upgrade request and, in the same write, a second request with spoofed forwarding headers.
  const out = await rawExchange(
    gw.url,
    'GET /ws/chat HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n' +
      'GET /llm/smuggled HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 6.6.6.6\r\nx-request-id: spoofed\r\n\r\n',
  );
  assert.match(out, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(out, /\r\nconnection: close\r\n/i);
  assert.match(out, /\r\n\r\nforbidden$/, 'the refusal body is relayed whole and the connection closed after it');
  assert.equal(up.seen.length, 1, `Serve saw only the upgrade request: ${JSON.stringify(up.seen)}`);
  assert.equal(up.seen[0]!.url, '/ws/chat');
  assert.ok(!up.seen.some((s) => s.url === '/llm/smuggled' || s.id === 'spoofed'));
  const ws = gw.reconciler.current!.apps.get('ws')!.targets[0]!.limiter;
  await waitFor(() => ws.inFlight === 0, 5000, 'slot released after the refused upgrade');
});

test('defect 2: clients that never send their announced body hold no admission slot', { timeout: 30_000 }, async (t) => {
  const up = await recordingUpstream();
  const gw = await gatewayFor(up.url, { maxOngoing: 2, extra: { server: { request_timeout: '1s', request_header_timeout: '1s' } } });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const limiter = gw.reconciler.current!.apps.get('llm')!.targets[0]!.limiter;
  // 4 stalled clients (twice the capacity of 2): headers with Content-Length: 100, then nothing.
  const stalled = Array.from({ length: 4 }, () => rawExchange(gw.url, 'POST /llm/x HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n'));
  await waitFor(() => gw.proxy.counters.activeRequests >= 4, 10_000, 'stalled requests received');
  assert.equal(limiter.inFlight, 0, 'no slot taken while bodies are missing');
  const ok = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/llm/normal`, { method: 'POST', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end('hello');
  });
  assert.equal(ok, 200, 'a normal client is served at once');
  // request_timeout ends the stalled ones with 408 DT, never counted against the cluster.
  const outs = await Promise.all(stalled);
  for (const o of outs) {
    assert.match(o, /^HTTP\/1\.1 408 /);
    assert.match(o, /x-gateway-flag: DT/);
  }
  const s = gateStats(gw, 'llm');
  assert.equal(s.errors, 0);
  assert.equal(s.requests, 1, 'only the normal request counts for the gate');
  assert.equal(up.seen.filter((x) => x.url === '/llm/x').length, 0, 'the stalled requests never reached Serve');
});

test('defect 2: a client that never reads its stream loses its slot after server.write_timeout', { timeout: 30_000 }, async (t) => {
  const big = Buffer.alloc(64 * 1024, 97);
  const up = await recordingUpstream((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // An endless stream: only backpressure stops it.
    const pump = () => {
      while (res.write(big)) {
        /* fill */
      }
      res.once('drain', pump);
    };
    pump();
    res.on('close', () => res.removeAllListeners('drain'));
  });
  const gw = await gatewayFor(up.url, { maxOngoing: 1, extra: { server: { write_timeout: '500ms' } } });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const limiter = gw.reconciler.current!.apps.get('llm')!.targets[0]!.limiter;
  const u = new URL(gw.url);
  const s = connect({ host: u.hostname, port: Number(u.port) });
  s.on('error', () => {});
  s.write('GET /llm/stream HTTP/1.1\r\nhost: x\r\n\r\n');
  s.pause(); // never reads
  const closed = new Promise((r) => s.once('close', r));
  await waitFor(() => limiter.inFlight === 1, 10_000, 'stream admitted');
  await waitFor(() => limiter.inFlight === 0, 20_000, 'slot freed by write_timeout');
  s.destroy();
  await closed;
  const m = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_requests_total');
  assert.match(m, /app="llm",cluster="blue",code="200",flag="DT"\} 1/);
});

test('defect 4: Expect: 100-continue uploads work; duplicate Host and OPTIONS * get a local 400 and count against no cluster', { timeout: 30_000 }, async (t) => {
  let received = 0;
  const up = await recordingUpstream((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      received = n;
      res.end(`got ${n}`);
    });
  });
  const gw = await gatewayFor(up.url);
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  // curl sends Expect: 100-continue for bodies over 1 MB: the body goes once the 100 came.
  const body = Buffer.alloc(2 * 1024 * 1024, 120);
  const r = await new Promise<{ status: number; text: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = httpRequest(`${gw.url}/llm/upload`, { method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, continued }));
    });
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('error', reject);
  });
  assert.equal(r.continued, true);
  assert.equal(r.status, 200);
  assert.equal(r.text, `got ${body.length}`);
  assert.equal(received, body.length);

  const dupHost = await rawExchange(gw.url, 'GET /llm/a HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n');
  assert.match(dupHost, /^HTTP\/1\.1 400 /);
  assert.match(dupHost, /x-gateway-flag: BR/);
  const star = await rawExchange(gw.url, 'OPTIONS * HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
  assert.match(star, /^HTTP\/1\.1 400 /);
  const conn = await rawExchange(gw.url, 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
  assert.match(conn, /^HTTP\/1\.1 405 /);
  assert.match(conn, /x-gateway-flag: MA/);
  // 20 malformed requests (what rolled back a healthy rollout before) leave the gate untouched.
  for (let i = 0; i < 20; i++) await rawExchange(gw.url, 'GET /llm/a HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n');
  const s = gateStats(gw, 'llm');
  assert.equal(s.errors, 0);
  assert.equal(s.requests, 1, 'only the upload counts for the gate');
  assert.equal(up.seen.filter((x) => x.url !== '/llm/upload').length, 0, 'nothing malformed reached Serve');
});

test('max_connections: bare connects past the cap are closed on accept; admin /readyz and a later client still work', { timeout: 30_000 }, async (t) => {
  const up = await recordingUpstream();
  const gw = await gatewayFor(up.url, { extra: { server: { max_connections: 5 } } });
  const idle: Socket[] = [];
  t.after(async () => {
    for (const s of idle) s.destroy();
    await gw.close();
    up.server.close();
  });
  const u = new URL(gw.url);
  const closedOnAccept: Array<Promise<boolean>> = [];
  for (let i = 0; i < 20; i++) {
    const s = connect({ host: u.hostname, port: Number(u.port) });
    s.on('error', () => {});
    idle.push(s);
    closedOnAccept.push(new Promise((r) => s.once('close', () => r(true))));
    await new Promise((r) => s.once('connect', r));
  }
  await waitFor(() => idle.filter((s) => s.destroyed || s.readableEnded).length >= 15, 10_000, '15 connections over the cap closed');
  const ready = await fetch(`${gw.adminUrl}/readyz`);
  assert.equal(ready.status, 200, 'the admin listener is not behind the data-plane cap');
  const m = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_connections_dropped_total');
  assert.match(m, /serve_gateway_connections_dropped_total 15/);
  for (const s of idle) s.destroy();
  const deadline = Date.now() + 10_000;
  while ((await new Promise<number>((r) => gw.server.getConnections((_e, n) => r(n)))) > 0) {
    assert.ok(Date.now() < deadline, 'idle connections gone');
    await new Promise((r) => setImmediate(r));
  }
  const r = await fetch(`${gw.url}/llm/after`);
  assert.equal(r.status, 200);
});

test('clients that reset their connection (mid-request, between keep-alive requests, mid-body) never take the gateway down', { timeout: 30_000 }, async (t) => {
  const up = await recordingUpstream();
  const gw = await gatewayFor(up.url);
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const u = new URL(gw.url);
  const resetAfter = (bytes: string, waitForResponse: boolean) =>
    new Promise<void>((resolve) => {
      const s = connect({ host: u.hostname, port: Number(u.port) });
      s.on('error', () => {});
      s.on('connect', () => {
        s.write(bytes);
        if (!waitForResponse) setImmediate(() => s.resetAndDestroy());
      });
      s.on('data', () => waitForResponse && s.resetAndDestroy());
      s.on('close', () => resolve());
    });
  for (let i = 0; i < 20; i++) {
    await resetAfter('GET /llm/a HTTP/1.1\r\nhost: x\r\n\r\n', true); // keep-alive socket reset after its response
    await resetAfter('GET /llm/b HTTP/1.1\r\nhost: x\r\n', false); // reset inside the headers
    await resetAfter('POST /llm/c HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc', false); // reset inside the body
  }
  const r = await fetch(`${gw.url}/llm/still-here`);
  assert.equal(r.status, 200);
  const m = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_requests_total');
  assert.doesNotMatch(m, /flag="BR"/, 'a reset is not a malformed request');
});

test('defect 2: a streamed upload that stalls after admission is cut at server.request_timeout (408 DT) and frees its slot', { timeout: 30_000 }, async (t) => {
  const up = await recordingUpstream((req, res) => {
    req.on('data', () => {});
    req.on('end', () => res.end('ok'));
    req.on('error', () => {});
  });
  const gw = await gatewayFor(up.url, { maxOngoing: 1, extra: { server: { request_timeout: '1s', request_header_timeout: '1s' } } });
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const limiter = gw.reconciler.current!.apps.get('llm')!.targets[0]!.limiter;
  // 200 KB announced (over buffer_body_bytes: streamed after admission), 1 KB sent, then nothing.
  const out = rawExchange(gw.url, `POST /llm/upload HTTP/1.1\r\nhost: x\r\ncontent-length: 200000\r\n\r\n${'a'.repeat(1000)}`);
  await waitFor(() => limiter.inFlight === 1, 10_000, 'the streamed upload is admitted');
  const o = await out;
  assert.match(o, /^HTTP\/1\.1 408 /);
  assert.match(o, /x-gateway-flag: DT/);
  await waitFor(() => limiter.inFlight === 0, 10_000, 'slot freed');
  assert.equal((await fetch(`${gw.url}/llm/next`)).status, 200);
  const m = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_requests_total');
  assert.match(m, /app="llm",cluster="blue",code="408",flag="DT"\} 1/);
  assert.equal(gateStats(gw, 'llm').errors, 0);
});
