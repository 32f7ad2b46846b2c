// Head-failure drill on real Ray: both clusters run with GCS fault tolerance
// backed by a redis-server the harness starts. Under load through the gateway
// the active cluster's gcs_server and dashboard are SIGKILLed: no request may
// fail, the gateway keeps routing with the last known capacities and reports
// the dashboard unreachable; then both are restarted by hand (what KubeRay's
// head-pod restart does) and the gateway picks up live state again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { send } from '../conformance/http-client.ts';
import { APPS_DIR, RayCluster, Redis, rayUnavailable, startClusters, waitUntil } from './ray-cluster.ts';
import type { ServeDoc } from './ray-cluster.ts';
import { capacityOf, dashboardReachable, runLoad, startGatewayFor, waitLive } from './gateway-stack.ts';
import type { GatewayStack } from './gateway-stack.ts';

const skip = rayUnavailable();

/** gateway-apps.yaml trimmed to the apps the drill loads (fewer replicas to start). */
function drillDoc(llmReplicas = 2): ServeDoc {
  const doc = parseYaml(readFileSync(join(APPS_DIR, 'gateway-apps.yaml'), 'utf8')) as { applications: Array<Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  doc.applications = doc.applications.filter((a) => a['name'] === 'llm' || a['name'] === 'default');
  const llm = doc.applications.find((a) => a['name'] === 'llm')!;
  llm['deployments'].find((d: { name: string }) => d.name === 'LLMServer').num_replicas = llmReplicas;
  return doc as unknown as ServeDoc;
}

describe('head-failure drill: GCS fault tolerance with Redis', { skip: skip ?? false }, () => {
  let blue: RayCluster;
  let green: RayCluster;
  let redis: Redis | null = null;
  let stack: GatewayStack;

  before(async () => {
    const started = await startClusters(['blue', 'green'], { redis: true });
    [blue, green] = started.clusters as [RayCluster, RayCluster];
    redis = started.redis;
    await Promise.all([blue.deploy(drillDoc()), green.deploy(drillDoc())]);
    stack = await startGatewayFor([blue, green], [blue.serveDoc(drillDoc()), green.serveDoc(drillDoc())]);
    await Promise.all([waitLive(stack, 'blue', ['llm', 'default']), waitLive(stack, 'green', ['llm', 'default'])]);
  }, { timeout: 240_000 });

  after(async () => {
    await stack?.close();
    blue?.stop();
    green?.stop();
    redis?.stop();
    for (const c of [blue, green]) if (c) await c.waitGone();
  });

  test('kill gcs_server + dashboard under load: zero failed requests, last known capacity, then live again', { timeout: 180_000 }, async () => {
    const before = await capacityOf(stack, 'llm', 'blue');
    assert.equal(before.capacity, 16, '8 × 2 replicas from the live dashboard');
    const load = runLoad(stack.url, { clients: 8, durationMs: 120_000, path: '/llm/drill' });
    try {
      await waitUntil('load running', 10_000, async () => load.snapshot().ok >= 50);
      const gcs = blue.gcsServer();
      const dash = blue.dashboard();
      const t0 = Date.now();
      blue.kill(gcs);
      blue.kill(dash);
      const atKill = load.snapshot();

      await waitUntil('gateway reports blue dashboard unreachable', 15_000, async () => (await dashboardReachable(stack, 'blue')) === false);
      const down = await capacityOf(stack, 'llm', 'blue');
      assert.equal(down.capacity, 16, 'last known capacity kept while the dashboard is down');
      // Serve keeps serving with its GCS gone: a few more seconds of load.
      const mid = load.snapshot();
      await waitUntil('5 s of load with the head down', 20_000, async () => Date.now() - t0 >= 5000 && load.snapshot().ok >= mid.ok + 50);
      const direct = await send(`${blue.serveUrl}/llm/direct`);
      assert.equal(direct.status, 200, 'the Serve proxy answers with GCS down');
      const duringDown = load.snapshot();
      console.log(`drill: head down ${Date.now() - t0} ms: ${duringDown.ok - atKill.ok} ok, ${duringDown.failed - atKill.failed} failed while gcs_server and dashboard were dead`);

      // Restart like a head-pod restart would: GCS first (state from Redis), then the dashboard.
      blue.restart(gcs);
      await waitUntil('raylet reconnected to the restarted GCS', 60_000, async () => blue.find('/gcs/gcs_server').length === 1 && (await send(`${blue.serveUrl}/-/healthz`)).status === 200);
      const gcsBackMs = Date.now() - t0;
      blue.restart(dash);
      await waitUntil('gateway reports blue dashboard reachable again', 90_000, async () => (await dashboardReachable(stack, 'blue')) === true, 500);
      const recoveredMs = Date.now() - t0;
      const live = await capacityOf(stack, 'llm', 'blue');
      assert.equal(live.status, 'RUNNING');
      assert.equal(live.capacity, 16);

      // Live state, not a cache: scale LLMServer to 1 replica through the restarted dashboard.
      await blue.deploy(drillDoc(1));
      await waitUntil('gateway sees 1 LLMServer replica on blue', 60_000, async () => (await capacityOf(stack, 'llm', 'blue')).capacity === 8);
      load.stop();
      const res = await load.done;
      console.log(`drill: ${res.ok + res.failed} requests (${res.streams} streams), ${res.failed} failed; GCS back after ${gcsBackMs} ms, dashboard reachable after ${recoveredMs} ms (restarted at ${gcsBackMs} ms); by cluster ${JSON.stringify(res.byCluster)}`);
      assert.deepEqual(res.failures, []);
      assert.equal(res.failed, 0);
    } finally {
      load.stop();
      await load.done;
    }
  });
});
