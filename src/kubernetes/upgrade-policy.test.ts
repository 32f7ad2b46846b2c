import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterReady, decideUpgrades, rolloutFitsDeletionDelay, type AppTraffic } from './upgrade-policy.ts';
import type { KubeView, ViewCluster, ViewRayService } from './view.ts';
import type { ServeApp } from '../config/types.ts';

const APP: ServeApp = { name: 'llm', routePrefix: '/llm', ingressDeployment: 'D', maxOngoingRequests: 4, maxQueuedRequests: -1, replicas: 1, status: 'UNKNOWN' };

function view(active: string | null, pending: string | null, previous: string | null, clusters: Array<Partial<ViewCluster> & { name: string }>): KubeView {
  const rs: ViewRayService = { name: 'rs', uid: 'u', active, pending, previous, previousSinceMs: previous ? 0 : null, deletionDelayMs: 60_000, serveConfig: 'x', apps: [APP], phase: 'steady' };
  return {
    rayservices: [rs],
    clusters: clusters.map((c) => ({ rayservice: 'rs', role: 'active', endpoints: ['http://10.0.0.1:8000'], pods: 1, dashboard: null, appStatuses: { llm: 'RUNNING' }, ...c })),
  };
}

const traffic = (weights: Record<string, number>, rollout: AppTraffic['rollout'] = null) => (): AppTraffic => ({ weights, rollout });

test('follow: KubeRay\'s flip switches every app at once; nothing else moves an operator\'s weights', () => {
  const before = view('a', 'b', null, [{ name: 'a' }, { name: 'b', role: 'pending' }]);
  const after = view('b', null, 'a', [{ name: 'b' }, { name: 'a', role: 'previous' }]);
  assert.deepEqual(decideUpgrades('follow', before, after, traffic({ a: 100, b: 0 })), [
    { kind: 'switch', app: 'llm', rayservice: 'rs', to: 'b', reason: 'KubeRay promoted b (was a) for RayService rs' },
  ]);
  assert.deepEqual(decideUpgrades('follow', after, after, traffic({ a: 50, b: 50 })), [], 'no flip: the operator\'s split stays');
  assert.deepEqual(decideUpgrades('follow', before, before, traffic({ a: 100, b: 0 })), [], 'a pending cluster alone moves nothing');
});

test('rollout: starts to a ready pending cluster, or to the new active one after the flip; never twice', () => {
  const notReady = view('a', 'b', null, [{ name: 'a' }, { name: 'b', role: 'pending', appStatuses: { llm: 'DEPLOYING' } }]);
  const ready = view('a', 'b', null, [{ name: 'a' }, { name: 'b', role: 'pending' }]);
  assert.deepEqual(decideUpgrades('rollout', notReady, notReady, traffic({ a: 100 })), []);
  assert.deepEqual(decideUpgrades('rollout', notReady, ready, traffic({ a: 100 })).map((a) => [a.kind, a.to]), [['start_rollout', 'b']]);
  assert.deepEqual(decideUpgrades('rollout', ready, ready, traffic({ a: 100, b: 0 }, { pendingCluster: 'b', phase: 'progressing' })), []);
  const flipped = view('b', null, 'a', [{ name: 'b' }, { name: 'a', role: 'previous' }]);
  assert.deepEqual(decideUpgrades('rollout', notReady, flipped, traffic({ a: 100, b: 0 })).map((a) => [a.kind, a.to]), [['start_rollout', 'b']]);
  // A rollout that was rolled back is not started again by the gateway: the operator decides.
  assert.deepEqual(decideUpgrades('rollout', ready, flipped, traffic({ a: 100, b: 0 }, { pendingCluster: 'b', phase: 'rolled_back' })), []);
  assert.deepEqual(decideUpgrades('hold', notReady, flipped, traffic({ a: 100, b: 0 })), []);
});

test('every mode: a cluster with traffic whose pods are gone hands its traffic to the active cluster', () => {
  const draining = view('b', null, 'a', [{ name: 'b' }, { name: 'a', role: 'previous' }]);
  const gone = view('b', null, null, [{ name: 'b' }]);
  for (const mode of ['follow', 'rollout', 'hold'] as const) {
    const [a] = decideUpgrades(mode, draining, gone, traffic({ a: 100, b: 0 }, { pendingCluster: 'b', phase: 'rolled_back' }));
    assert.equal(a?.kind, 'switch', mode);
    assert.equal(a?.to, 'b');
    assert.match(a!.reason, /cluster a of RayService rs has no pods left/);
  }
  const [p] = decideUpgrades('rollout', draining, gone, traffic({ a: 50, b: 50 }, { pendingCluster: 'b', phase: 'progressing' }));
  assert.equal(p?.kind, 'promote', 'a rollout in progress is finished at once');
});

test('readiness and the deletion-deadline rule', () => {
  assert.equal(clusterReady(view('a', null, null, [{ name: 'a' }]), 'a'), true);
  assert.equal(clusterReady(view('a', null, null, [{ name: 'a', endpoints: [] }]), 'a'), false, 'no ready serve pod');
  assert.equal(clusterReady(view('a', null, null, [{ name: 'a', appStatuses: null }]), 'a'), false, 'no status reported');
  assert.equal(rolloutFitsDeletionDelay([5, 25, 50, 100], 30_000, 60_000), false, '3 intervals of 30 s do not fit 60 s');
  assert.equal(rolloutFitsDeletionDelay([10, 50, 100], 20_000, 60_000), true);
});
