// docs/metrics.md lists exactly the metrics the gateway registers (besides
// prom-client's process metrics, documented as serve_gateway_process_*).
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
  const documented = new Set([...doc.matchAll(/`(serve_gateway_[a-z0-9_]+)`/g)].map((x) => x[1]!));
  for (const name of registered) assert.ok(documented.has(name), `${name} is registered but not in docs/metrics.md`);
  for (const name of documented) assert.ok(registered.has(name), `${name} is in docs/metrics.md but not registered`);
});
