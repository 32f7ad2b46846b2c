import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildView, clusterConfigs, EMPTY_VIEW, resolveRoleWeights, type PodObject, type RayServiceObject } from './view.ts';
import { DEFAULT_APP_POLICY } from '../config/schema.ts';

const SERVE = 'applications:\n  - {name: llm, route_prefix: /llm, import_path: a:b, deployments: [{name: D, max_ongoing_requests: 4, num_replicas: 2}]}\n  - {name: web, route_prefix: /, import_path: a:c}\n';

function rs(active: string | null, pending: string | null, apps: Record<string, string> | null = null, pendingApps: Record<string, string> | null = null): RayServiceObject {
  const st = (m: Record<string, string> | null) => (m === null ? undefined : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { status: v }])));
  return {
    metadata: { name: 'rs', uid: 'u1' },
    spec: { serveConfigV2: SERVE, rayClusterDeletionDelaySeconds: 30 },
    status: {
      activeServiceStatus: { rayClusterName: active ?? '', ...(apps ? { applicationStatuses: st(apps) } : {}) },
      pendingServiceStatus: { rayClusterName: pending ?? '', ...(pendingApps ? { applicationStatuses: st(pendingApps) } : {}) },
    },
  };
}

function pod(cluster: string, ip: string, opts: { head?: boolean; ready?: boolean; serve?: boolean; port?: number; deleting?: boolean } = {}): PodObject {
  return {
    metadata: {
      name: `${cluster}-${ip}`,
      labels: { 'ray.io/cluster': cluster, 'ray.io/node-type': opts.head ? 'head' : 'worker', 'ray.io/serve': opts.serve === false ? 'false' : 'true' },
      ...(opts.deleting ? { deletionTimestamp: '2026-12-01T00:00:00Z' } : {}),
    },
    spec: { containers: [{ ports: [{ name: 'serve', containerPort: opts.port ?? 8000 }, { name: 'dashboard', containerPort: 8265 }] }] },
    status: { podIP: ip, phase: 'Running', conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] },
  };
}

test('endpoints are the ready serve pods of each cluster, addressed directly; the head pod gives the dashboard', () => {
  const v = buildView([rs('rs-a', null, { llm: 'RUNNING', web: 'RUNNING' })], [
    pod('rs-a', '10.0.0.1', { head: true, serve: false }),
    pod('rs-a', '10.0.0.2', { port: 9000 }),
    pod('rs-a', '10.0.0.3', { ready: false }),
    pod('rs-a', '10.0.0.4', { deleting: true }),
    pod('other', '10.0.9.9'),
  ], EMPTY_VIEW, 1000);
  assert.equal(v.rayservices[0]!.phase, 'steady');
  assert.deepEqual(v.clusters, [{ name: 'rs-a', rayservice: 'rs', role: 'active', endpoints: ['http://10.0.0.2:9000'], pods: 3, dashboard: 'http://10.0.0.1:8265', appStatuses: { llm: 'RUNNING', web: 'RUNNING' } }]);
  const [cfg] = clusterConfigs(v);
  assert.deepEqual(cfg!.serveApps!.map((a) => [a.name, a.routePrefix, a.status, a.maxOngoingRequests, a.replicas]), [['llm', '/llm', 'RUNNING', 4, 2], ['web', '/', 'RUNNING', 5, 1]]);
});

test('an upgrade: pending, flip (the old active becomes previous while it has pods), then its pods go', () => {
  const pods = [pod('rs-a', '10.0.0.1', { head: true }), pod('rs-b', '10.0.1.1', { head: true })];
  const v1 = buildView([rs('rs-a', null)], pods, EMPTY_VIEW, 1000);
  const v2 = buildView([rs('rs-a', 'rs-b', null, { llm: 'DEPLOYING', web: 'RUNNING' })], pods, v1, 2000);
  assert.equal(v2.rayservices[0]!.phase, 'upgrading');
  assert.deepEqual(v2.clusters.map((c) => [c.name, c.role]), [['rs-a', 'active'], ['rs-b', 'pending']]);
  // Blue/green: the active cluster's statuses are absent during the upgrade: unknown, never deleted.
  assert.deepEqual(clusterConfigs(v2)[0]!.serveApps!.map((a) => a.status), ['UNKNOWN', 'UNKNOWN']);
  assert.deepEqual(clusterConfigs(v2)[1]!.serveApps!.map((a) => a.status), ['DEPLOYING', 'RUNNING']);
  const v3 = buildView([rs('rs-b', null, { llm: 'RUNNING', web: 'RUNNING' })], pods, v2, 3000);
  assert.equal(v3.rayservices[0]!.phase, 'draining_previous');
  assert.equal(v3.rayservices[0]!.previous, 'rs-a');
  assert.equal(v3.rayservices[0]!.previousSinceMs, 3000);
  assert.equal(v3.rayservices[0]!.deletionDelayMs, 30_000);
  // The previous cluster comes first: the default weights keep traffic there until the policy moves it.
  assert.deepEqual(v3.clusters.map((c) => [c.name, c.role]), [['rs-a', 'previous'], ['rs-b', 'active']]);
  const v4 = buildView([rs('rs-b', null, { llm: 'RUNNING', web: 'RUNNING' })], pods, v3, 4000);
  assert.equal(v4.rayservices[0]!.previousSinceMs, 3000, 'the flip time is kept');
  const v5 = buildView([rs('rs-b', null, { llm: 'RUNNING', web: 'RUNNING' })], [pods[1]!], v4, 5000);
  assert.equal(v5.rayservices[0]!.previous, null);
  assert.deepEqual(v5.clusters.map((c) => c.name), ['rs-b']);
});

test('a pending cluster replaced mid-upgrade is dropped, never "previous"', () => {
  const pods = [pod('rs-a', '10.0.0.1'), pod('rs-b', '10.0.1.1'), pod('rs-c', '10.0.2.1')];
  const v1 = buildView([rs('rs-a', 'rs-b')], pods, EMPTY_VIEW, 1000);
  const v2 = buildView([rs('rs-a', 'rs-c')], pods, v1, 2000);
  assert.deepEqual(v2.clusters.map((c) => [c.name, c.role]), [['rs-a', 'active'], ['rs-c', 'pending']]);
});

test('weights by role resolve to the cluster names of the app\'s RayService; a missing role falls back to the default', () => {
  const pods = [pod('rs-a', '10.0.0.1'), pod('rs-b', '10.0.1.1')];
  const apps = new Map([['llm', { ...DEFAULT_APP_POLICY, weights: { active: 80, pending: 20 } }]]);
  const during = buildView([rs('rs-a', 'rs-b')], pods, EMPTY_VIEW, 0);
  assert.deepEqual(resolveRoleWeights(apps, DEFAULT_APP_POLICY, during).get('llm')!.weights, { 'rs-a': 80, 'rs-b': 20 });
  const steady = buildView([rs('rs-a', null)], pods, EMPTY_VIEW, 0);
  assert.equal(resolveRoleWeights(apps, DEFAULT_APP_POLICY, steady).get('llm')!.weights, null);
  const defaults = { ...DEFAULT_APP_POLICY, weights: { active: 100 } };
  assert.deepEqual(resolveRoleWeights(new Map(), defaults, steady).get('web')!.weights, { 'rs-a': 100 });
});
