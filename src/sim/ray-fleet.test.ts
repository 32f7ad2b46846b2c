import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RayFleet, defaultOutcome } from './ray-fleet.ts';
import type { DeployOutcome } from './ray-fleet.ts';

// Nodes on loopback aliases (all of 127/8 reaches lo on Linux), any free port.
const HEAD = '127.0.40.1';
const WORKER = '127.0.40.2';
const CONFIG = {
  applications: [
    { name: 'llm', route_prefix: '/llm', import_path: 'app.llm:app', deployments: [{ name: 'LLM', num_replicas: 2, max_ongoing_requests: 4 }] },
    { name: 'broken', route_prefix: '/broken', import_path: 'missing.module:app', deployments: [{ name: 'B' }] },
  ],
};

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${last}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('RayFleet: the Ray that KubeRay talks to', () => {
  let outcome: (app: Readonly<Record<string, unknown>>) => DeployOutcome = () => 'running';
  const fleet = new RayFleet({ servePort: 0, dashboardPort: 0, deployMs: 0, outcome: (_c, app) => outcome(app) });
  after(() => fleet.close());

  const dashboardUrl = (cluster: string): string => {
    const d = fleet.cluster(cluster)?.dashboard;
    assert.ok(d, `cluster ${cluster} has a dashboard`);
    return `${d.url}/api/serve/applications/`;
  };
  const put = (cluster: string, body: string): Promise<Response> =>
    fetch(dashboardUrl(cluster), { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
  const apps = async (cluster: string): Promise<Record<string, { status: string }>> => {
    const r = await fetch(`${dashboardUrl(cluster)}?api_type=declarative`);
    assert.equal(r.status, 200);
    return ((await r.json()) as { applications: Record<string, { status: string }> }).applications;
  };

  test('before a PUT the head answers as Ray with Serve not started, and no node serves :8000', async () => {
    await fleet.addNode('rs-a', HEAD, true);
    await fleet.addNode('rs-a', WORKER, false);
    const r = await fetch(`${dashboardUrl('rs-a')}?api_type=declarative`);
    assert.deepEqual(await r.json(), { deploy_mode: 'MULTI_APP', controller_info: {}, proxies: {}, applications: {}, target_capacity: null });
    assert.equal(fleet.cluster('rs-a')?.proxies.length, 0);
  });

  test('a PUT that is not JSON or not a valid Serve config is refused with 400 and deploys nothing', async () => {
    const bad = await put('rs-a', '{"applications": [');
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /not valid JSON/);
    const invalid = await put('rs-a', JSON.stringify({ applications: [{ name: 'x', route_prefix: 'no-slash', import_path: 'a:b' }] }));
    assert.equal(invalid.status, 400);
    assert.match(await invalid.text(), /route_prefix/);
    assert.equal(fleet.cluster('rs-a')?.serve, null);
  });

  test('a PUT deploys: DEPLOYING with no replicas, then each app as the outcome rule says', async () => {
    outcome = (app) => (String(app['import_path']).startsWith('missing.') ? 'failed' : 'running');
    const r = await put('rs-a', JSON.stringify(CONFIG));
    assert.equal(r.status, 200);
    const c = fleet.cluster('rs-a')!;
    assert.equal(c.proxies.length, 2);
    assert.equal(c.proxies[0]!.address.host, HEAD, 'the head node runs the proxy with index 0');
    const final = await until('outcomes', async () => {
      const a = await apps('rs-a');
      return a['llm']?.status === 'RUNNING' && a['broken']?.status === 'DEPLOY_FAILED' ? a : undefined;
    });
    assert.deepEqual(Object.keys(final).sort(), ['broken', 'llm']);
    // Every node serves; the answer names the cluster (the RayCluster).
    for (const p of c.proxies) {
      const res = await fetch(`${p.url}/llm/hello`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { cluster: string }).cluster, 'rs-a');
    }
    const health = await fetch(`${c.proxies[1]!.url}/-/healthz`);
    assert.equal(health.status, 200);
  });

  test('the same config again is a no-op; an app asking for GPUs stays DEPLOYING and its workers are not ready', async () => {
    const again = await put('rs-a', JSON.stringify(CONFIG));
    assert.equal(again.status, 200);
    assert.ok(fleet.events.some((e) => e.cluster === 'rs-a' && e.what === 'put-unchanged'));
    assert.equal((await apps('rs-a'))['llm']?.status, 'RUNNING');

    outcome = (app) => defaultOutcome('rs-b', app);
    await fleet.addNode('rs-b', '127.0.40.3', true);
    await fleet.addNode('rs-b', '127.0.40.4', false);
    const gpuApp = { ...CONFIG.applications[0], deployments: [{ name: 'LLM', num_replicas: 1, ray_actor_options: { num_gpus: 1 } }] };
    assert.equal((await put('rs-b', JSON.stringify({ applications: [gpuApp] }))).status, 200);
    await until('the outcome was applied', () => (fleet.events.some((e) => e.cluster === 'rs-b' && e.what === 'app-status') ? true : undefined));
    assert.equal((await apps('rs-b'))['llm']?.status, 'DEPLOYING');
    const worker = fleet.cluster('rs-b')!.proxies[1]!;
    const h = await fetch(`${worker.url}/-/healthz`);
    assert.equal(h.status, 503);
    assert.equal(await h.text(), 'No replicas are available yet.');
    fleet.cluster('rs-b')!.setAppStatus('llm', 'RUNNING');
    assert.equal((await fetch(`${worker.url}/-/healthz`)).status, 200);
  });

  test('a config that changes only target_capacity scales the RUNNING apps in place, nothing redeployed', async () => {
    const before = fleet.cluster('rs-a')!.serve;
    const rt = before!.runtimes.get('llm')!;
    assert.equal(rt.runningReplicas, 2);
    assert.equal((await put('rs-a', JSON.stringify({ ...CONFIG, target_capacity: 50 }))).status, 200);
    assert.equal(fleet.cluster('rs-a')!.serve, before, 'the same Serve instance (proxies kept, no DEPLOYING)');
    assert.equal(rt.runningReplicas, 1, 'ceil(2 × 50 %)');
    assert.equal((await apps('rs-a'))['llm']?.status, 'RUNNING');
    const doc = (await (await fetch(`${dashboardUrl('rs-a')}?api_type=declarative`)).json()) as { target_capacity: number | null };
    assert.equal(doc.target_capacity, 50);
    assert.equal((await put('rs-a', JSON.stringify({ ...CONFIG, target_capacity: 0 }))).status, 200);
    assert.equal(rt.runningReplicas, 0);
    assert.equal((await put('rs-a', JSON.stringify({ ...CONFIG, target_capacity: 100 }))).status, 200);
    assert.equal(rt.runningReplicas, 2);
    assert.ok(fleet.events.some((e) => e.cluster === 'rs-a' && e.what === 'put-target-capacity'));
  });

  test('removing the head stops its dashboard; removing every node forgets the cluster', async () => {
    const c = fleet.cluster('rs-b')!;
    const url = dashboardUrl('rs-b');
    const workerUrl = c.proxies[1]!.url;
    await fleet.removeNode('127.0.40.3');
    await assert.rejects(fetch(url));
    assert.equal((await fetch(`${workerUrl}/-/healthz`)).status, 200, 'the worker node still serves');
    await fleet.removeNode('127.0.40.4');
    assert.equal(fleet.cluster('rs-b'), undefined);
    await assert.rejects(fetch(`${workerUrl}/-/healthz`));
    await assert.rejects(fleet.addNode('rs-c', HEAD, false), /already belongs to cluster rs-a/);
  });
});
