// docs/metrics.md lists exactly the metrics the gateway registers; prom-client's
// process and Node.js metrics are documented as the families serve_gateway_process_*
// and serve_gateway_nodejs_*, and every one of them must fall in a documented family.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Instruments } from './instruments.ts';

test('docs/metrics.md and the registered metrics name the same serve_gateway_* metrics', async () => {
  const none = () => [];
  const m = new Instruments(
    { inFlight: none, queueDepth: none, capacity: none, trafficWeight: none, endpointHealthy: none, openStreams: none, dashboardReachable: none, snapshotVersion: () => 0 },
    { defaultMetrics: false },
  );
  const registered = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
  const doc = readFileSync(join(import.meta.dirname, '../../docs/metrics.md'), 'utf8');
  // prom-client's families (and their examples) are checked by the next test.
  const documented = new Set([...doc.matchAll(/`(serve_gateway_[a-z0-9_]+)`/g)].map((x) => x[1]!).filter((n) => !/^serve_gateway_(process|nodejs)_/.test(n)));
  for (const name of registered) assert.ok(documented.has(name), `${name} is registered but not in docs/metrics.md`);
  for (const name of documented) assert.ok(registered.has(name), `${name} is in docs/metrics.md but not registered`);
});

test('prom-client\'s default metrics fall in the families docs/metrics.md names (serve_gateway_process_*, serve_gateway_nodejs_*)', async () => {
  const none = () => [];
  const sources = { inFlight: none, queueDepth: none, capacity: none, trafficWeight: none, endpointHealthy: none, openStreams: none, dashboardReachable: none, snapshotVersion: () => 0 };
  const own = new Set((await new Instruments(sources, { defaultMetrics: false }).registry.getMetricsAsJSON()).map((x) => x.name));
  const all = (await new Instruments(sources).registry.getMetricsAsJSON()).map((x) => x.name);
  const defaults = all.filter((n) => !own.has(n));
  assert.ok(defaults.length > 0);
  const doc = readFileSync(join(import.meta.dirname, '../../docs/metrics.md'), 'utf8');
  const families = [...doc.matchAll(/`(serve_gateway_[a-z0-9_]+)\*`/g)].map((x) => x[1]!);
  assert.deepEqual(families.sort(), ['serve_gateway_nodejs_', 'serve_gateway_process_']);
  for (const name of defaults) assert.ok(families.some((f) => name.startsWith(f)), `${name} is in no documented family`);
  for (const f of families) assert.ok(defaults.some((n) => n.startsWith(f)), `no registered metric in the documented family ${f}*`);
  assert.ok(!defaults.some((n) => n.includes('process_process_')), 'no doubled prefix');
  const examples = [...doc.matchAll(/`(serve_gateway_(?:process|nodejs)_[a-z0-9_]+)`/g)].map((x) => x[1]!);
  for (const e of examples) assert.ok(all.includes(e), `docs/metrics.md names ${e}, which is not registered`);
});

test('PlainHistogram renders what a prom-client Histogram renders for the same observations', async () => {
  const { Histogram, Registry } = await import('prom-client');
  const { PlainHistogram } = await import('./instruments.ts');
  const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
  const ref = new Registry();
  const plainReg = new Registry();
  const h = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['app', 'cluster'], buckets, registers: [ref] });
  const p = new PlainHistogram('x_seconds', 'h', ['app', 'cluster'], buckets);
  plainReg.registerMetric(p as never);
  const unused = p.cell(['never', 'observed']);
  assert.equal(unused.count, 0);
  const values = [0, 0.004, 0.005, 0.0051, 0.3, 1, 7, 299.9, 300, 301, 1e6, 0.1 + 0.2];
  for (const [i, v] of values.entries()) {
    const app = i % 3 === 0 ? 'a"b\\c' : 'llm';
    const cluster = i % 2 === 0 ? 'blue' : 'green';
    h.labels(app, cluster).observe(v);
    p.cell([app, cluster]).observe(v);
  }
  assert.equal(await plainReg.metrics(), await ref.metrics());
  assert.deepEqual(await plainReg.getMetricsAsJSON(), await ref.getMetricsAsJSON());
  h.reset();
  p.reset();
  assert.equal(await plainReg.metrics(), await ref.metrics());
});

test('requests and upstream attempts counted in plain cells are exported on scrape, and keep adding up', async () => {
  const none = () => [];
  const m = new Instruments(
    { inFlight: none, queueDepth: none, capacity: none, trafficWeight: none, endpointHealthy: none, openStreams: none, dashboardReachable: none, snapshotVersion: () => 0 },
    { defaultMetrics: false },
  );
  const h = m.handles('llm', 'blue');
  h.countRequest(200, '');
  h.countRequest(200, '');
  h.countRequest(404, '');
  h.countRequest(200, '');
  h.countRequest(503, 'QF');
  h.attemptOk.n++;
  m.attemptCell('blue', 'reset').n++;
  m.requests.labels('llm', 'blue', '200', '').inc(); // direct prom-client use still adds up
  let text = await m.registry.getSingleMetricAsString('serve_gateway_requests_total');
  assert.match(text, /serve_gateway_requests_total\{app="llm",cluster="blue",code="200",flag=""\} 4/);
  assert.match(text, /code="404",flag=""\} 1/);
  assert.match(text, /code="503",flag="QF"\} 1/);
  h.countRequest(200, '');
  text = await m.registry.getSingleMetricAsString('serve_gateway_requests_total');
  assert.match(text, /code="200",flag=""\} 5/);
  const attempts = await m.registry.getSingleMetricAsString('serve_gateway_upstream_attempts_total');
  assert.match(attempts, /\{cluster="blue",outcome="ok"\} 1/);
  assert.match(attempts, /\{cluster="blue",outcome="reset"\} 1/);
  h.duration.observe(0.02);
  assert.match(await m.registry.getSingleMetricAsString('serve_gateway_request_duration_seconds'), /_count\{app="llm",cluster="blue"\} 1/);
});

test('a worker thread\'s deltas, added in the main thread, show in its /metrics once, with the same labels', async () => {
  const none = () => [];
  const sources = { inFlight: none, queueDepth: none, capacity: none, trafficWeight: none, endpointHealthy: none, openStreams: none, dashboardReachable: none, snapshotVersion: () => 0 };
  const main = new Instruments(sources, { defaultMetrics: false });
  const worker = new Instruments(sources, { defaultMetrics: false });
  const h = worker.handles('llm', 'blue');
  h.countRequest(200, '');
  h.countRequest(200, '');
  h.countRequest(503, 'QF');
  h.attemptOk.n++;
  h.duration.observe(0.02);
  worker.upstreamAttempts.labels('blue', 'connect').inc();
  worker.rejections.labels('llm', 'blue', 'queue_full').inc();
  worker.retries.labels('blue', 'connect').inc();
  worker.connectionsDropped.inc();
  main.handles('llm', 'blue').countRequest(200, '');
  main.addDeltas(await worker.takeDeltas());
  // A second take has nothing left: nothing is counted twice.
  main.addDeltas(await worker.takeDeltas());
  const text = await main.registry.metrics();
  for (const line of [
    'serve_gateway_requests_total{app="llm",cluster="blue",code="200",flag=""} 3',
    'serve_gateway_requests_total{app="llm",cluster="blue",code="503",flag="QF"} 1',
    'serve_gateway_upstream_attempts_total{cluster="blue",outcome="ok"} 1',
    'serve_gateway_upstream_attempts_total{cluster="blue",outcome="connect"} 1',
    'serve_gateway_admission_rejections_total{app="llm",cluster="blue",reason="queue_full"} 1',
    'serve_gateway_retries_total{cluster="blue",reason="connect"} 1',
    'serve_gateway_connections_dropped_total 1',
    'serve_gateway_request_duration_seconds_count{app="llm",cluster="blue"} 1',
  ]) {
    assert.ok(text.includes(`${line}\n`), `missing: ${line}\n${text}`);
  }
});
