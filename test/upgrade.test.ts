// WebSocket-style upgrades: routed and admitted like requests, then spliced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { buildConfig, LogRecorder, waitFor } from './helpers/stack.ts';
import { startGateway, type Gateway } from '../src/main.ts';

/** A Serve-like upstream: healthz, and an echo after a 101 on upgrade. */
async function echoUpstream(): Promise<{ server: Server; url: string; seen: Array<Record<string, string | string[] | undefined>> }> {
  const seen: Array<Record<string, string | string[] | undefined>> = [];
  const server = createServer((req, res) => res.end(req.url === '/-/healthz' ? 'success' : 'plain'));
  server.on('upgrade', (req, socket, head) => {
    seen.push(req.headers);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function gatewayFor(url: string, maxOngoing: number): Promise<Gateway> {
  return startGateway({
    config: buildConfig({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      state_dir: `/tmp/sg-ws-${process.pid}-${Math.random().toString(36).slice(2)}`,
      clusters: [{ name: 'blue', endpoints: [url], serve_config: `applications:\n  - {name: ws, route_prefix: /ws, import_path: a:b, deployments: [{name: D, max_ongoing_requests: ${maxOngoing}}]}\n` }],
      health: { probe_interval: '60s', probe_timeout: '10s' },
      shutdown: { drain_delay: '0s', grace_period: '300ms' },
    }),
    logger: new LogRecorder(),
    watch: false,
    adminToken: null,
  });
}

/** Opens a raw upgrade and resolves with the response head and the socket. */
function openUpgrade(gwUrl: string, path: string): Promise<{ head: string; socket: Socket; rest: Buffer }> {
  const u = new URL(gwUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    let buf = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n\r\n`));
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      resolve({ head: buf.subarray(0, end).toString(), socket, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
}

test('an upgrade is routed, admitted, spliced both ways, and frees its slot when closed', async (t) => {
  const up = await echoUpstream();
  const gw = await gatewayFor(up.url, 2);
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const { head, socket } = await openUpgrade(gw.url, '/ws/chat?x=1');
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.match(head, /\r\nx-serve-cluster: blue/);
  assert.match(head, /\r\nx-request-id: [0-9a-f-]{36}/);
  assert.equal(up.seen[0]!['upgrade'], 'websocket');
  assert.equal(String(up.seen[0]!['connection']).toLowerCase(), 'upgrade');
  assert.equal(up.seen[0]!['sec-websocket-version'], '13');
  assert.ok(up.seen[0]!['x-forwarded-for']);
  const echoed = new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
  socket.write('hello over the upgraded connection');
  assert.equal(await echoed, 'hello over the upgraded connection');
  const limiter = gw.reconciler.current!.apps.get('ws')!.targets[0]!.limiter;
  assert.equal(limiter.inFlight, 1, 'the open connection holds a slot');
  socket.destroy();
  await waitFor(() => limiter.inFlight === 0, 2000, 'slot released on close');
  const metrics = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_requests_total');
  assert.match(metrics, /app="ws",cluster="blue",code="101",flag=""\} 1/);
});

test('upgrades over capacity get 503 QF; unknown paths 404 NR', async (t) => {
  const up = await echoUpstream();
  const gw = await gatewayFor(up.url, 1);
  t.after(async () => {
    await gw.close();
    up.server.close();
  });
  const first = await openUpgrade(gw.url, '/ws');
  assert.match(first.head, /^HTTP\/1\.1 101 /);
  const second = await openUpgrade(gw.url, '/ws');
  assert.match(second.head, /^HTTP\/1\.1 503 /);
  assert.match(second.head, /\r\nx-gateway-flag: QF/);
  const missing = await openUpgrade(gw.url, '/elsewhere');
  assert.match(missing.head, /^HTTP\/1\.1 404 /);
  assert.match(missing.head, /\r\nx-gateway-flag: NR/);
  first.socket.destroy();
  second.socket.destroy();
  missing.socket.destroy();
});

test('an upstream that cannot be reached gives 502 UF', async (t) => {
  const up = await echoUpstream();
  const gw = await gatewayFor(up.url, 2);
  t.after(() => gw.close());
  const ep = gw.reconciler.clusters.get('blue')!.endpoints[0]!;
  await waitFor(() => ep.health.probeOk === true, 3000, 'first probe');
  await new Promise<void>((r) => up.server.close(() => r()));
  up.server.closeAllConnections();
  const r = await openUpgrade(gw.url, '/ws');
  assert.match(r.head, /^HTTP\/1\.1 502 /);
  assert.match(r.head, /\r\nx-gateway-flag: UF/);
  r.socket.destroy();
});

// Without the fix shutdown never resolves: the test's own timeout turns that into a failure.
test('shutdown ends upgraded connections when the grace period is over', { timeout: 15_000 }, async (t) => {
  const up = await echoUpstream();
  const gw = await gatewayFor(up.url, 2);
  t.after(() => up.server.close());
  const { head, socket } = await openUpgrade(gw.url, '/ws');
  assert.match(head, /^HTTP\/1\.1 101 /);
  const closed = new Promise((r) => socket.once('close', r));
  assert.equal(gw.upgrades.open, 1);
  await gw.shutdown(); // grace_period 300 ms: the open connection is ended when it runs out
  await closed;
  assert.equal(gw.upgrades.open, 0);
});
