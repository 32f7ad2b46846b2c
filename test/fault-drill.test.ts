// Fault drills under load (issue 7), bounded and in `npm test`:
//  (a) stalled clients at 4× an app's capacity — slow bodies (headers, a few
//      bytes, then a trickle that never completes) and never-reading SSE
//      clients — while normal clients keep asking: every normal request gets
//      its 200, and the stalled ones are cut by the server.* limits;
//  (b) an upstream that reads the whole request, records its id, then drops
//      the connection: the request is never sent twice (whatever
//      retry.max_attempts) and the client gets 502 UR.
// No assertion on elapsed time: a wait longer than the configured limits shows
// as an outcome (a queue timeout is set to many times the client limits, so a
// normal request stuck behind a stalled client's slot would end in 503 QT).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, LogRecorder, waitFor } from './helpers/stack.ts';
import { startGateway, type Gateway } from '../src/main.ts';
import { RawUpstream, startRawUpstream, type UpstreamAction } from './helpers/raw-upstream.ts';
import { rawExchange, responseHeader, showBytes } from './helpers/raw-client.ts';

const CAPACITY = 4;
/** Client limits of the drill gateway: small, so stalled clients are cut quickly. */
const CLIENT_LIMIT = '1s';
/** Many times the client limits: a normal request waiting this long for a slot fails with 503 QT. */
const QUEUE_TIMEOUT = '15s';

async function drillGateway(up: RawUpstream, extra: Record<string, unknown>): Promise<{ gw: Gateway; close(): Promise<void> }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-drill-'));
  const gw = await startGateway({
    config: buildConfig({
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      state_dir: stateDir,
      clusters: [
        {
          name: 'blue',
          endpoints: [up.url],
          serve_config: `applications:\n  - {name: llm, route_prefix: /llm, import_path: a:b, deployments: [{name: L, max_ongoing_requests: ${CAPACITY}}]}\n`,
        },
      ],
      health: { probe_interval: '60s', probe_timeout: '30s' },
      shutdown: { drain_delay: '0s', grace_period: '1s' },
      ...extra,
    }),
    logger: new LogRecorder(),
    watch: false,
    adminToken: null,
  });
  const close = async () => {
    await up.close();
    await gw.close();
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => gw.reconciler.clusters.get('blue')!.endpoints.every((e) => e.health.probeOk === true), 30_000, 'first probe');
  } catch (err) {
    await close();
    throw err;
  }
  return { gw, close };
}

/** A raw client connection that stays under the test's control. */
interface Stalled {
  readonly kind: string;
  readonly socket: Socket;
  /** Everything the gateway sent (latin1). */
  received: string;
  /** The gateway closed the connection. */
  closed: boolean;
}

function openStalled(port: number, kind: string, bytes: string, read: boolean): Promise<Stalled> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const s: Stalled = { kind, socket, received: '', closed: false };
    socket.on('error', () => {});
    socket.on('close', () => (s.closed = true));
    socket.on('data', (c: Buffer) => {
      // A never-reading client keeps only what arrived before it paused.
      if (s.received.length < 4096) s.received += c.toString('latin1').slice(0, 4096);
    });
    socket.once('connect', () => {
      socket.write(bytes, 'latin1');
      if (!read) socket.pause();
      resolve(s);
    });
    socket.once('error', reject);
  });
}

test('drill (a): slow-body and never-reading clients at 4x capacity do not starve normal clients', { timeout: 120_000 }, async (t) => {
  const up = await startRawUpstream();
  up.onRequest = (r): UpstreamAction | undefined => (r.target.startsWith('/llm/sse') ? { kind: 'sse', eventBytes: 16 * 1024 } : undefined);
  const { gw, close } = await drillGateway(up, {
    admission: { queue_size: 200, queue_timeout: QUEUE_TIMEOUT },
    server: { request_header_timeout: CLIENT_LIMIT, request_timeout: CLIENT_LIMIT, write_timeout: CLIENT_LIMIT },
  });
  t.after(close);
  const port = Number(new URL(gw.url).port);
  const limiter = gw.reconciler.current!.apps.get('llm')!.targets[0]!.limiter;
  assert.equal(limiter.limit, CAPACITY);

  // 16 stalled clients = 4x the capacity of 4.
  const stalled: Stalled[] = [];
  const head = (target: string, framing: string) => `POST ${target} HTTP/1.1\r\nHost: drill.test\r\n${framing}\r\n`;
  for (let i = 0; i < 4; i++) {
    // Small body (buffered): announces 100 bytes, sends 10, then trickles.
    stalled.push(await openStalled(port, 'small body', head(`/llm/slow-small-${i}`, 'Content-Length: 100\r\n') + 'x'.repeat(10), true));
  }
  for (let i = 0; i < 2; i++) {
    // Large body (streamed to Serve once admitted): announces 1 MiB, sends 10 KiB.
    stalled.push(await openStalled(port, 'large body', head(`/llm/slow-large-${i}`, 'Content-Length: 1048576\r\n') + 'y'.repeat(10_240), true));
  }
  for (let i = 0; i < 2; i++) {
    // Chunked body: one chunk, never the last one.
    stalled.push(await openStalled(port, 'chunked body', head(`/llm/slow-chunked-${i}`, 'Transfer-Encoding: chunked\r\n') + 'a\r\n0123456789\r\n', true));
  }
  for (let i = 0; i < 8; i++) {
    // An endless event stream the client never reads.
    stalled.push(await openStalled(port, 'never-reading stream', `GET /llm/sse-${i} HTTP/1.1\r\nHost: drill.test\r\naccept: text/event-stream\r\n\r\n`, false));
  }
  await waitFor(() => gw.proxy.counters.activeRequests >= 16 || stalled.some((s) => s.closed), 30_000, 'stalled requests received');

  // Normal clients: 4 loops x 6 requests on fresh connections. Each completion
  // makes every slow-body client send one more byte (they never finish).
  const trickle = () => {
    for (const s of stalled) if (s.kind !== 'never-reading stream' && !s.closed) s.socket.write(s.kind === 'chunked body' ? '1\r\nz\r\n' : 'z');
  };
  const outcomes: string[] = [];
  let failed = false;
  await Promise.all(
    Array.from({ length: 4 }, async (_, loop) => {
      // Stops at the first failure: each one costs a whole queue timeout.
      for (let i = 0; i < 6 && !failed; i++) {
        const r = await rawExchange({
          port,
          steps: [{ send: `POST /llm/normal-${loop}-${i} HTTP/1.1\r\nHost: drill.test\r\nContent-Length: 5\r\n\r\nhello` }],
          expectResponses: 1,
          deadlineMs: 60_000,
        });
        const res = r.responses[0];
        outcomes.push(res === undefined ? `none (${r.end}${r.error ? ` ${r.error}` : ''})` : `${res.status}${responseHeader(res, 'x-gateway-flag') ? ` ${responseHeader(res, 'x-gateway-flag')}` : ''}`);
        if (res?.status !== 200) failed = true;
        trickle();
      }
    }),
  );
  const tally = new Map<string, number>();
  for (const o of outcomes) tally.set(o, (tally.get(o) ?? 0) + 1);
  const held = `slots held when the normal clients gave up: ${limiter.inFlight}; upstream streams open: ${up.busy}; slow-body clients not cut: ${stalled.filter((s) => !s.closed && s.kind !== 'never-reading stream').map((s) => s.kind).join(', ') || 'none'}`;
  assert.deepEqual([...tally], [['200', 24]], `every normal request is served (a 503 QT means it waited ${QUEUE_TIMEOUT} for a slot a stalled client held; ${held})`);

  // Every stalled client is cut by the gateway (the test never closes them first).
  // The slow-body ones read, so they see the close; a never-reading client cannot
  // see anything, so for those the gateway side is checked: its upstream stream
  // is gone and the request ended with flag DT (status 200 already sent).
  const readers = stalled.filter((s) => s.kind !== 'never-reading stream');
  const cut = () => readers.every((s) => s.closed) && up.busy === 0 && limiter.inFlight === 0 && limiter.queued === 0;
  try {
    await waitFor(cut, 60_000, 'stalled clients cut');
  } catch {
    assert.fail(
      `stalled clients not cut: ${readers.filter((s) => !s.closed).map((s) => s.kind).join(', ') || 'readers all closed'}; ` +
        `${up.busy} upstream streams still open; ${limiter.inFlight} slots held, ${limiter.queued} queued`,
    );
  } finally {
    for (const s of stalled) s.socket.destroy();
  }
  for (const s of readers) {
    assert.match(s.received, /^HTTP\/1\.1 408 /, `${s.kind}: 408 when request_timeout ran out (got ${JSON.stringify(showBytes(s.received, 200))})`);
  }
  const counted = await gw.metrics.registry.getSingleMetricAsString('serve_gateway_requests_total');
  const dt = /app="llm",cluster="blue",code="200",flag="DT"\} (\d+)/.exec(counted);
  assert.equal(Number(dt?.[1] ?? 0), 8, `the 8 never-reading streams ended by write_timeout (DT): ${counted}`);
  const small = up.records.filter((r) => r.target.startsWith('/llm/slow-small-'));
  assert.equal(small.length, 0, 'no incomplete small body reached Serve');
  const gate = gw.reconciler.current!.apps.get('llm')!.targets[0]!.stats.snapshot();
  assert.equal(gate.errors, 0, 'stalled clients are not errors of the cluster');
});

for (const maxAttempts of [1, 2]) {
  test(`drill (b): upstream drops the connection after reading the whole request: never sent twice, 502 UR (retry.max_attempts ${maxAttempts})`, { timeout: 60_000 }, async (t) => {
    const up = await startRawUpstream();
    // GETs are answered (they warm the pool, so the next request goes on a reused
    // socket); every other request is read whole, recorded, then the connection
    // is closed (FIN) or reset (RST), alternately.
    let drops = 0;
    up.onRequest = (r): UpstreamAction | undefined => (r.method === 'GET' ? undefined : { kind: 'reset', how: drops++ % 2 === 0 ? 'fin' : 'rst' });
    const { gw, close } = await drillGateway(up, { retry: { max_attempts: maxAttempts } });
    t.after(close);
    const port = Number(new URL(gw.url).port);
    const variants: Array<[string, string]> = [
      ['POST small body', 'POST /llm/run HTTP/1.1\r\nHost: drill.test\r\nContent-Length: 11\r\n\r\n{"job": 42}'],
      ['POST empty body', 'POST /llm/run HTTP/1.1\r\nHost: drill.test\r\nContent-Length: 0\r\n\r\n'],
      ['PATCH small body', 'PATCH /llm/run HTTP/1.1\r\nHost: drill.test\r\nContent-Length: 2\r\n\r\n{}'],
      ['POST chunked body', 'POST /llm/run HTTP/1.1\r\nHost: drill.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
      ['POST 100 KiB body', `POST /llm/run HTTP/1.1\r\nHost: drill.test\r\nContent-Length: 102400\r\n\r\n${'b'.repeat(102_400)}`],
    ];
    const problems: string[] = [];
    let sent = 0;
    for (const [name, bytes] of variants) {
      for (const warm of [true, false]) {
        if (warm) {
          const w = await rawExchange({ port, steps: [{ send: 'GET /llm/warm HTTP/1.1\r\nHost: drill.test\r\n\r\n' }], expectResponses: 1, deadlineMs: 30_000 });
          assert.equal(w.responses[0]?.status, 200, 'warm-up GET');
        }
        const before = up.records.length;
        const r = await rawExchange({ port, steps: [{ send: bytes }], expectResponses: 1, deadlineMs: 30_000 });
        sent++;
        await waitFor(() => gw.proxy.counters.activeRequests === 0, 30_000, 'request finished');
        const res = r.responses[0];
        const seen = up.records.slice(before).map((x) => `${x.method} ${RawUpstream.values(x, 'x-request-id')[0]} on connection ${x.conn}${x.onConnIndex > 0 ? ' (reused)' : ''}`);
        const label = `${name}${warm ? ', pool warm (reused socket)' : ', fresh socket'}`;
        if (seen.length !== 1) problems.push(`${label}: the upstream executed it ${seen.length} times: ${seen.join('; ')}`);
        if (res?.status !== 502 || responseHeader(res, 'x-gateway-flag') !== 'UR') {
          problems.push(`${label}: client got ${res === undefined ? `no response (${r.end})` : `${res.status} ${responseHeader(res, 'x-gateway-flag') ?? ''}`}, want 502 UR`);
        }
      }
    }
    // Across the whole drill, by request id: no id twice.
    const byId = new Map<string, number>();
    for (const rec of up.records) {
      if (rec.method === 'GET') continue;
      const id = RawUpstream.values(rec, 'x-request-id')[0] ?? '(none)';
      byId.set(id, (byId.get(id) ?? 0) + 1);
    }
    const doubles = [...byId].filter(([, n]) => n > 1);
    assert.deepEqual(problems, [], `${problems.length} of ${sent} requests went wrong`);
    assert.equal(doubles.length, 0, `double executions by request id: ${JSON.stringify(doubles)}`);
    assert.equal([...byId.values()].reduce((a, b) => a + b, 0), sent, 'one execution per request sent');
  });
}
