// What each gateway feature costs per request, measured in-process on the
// real code (not a model of it): route match, header filtering + request id,
// admission acquire/release, cluster pick, metrics, rollout stats and one
// access-log line (pino to /dev/null, sync and async destinations).
//
//   node bench/features.ts [--iterations 2000000] [--rounds 7]
//
// Prints ns per call (median of rounds, min–max). Run pinned for stable
// numbers: taskset -c 1 node bench/features.ts
import { randomUUID } from 'node:crypto';
import { newRequestId } from '../src/core/request-id.ts';
import { openSync, writeSync } from 'node:fs';
import { pino } from 'pino';
import { Limiter, type Waiter } from '../src/admission/limiter.ts';
import { systemClock } from '../src/core/clock.ts';
import { StepStats } from '../src/control/step-stats.ts';
import { Instruments } from '../src/metrics/instruments.ts';
import { appendForwardingHeaders, filterRequestHeaders, filterResponseHeaders, newRequestHeaderInfo } from '../src/proxy/headers.ts';
import { buildRouteTable, matchRoute, routingPath } from '../src/routing/route-table.ts';
import { LineBatch, JsonLineAccessLog } from '../src/proxy/access-log.ts';
import { buildSplit, pickCluster, splitPoint, stickyPoint } from '../src/routing/traffic-split.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const N = arg('--iterations', 2_000_000);
const ROUNDS = arg('--rounds', 7);

let sink = 0;
function measure(name: string, n: number, fn: (i: number) => void): void {
  const samples: number[] = [];
  for (let i = 0; i < Math.min(n, 200_000); i++) fn(i); // warm up
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  samples.sort((a, b) => a - b);
  const med = samples[Math.floor(samples.length / 2)]!;
  console.log(`| ${name} | ${med.toFixed(0)} | ${samples[0]!.toFixed(0)}–${samples[samples.length - 1]!.toFixed(0)} |`);
}

const prefixes = ['/', '/llm', '/llm/v2', '/embed', '/chat', '/a/b', ...Array.from({ length: 14 }, (_, i) => `/app${i}`)];
const table = buildRouteTable(prefixes.map((p) => [p, p] as const));
const curlHeaders = ['Host', 'llm.example.com', 'User-Agent', 'curl/8.5.0', 'Accept', '*/*', 'Content-Type', 'application/json', 'Content-Length', '101'];
const browserish = [
  ...curlHeaders,
  'Accept-Encoding', 'gzip, deflate, br', 'Accept-Language', 'en-US', 'Connection', 'keep-alive', 'X-Session-Id', 'sess-42',
  'X-Forwarded-For', '203.0.113.9', 'X-Forwarded-Proto', 'https', 'Authorization', 'Bearer abc', 'Cookie', 'a=1; sid=xyz',
];
const responseRaw = ['content-type', 'application/json', 'content-length', '100', 'date', 'Thu, 26 Nov 2026 06:00:00 GMT', 'server', 'uvicorn', 'x-request-id', '0b9c0c3e-7d0a-4b56-9a6c-6e1e3f6f9a11'].map((s) => Buffer.from(s));

console.log(`Per-request cost of gateway features (ns per call, median of ${ROUNDS} rounds × ${N} calls, min–max), Node ${process.version}`);
console.log('');
console.log('| feature | ns | range |');
console.log('|---|---|---|');

measure('route: routingPath + matchRoute `/llm/v1/chat/completions?x=1` over 20 prefixes', N, () => {
  sink += matchRoute(table, routingPath('/llm/v1/chat/completions?x=1'))!.length;
});
measure('route: `/llm` (1 lookup)', N, () => {
  sink += matchRoute(table, '/llm')!.length;
});
measure('request headers: filter 5 curl headers + x-request-id (newRequestId) + x-forwarded-*', N, () => {
  const out: string[] = [];
  const info = newRequestHeaderInfo();
  filterRequestHeaders(curlHeaders, out, info, '');
  info.requestId = newRequestId();
  appendForwardingHeaders(out, info, '127.0.0.1', 'http');
  sink += out.length;
});
measure('request headers: filter 14 typical headers (sticky header picked out) + request id + forwarded', N / 2, () => {
  const out: string[] = [];
  const info = newRequestHeaderInfo();
  filterRequestHeaders(browserish, out, info, 'x-session-id');
  info.requestId = newRequestId();
  appendForwardingHeaders(out, info, '127.0.0.1', 'http');
  sink += out.length;
});
measure('request id: crypto.randomUUID() (before issue 13)', N, () => {
  sink += randomUUID().length;
});
measure('request id: newRequestId() (random per-process prefix + counter)', N, () => {
  sink += newRequestId().length;
});
measure('response headers: filter 5 upstream headers (undici Buffers) + x-serve-cluster', N / 2, () => {
  const out: string[] = [];
  const info = { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false };
  filterResponseHeaders(responseRaw, out, info);
  out.push('x-serve-cluster', 'blue');
  sink += out.length;
});
const split = buildSplit(['blue', 'green'], { blue: 80, green: 20 });
measure('cluster pick: random point', N, () => {
  sink += pickCluster(split, splitPoint(null, Math.random()));
});
measure('cluster pick: sticky hash of a 36-char key', N, () => {
  sink += pickCluster(split, stickyPoint('5f0c7a8e-1d2b-4c3a-9e8f-7a6b5c4d3e2f'));
});
const limiter = new Limiter('llm', 'blue', 1_000_000, 100, 30_000, systemClock);
const waiter: Waiter = { queueDeadlineMs: 0, queued: false, onAdmitted() {}, onQueueTimeout() {} };
measure('admission: acquire + release (free slot)', N, () => {
  limiter.acquire(waiter);
  limiter.release();
});
const metrics = new Instruments(
  {
    inFlight: () => [], queueDepth: () => [], capacity: () => [], trafficWeight: () => [], endpointHealthy: () => [],
    openStreams: () => [], dashboardReachable: () => [], snapshotVersion: () => 0,
  },
  { defaultMetrics: false },
);
const h = metrics.handles('llm', 'blue');
measure('metrics: requests_total inc + duration and ttfb histogram observes (cached handles)', N / 2, (i) => {
  h.countRequest(200, '');
  h.duration.observe((i % 100) / 1000);
  h.ttfb.observe((i % 50) / 1000);
});
measure('metrics: the same + upstream attempt, plain-number cells (issue 13)', N / 2, (i) => {
  h.countRequest(200, '');
  h.duration.observe((i % 100) / 1000);
  h.ttfb.observe((i % 50) / 1000);
  h.attemptOk.n++;
});
{
  // What the hot path did before issue 13: prom-client children (cached) and a labels() lookup per request.
  const { Counter, Histogram, Registry } = await import('prom-client');
  const reg = new Registry();
  const req = new Counter({ name: 'r', help: 'r', labelNames: ['app', 'cluster', 'code', 'flag'], registers: [reg] }).labels('llm', 'blue', '200', '');
  const hist = new Histogram({ name: 'd', help: 'd', labelNames: ['app', 'cluster'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers: [reg] });
  const dur = hist.labels('llm', 'blue');
  const ttfb = hist.labels('llm', 'green');
  const attempts = new Counter({ name: 'a', help: 'a', labelNames: ['cluster', 'outcome'], registers: [reg] });
  measure('metrics: the same + upstream attempt through prom-client children (before issue 13)', N / 2, (i) => {
    req.inc();
    dur.observe((i % 100) / 1000);
    ttfb.observe((i % 50) / 1000);
    attempts.labels('blue', 'ok').inc();
  });
}
measure('metrics: 2 × performance.now() (duration, ttfb)', N, () => {
  sink += performance.now() + performance.now();
});
const stats = new StepStats();
measure('rollout gate stats: StepStats.record', N, (i) => {
  stats.record({ upstreamError: false, latencyMs: 5 + (i % 20), ttfbMs: 2 + (i % 7), shed: false });
});
const devnull = openSync('/dev/null', 'w');
const syncLog = pino({ name: 'serve-gateway' }, pino.destination({ fd: devnull, sync: true }));
const asyncLog = pino({ name: 'serve-gateway' }, pino.destination({ fd: devnull, sync: false, minLength: 4096 }));
const line = (i: number) => ({
  req_id: '0b9c0c3e-7d0a-4b56-9a6c-6e1e3f6f9a11', method: 'POST', path: '/llm/v1/chat/completions', app: 'llm', cluster: 'blue',
  status: 200, flag: '', attempts: 1, duration_ms: 2.31 + (i % 10), ttfb_ms: 1.2,
});
measure('access log: one pino line, synchronous write to /dev/null', N / 10, (i) => syncLog.info(line(i)));
measure('access log: one pino line, asynchronous (buffered) destination', N / 10, (i) => asyncLog.info(line(i)));
// Synchronous writes, as process.stdout to a file (SyncWriteStream).
const lineLog = new JsonLineAccessLog(new LineBatch({ writableLength: 0, write: (b: Buffer) => writeSync(devnull, b) }));
measure('access log: the gateway\'s line (JsonLineAccessLog + LineBatch, 64 KiB synchronous writes)', N / 10, (i) =>
  lineLog.log('0b9c0c3e-7d0a-4b56-9a6c-6e1e3f6f9a11', 'POST', '/llm/v1/chat/completions', 'llm', 'blue', 200, '', 1, 2.31 + (i % 10), 1.2));
asyncLog.flush();
console.log('');
console.log(`(sink ${sink % 10})`);
