// Issue 12: the genuine KubeRay operator (v1.5.0, unchanged) runs the
// RayService; the gateway follows it. Only Ray is simulated (src/sim/ray-fleet.ts,
// on the pods' own addresses); the API server, the controller manager and the
// operator are the real ones, in a network namespace (run.ts, stack.ts).
//
// - A RayService created as `kubectl create` would reaches Running and becomes
//   routable through the gateway.
// - A spec change: KubeRay runs its blue/green (NewCluster) upgrade; the gateway
//   (`upgrade: follow`) switches at KubeRay's promotion under load (JSON and SSE):
//   0 failed requests, the old cluster's streams complete, its pods are deleted
//   by KubeRay with no request failing.
// - A pending cluster that never becomes RUNNING (its app asks for a GPU the
//   nodes do not have) is never promoted and gets no traffic; a second spec
//   change mid-upgrade replaces it and the gateway follows the replacement.
// Run with `npm run test:kuberay`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SERVE_CONFIG_V2, appWeights, describeOutcomes, k8sSummary, rsClusters, switchOutcomes, until } from '../k8s/kuberay-player.ts';
import type { ServiceAccountAccess } from '../k8s/apiserver.ts';
import { APPS, ENDPOINTS, REACT_MS, Registry, serving as servingIn, startSuite } from './scenario.ts';
import { STACK_DEADLINE, kubeRayUnavailable } from './stack.ts';
import type { KubeRayStack } from './stack.ts';

const unavailable = kubeRayUnavailable();

describe('the genuine KubeRay operator runs a blue/green upgrade; the gateway follows it', { skip: unavailable ?? false, concurrency: false }, () => {
  let stack: KubeRayStack;
  let sa: ServiceAccountAccess;
  const reg = new Registry();
  const serving = (name: string, deletionDelaySeconds: number) => servingIn(stack, sa, reg, name, { deletionDelaySeconds, upgrade: 'follow' });

  before(
    async () => {
      ({ stack, sa } = await startSuite());
    },
    { timeout: STACK_DEADLINE.setup },
  );

  after(async () => {
    await reg.close();
    await stack?.stop();
  });

  test('a RayService created with kubectl-equivalent calls reaches Running and becomes routable through the gateway', { timeout: 300_000 }, async () => {
    const { rs, g, blue, load, createdAt, runningAt, routableAt, loadUntil, fail } = await serving('sample', 10);
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);
    await load.stop();
    const s = await g.status();
    const latest = rs.latest()!;
    console.log(
      `# create: RayService Running ${Math.round(runningAt - createdAt)} ms after kubectl create (KubeRay's numServeEndpoints ${latest.endpoints}); ` +
        `gateway routable ${Math.round(routableAt - runningAt)} ms after it started; ${load.summary()}`,
    );
    assert.equal(load.failures().length, 0, fail('failed requests'));
    assert.equal(latest.endpoints, ENDPOINTS, fail('KubeRay counts every serve pod from the Endpoints the controller manager wrote'));
    assert.equal(rsClusters(s, 'sample').get(blue)?.['role'], 'active');
    assert.deepEqual(await rs.rayClusters(), [blue]);
  });

  test('upgrade: follow — KubeRay’s blue/green upgrade under load: the switch at its promotion, 0 failed requests, old streams complete, old pods deleted', { timeout: 300_000 }, async () => {
    const name = 'bluegreen';
    const { rs, g, blue, load, trace, t0, loadUntil, fail, waitStatus, waitKubeRay, podsGone } = await serving(name, 8);
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    const specAt = performance.now();
    await rs.upgrade();
    const pending = await waitKubeRay('a pending cluster', (c) => c.pending !== null && c.pending !== blue, specAt);
    const green = pending.pending!;
    await waitStatus(`${green} known as pending`, REACT_MS, (s) => rsClusters(s, name).get(green)?.['role'] === 'pending');
    const promoted = await waitKubeRay(`${green} promoted`, (c) => c.active === green && c.pending === null, specAt);
    const promoteAt = promoted.at;
    const seen = await waitStatus('the gateway switched both apps', REACT_MS, (s) => APPS.every((a) => appWeights(s, a)[green] === 100), 10);
    const swapMs = seen.at - promoteAt;
    assert.equal(rsClusters(seen.status, name).get(blue)?.['role'], 'previous', fail(`the old cluster is "previous" while it has pods: ${k8sSummary(seen.status)}`));

    const deletedAt = await podsGone(blue);
    await waitStatus(`${blue} dropped`, REACT_MS, (s) => !rsClusters(s, name).has(blue));
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > deletedAt, 30);
    await load.stop();
    await trace.stop();

    const { failed, lateOld, earlyNew, streamsAtSwap, afterSwitch } = switchOutcomes(load, { blue, green, seenAt: seen.at, promoteAt });
    const audit = (await g.events()).filter((e) => e['actor'] === 'kubernetes');
    // KubeRay promotes when the new cluster's apps are RUNNING, without waiting for its pods to be
    // Ready; the gateway switches to a cluster only once it has a ready serve pod.
    const readyAtPromotion = trace.lastBefore(promoteAt, () => true);
    const greenEndpointsAtPromotion = readyAtPromotion ? (rsClusters(readyAtPromotion.status, name).get(green)?.['ready_endpoints'] ?? 0) : 0;
    const firstReady = trace.first((s) => (rsClusters(s, name).get(green)?.['ready_endpoints'] ?? 0) > 0);
    console.log(
      `# follow (genuine KubeRay): ${load.summary()}; spec change → pending ${Math.round(pending.at - specAt)} ms → promotion ${Math.round(promoteAt - specAt)} ms; ` +
        `gateway switch seen ${swapMs.toFixed(0)} ms after KubeRay's promotion (${green} had ${greenEndpointsAtPromotion} ready serve pods at the promotion; ` +
        `first one seen ${firstReady ? Math.round(firstReady.at - promoteAt) : '?'} ms after it); SSE streams on ${blue} in flight at the promotion: ${streamsAtSwap.length} ` +
        `(completed ${streamsAtSwap.filter((o) => o.ok).length}); ${blue}'s pods gone ${Math.round(deletedAt - promoteAt)} ms after the promotion (deletion delay 8 s); ` +
        `started after the switch: ${afterSwitch.length}, on ${blue}: ${lateOld.length}; audit by kubernetes: ${audit.map((e) => `${e['app']} ${e['action']} ${JSON.stringify(e['to'])}`).join('; ')}\n` +
        `# KubeRay status changes:\n${rs.history(specAt)}`,
    );
    assert.equal(failed.length, 0, fail(`failed requests: ${failed.length}`));
    assert.equal(lateOld.length, 0, fail(`requests started on ${blue} after the gateway saw the promotion: ${describeOutcomes(lateOld, t0)}`));
    assert.equal(earlyNew.length, 0, fail(`requests answered by ${green} before KubeRay promoted it: ${describeOutcomes(earlyNew, t0)}`));
    assert.ok(streamsAtSwap.every((o) => o.ok && o.end < deletedAt), fail(`streams on ${blue} at the promotion complete before its pods are deleted`));
    assert.ok(afterSwitch.length >= 30 && afterSwitch.every((o) => o.cluster === green), fail(`everything after the switch on ${green}`));
    assert.deepEqual(await rs.rayClusters(), [green], fail('KubeRay deleted the old RayCluster'));
    for (const app of APPS) {
      assert.ok(
        audit.some((e) => e['app'] === app && e['result'] === 'ok' && (e['to'] as Record<string, number> | null)?.[green] === 100),
        fail(`an audit entry by "kubernetes" switches ${app} to ${green}`),
      );
    }
  });

  test('a pending cluster that never becomes RUNNING gets no traffic; a second spec change mid-upgrade replaces it and the gateway follows', { timeout: 360_000 }, async () => {
    const name = 'respec';
    const { rs, blue, load, trace, t0, loadUntil, fail, waitStatus, waitKubeRay, podsGone } = await serving(name, 6);
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    // The new version's llm asks for a GPU; the simulated nodes have none, so Serve never places its replicas.
    const gpuConfig = SERVE_CONFIG_V2.replace('num_cpus: 0.1', 'num_cpus: 0.1\n          num_gpus: 1');
    assert.notEqual(gpuConfig, SERVE_CONFIG_V2);
    const firstAt = performance.now();
    await rs.upgrade(gpuConfig);
    const stuck = (await waitKubeRay('a pending cluster', (c) => c.pending !== null && c.pending !== blue, firstAt)).pending!;
    await waitKubeRay(`${stuck}'s llm DEPLOYING`, (c) => c.pending === stuck && c.pendingApps.includes('llm:DEPLOYING'), firstAt);
    await waitStatus(`${stuck} pending in the gateway`, REACT_MS, (s) => rsClusters(s, name).get(stuck)?.['role'] === 'pending');
    // Several reconciles later KubeRay has still not promoted it: traffic stays where it was.
    const heldFrom = performance.now();
    await loadUntil(`started on ${blue} while ${stuck} is stuck`, (o) => o.start > heldFrom && o.cluster === blue, 60);
    await until('10 s of KubeRay holding the pending cluster', 30_000, () => (performance.now() - heldFrom > 10_000 ? true : undefined), { everyMs: 250 });
    assert.equal(rs.latest()?.active, blue, fail(`KubeRay did not promote ${stuck}`));
    assert.equal(rs.latest()?.pending, stuck);

    // The fix: a second spec change (no GPU) while the upgrade is in progress.
    const secondAt = performance.now();
    await rs.upgrade(SERVE_CONFIG_V2);
    const replaced = await waitKubeRay('a replacement pending cluster', (c) => c.pending !== null && c.pending !== stuck && c.pending !== blue, secondAt);
    const second = replaced.pending!;
    const dropped = await waitStatus(`${stuck} dropped, ${second} pending`, REACT_MS, (s) => !rsClusters(s, name).has(stuck) && rsClusters(s, name).get(second)?.['role'] === 'pending');
    const promoted = await waitKubeRay(`${second} promoted`, (c) => c.active === second && c.pending === null, secondAt);
    const seen = await waitStatus(`the gateway switched both apps to ${second}`, REACT_MS, (s) => APPS.every((a) => appWeights(s, a)[second] === 100), 10);
    const stuckGoneAt = await podsGone(stuck);
    const blueGoneAt = await podsGone(blue);
    await waitStatus(`${blue} dropped`, REACT_MS, (s) => !rsClusters(s, name).has(blue));
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > blueGoneAt, 20);
    await load.stop();
    await trace.stop();

    const failed = load.failures();
    const onStuck = load.outcomes.filter((o) => o.cluster === stuck);
    const lateOld = load.outcomes.filter((o) => o.cluster === blue && o.start > seen.at);
    const listedAfterDrop = trace.samples.filter((x) => x.sent > dropped.at && rsClusters(x.status, name).has(stuck));
    const firstReady = trace.first((s) => (rsClusters(s, name).get(second)?.['ready_endpoints'] ?? 0) > 0);
    console.log(
      `# stuck pending + second spec change (genuine KubeRay): ${load.summary()}; ${stuck} held in DEPLOYING, not promoted; ` +
        `replacement ${second} named ${Math.round(replaced.at - secondAt)} ms after the second change; ${stuck} dropped by the gateway ${Math.round(dropped.at - replaced.at)} ms after KubeRay replaced it, ` +
        `its pods gone ${Math.round(stuckGoneAt - replaced.at)} ms after; switch to ${second} seen ${Math.round(seen.at - promoted.at)} ms after KubeRay's promotion ` +
        `(its first ready serve pod seen ${firstReady ? Math.round(firstReady.at - promoted.at) : '?'} ms after it); requests on ${stuck}: ${onStuck.length}\n` +
        `# KubeRay status changes:\n${rs.history(firstAt)}`,
    );
    assert.equal(failed.length, 0, fail(`failed requests: ${failed.length}`));
    assert.equal(onStuck.length, 0, fail(`requests on the never-RUNNING cluster ${stuck}`));
    assert.equal(lateOld.length, 0, fail(`requests started on ${blue} after the switch: ${describeOutcomes(lateOld, t0)}`));
    assert.equal(listedAfterDrop.length, 0, fail(`${stuck} came back in the status after it was dropped`));
    assert.ok(dropped.at < stuckGoneAt, fail(`${stuck} dropped as soon as KubeRay stopped naming it, while its pods still existed`));
    assert.ok(load.outcomes.filter((o) => o.start > seen.at).every((o) => o.cluster === second), fail(`everything after the switch on ${second}`));
  });
});
