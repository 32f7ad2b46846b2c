// Head-failure drill on real Ray: both clusters run with GCS fault tolerance
// backed by a redis-server the harness starts. Under load through the gateway
// the active cluster's gcs_server and dashboard are SIGKILLed: no request may
// fail, the gateway keeps routing with the last known capacities and reports
// the dashboard unreachable; then both are restarted by hand (what KubeRay's
// head-pod restart does) and the gateway picks up live state again.
//
// Every wait is sized for a busy 2-core CI machine (DEADLINE in ray-cluster.ts):
// the restarted dashboard took 35 s in one run and more than 85 s in others,
// so the test first waits for the dashboard process itself (minutes), then
// gives the gateway a fixed number of its poll intervals to see it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { send } from '../conformance/http-client.ts';
import { APPS_DIR, CLUSTER_SETUP_TIMEOUT_MS, DEADLINE, RayCluster, Redis, WaitAborted, httpGet, rayUnavailable, startClusters, waitUntil } from './ray-cluster.ts';
import type { ServeDoc } from './ray-cluster.ts';
import { DASHBOARD_POLL_MS, capacityOf, dashboardReachable, observeGateway, runLoad, startGatewayFor, waitLive } from './gateway-stack.ts';
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

/** Drill deadlines (ms), each several times what a busy 2-core machine was seen to need. */
const WAIT = {
  loadRunning: 60_000,
  unreachable: 60_000,
  headDown: 60_000,
  gcsBack: DEADLINE.gcsRestart,
  dashboardBack: DEADLINE.dashboardRestart,
  /** Once the restarted dashboard answers: 20 of the gateway's poll intervals, at least 10 s. */
  gatewayCatchUp: Math.max(20 * DASHBOARD_POLL_MS, 10_000),
  redeploy: DEADLINE.deploy + DEADLINE.proxy,
  gatewaySeesScale: DEADLINE.gatewayLive,
} as const;
/** The waits run one after another; plus time for the requests between them. */
const DRILL_TIMEOUT_MS = Object.values(WAIT).reduce((a, b) => a + b, 0) + 60_000;

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
    console.log(`drill setup: dashboards answered ${blue.dashboardStartMs} ms (blue) and ${green.dashboardStartMs} ms (green) after ray start`);
  }, { timeout: CLUSTER_SETUP_TIMEOUT_MS });

  after(async () => {
    await stack?.close();
    blue?.stop();
    green?.stop();
    redis?.stop();
    for (const c of [blue, green]) if (c) await c.waitGone();
  });

  test('kill gcs_server + dashboard under load: zero failed requests, last known capacity, then live again', { timeout: DRILL_TIMEOUT_MS }, async () => {
    const before = await capacityOf(stack, 'llm', 'blue');
    assert.equal(before.capacity, 16, '8 × 2 replicas from the live dashboard');
    // Runs until load.stop() below; the bound only ends a drill that hangs.
    const load = runLoad(stack.url, { clients: 8, durationMs: DRILL_TIMEOUT_MS, path: '/llm/drill' });
    try {
      await waitUntil('load running', WAIT.loadRunning, async () => load.snapshot().ok >= 50, {
        observe: async () => `load ${JSON.stringify(load.snapshot())}\n${await observeGateway(stack, 'blue', ['llm'])}`,
      });
      const gcs = blue.gcsServer();
      const dash = blue.dashboard();
      const t0 = Date.now();
      blue.kill(gcs);
      blue.kill(dash);
      const atKill = load.snapshot();

      await waitUntil('gateway reports blue dashboard unreachable', WAIT.unreachable, async () => (await dashboardReachable(stack, 'blue')) === false, {
        observe: async () => `${await observeGateway(stack, 'blue', ['llm'])}\n${await blue.observeDashboard()}`,
      });
      const down = await capacityOf(stack, 'llm', 'blue');
      assert.equal(down.capacity, 16, 'last known capacity kept while the dashboard is down');
      // Serve keeps serving with its GCS gone: a few more seconds of load.
      const mid = load.snapshot();
      await waitUntil('5 s of load with the head down', WAIT.headDown, async () => Date.now() - t0 >= 5000 && load.snapshot().ok >= mid.ok + 50, {
        observe: async () => `load ${JSON.stringify(load.snapshot())} (at 5 s mark: ${mid.ok} ok)\n${await observeGateway(stack, 'blue', ['llm'])}\n${await blue.observeProxy()}`,
      });
      const direct = await send(`${blue.serveUrl}/llm/direct`);
      assert.equal(direct.status, 200, 'the Serve proxy answers with GCS down');
      const duringDown = load.snapshot();
      console.log(`drill: head down ${Date.now() - t0} ms: ${duringDown.ok - atKill.ok} ok, ${duringDown.failed - atKill.failed} failed while gcs_server and dashboard were dead`);

      // Restart like a head-pod restart would: GCS first (state from Redis), then the dashboard.
      const gcsPid = blue.restart(gcs);
      await waitUntil('raylet reconnected to the restarted GCS', WAIT.gcsBack, async () => blue.find('/gcs/gcs_server').length === 1 && (await send(`${blue.serveUrl}/-/healthz`)).status === 200, {
        everyMs: 500,
        observe: () => blue.observeGcs(gcsPid),
      });
      const gcsBackMs = Date.now() - t0;
      const logMark = blue.dashboardLogMark();
      const dashPid = blue.restart(dash);
      const tDash = Date.now();

      // 1. The restarted dashboard process itself: how long Ray takes to bring it
      // back (35 s to over 85 s on a busy 2-core machine) is Ray's, not the gateway's.
      let first200Ms: number | null = null;
      let answerMs = 0;
      await waitUntil('restarted blue dashboard answering GET /api/serve/applications/ with Serve state', WAIT.dashboardBack, async () => {
        const failed = blue.dashboardFailure(logMark);
        if (failed) throw new WaitAborted(`the restarted dashboard logged: ${failed}`);
        const t = Date.now();
        const r = await httpGet(`${blue.dashboardUrl}/api/serve/applications/`, 10_000);
        if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text.slice(0, 200)}`);
        first200Ms ??= Date.now() - tDash;
        answerMs = Date.now() - t;
        // What the gateway needs to call it reachable: the Serve controller's applications.
        const apps = (JSON.parse(r.text) as { applications?: Record<string, unknown> }).applications ?? {};
        return Object.keys(apps).length > 0;
      }, { everyMs: 500, observe: () => blue.observeDashboard(dashPid) });
      const dashboardRestartMs = Date.now() - tDash;
      console.log(`drill: restarted dashboard answered 200 after ${first200Ms} ms, with Serve state after ${dashboardRestartMs} ms (that answer took ${answerMs} ms)`);

      // 2. The gateway polls it every DASHBOARD_POLL_MS: a fixed, short allowance.
      await waitUntil(`gateway reports blue dashboard reachable again (within ${WAIT.gatewayCatchUp} ms of the dashboard answering)`, WAIT.gatewayCatchUp, async () => (await dashboardReachable(stack, 'blue')) === true, {
        everyMs: 100,
        observe: async () => `${await observeGateway(stack, 'blue', ['llm'])}\n${await blue.observeDashboard(dashPid)}`,
      });
      const recoveredMs = Date.now() - t0;
      const gatewayLagMs = Date.now() - tDash - dashboardRestartMs;
      const live = await capacityOf(stack, 'llm', 'blue');
      assert.equal(live.status, 'RUNNING');
      assert.equal(live.capacity, 16);

      // Live state, not a cache: scale LLMServer to 1 replica through the restarted dashboard.
      await blue.deploy(drillDoc(1));
      await waitUntil('gateway sees 1 LLMServer replica on blue', WAIT.gatewaySeesScale, async () => (await capacityOf(stack, 'llm', 'blue')).capacity === 8, {
        observe: async () => `${await observeGateway(stack, 'blue', ['llm'])}\n${await blue.observeApps(['llm'])}`,
      });
      load.stop();
      const res = await load.done;
      const totalMs = Date.now() - t0;
      console.log(
        `drill: ${res.ok + res.failed} requests (${res.streams} streams), ${res.failed} failed; GCS back after ${gcsBackMs} ms; ` +
          `dashboard restart ${dashboardRestartMs} ms (first 200 after ${first200Ms} ms), gateway saw it ${gatewayLagMs} ms later, reachable after ${recoveredMs} ms (restarted at ${gcsBackMs} ms); ` +
          `load ran ${totalMs} ms from the kill; by cluster ${JSON.stringify(res.byCluster)}`,
      );
      assert.deepEqual(res.failures, []);
      assert.equal(res.failed, 0);
      assert.equal(res.endedBy, 'stop', 'the load ran through the whole drill (not ended by its upper bound)');
    } finally {
      load.stop();
      await load.done;
    }
  });
});
