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
