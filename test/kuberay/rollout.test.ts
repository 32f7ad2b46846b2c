// Issue 12: the gateway leads (`upgrade: rollout`) while the genuine KubeRay
// operator (v1.5.0) runs its blue/green upgrade. KubeRay promotes the new
// cluster as soon as its apps are RUNNING and deletes the old one
// rayClusterDeletionDelaySeconds later; in between the gateway moves traffic
// in steps with gates, and the deletion delay is set so that the rollout fits.
//
// - The rollout's steps (50 %, 100 %) run while KubeRay holds both clusters,
//   under load: 0 failed requests, 100 % before the old cluster is deleted.
// - `upgrade: hold`: nothing moves at KubeRay's promotion; the operator starts
//   the rollouts (to the role `active`) and they finish before the deletion.
// - The new cluster reports RUNNING but its llm fails every request: the gate
//   rolls llm back to the old cluster before KubeRay deletes anything; the
//   audit log and a Kubernetes Event on the RayService say why.
// Run with `npm run test:kuberay`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceAccountAccess } from '../k8s/apiserver.ts';
import { appRollout, appWeights, describeOutcomes, rolloutWentWrong, rolloutsSucceeded, rsClusters, until } from '../k8s/kuberay-player.ts';
import { APPS, REACT_MS, Registry, serving, startSuite } from './scenario.ts';
import { STACK_DEADLINE, kubeRayUnavailable } from './stack.ts';
import type { KubeRayStack } from './stack.ts';

const unavailable = kubeRayUnavailable();

describe('the gateway leads the rollout while the genuine KubeRay operator holds both clusters', { skip: unavailable ?? false, concurrency: false }, () => {
  let stack: KubeRayStack;
  let sa: ServiceAccountAccess;
  const reg = new Registry();

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

  test('upgrade: rollout — steps with gates between KubeRay’s promotion and its deletion of the old cluster, 0 failed requests', { timeout: 300_000 }, async () => {
    const name = 'rollout';
    const policy = { steps: [50, 100], interval: '3s', min_requests: 5, max_error_rate: 0.02, max_p99_latency: '30s' };
    // 2 steps × 3 s fit in the 20 s KubeRay waits before it deletes the old cluster.
    const { rs, g, blue, load, trace, t0, loadUntil, fail, waitStatus, waitKubeRay, podsGone } = await serving(stack, sa, reg, name, {
      upgrade: 'rollout',
      deletionDelaySeconds: 20,
      applications: { '*': { rollout: policy } },
    });
    const fits = (await g.status())['kubernetes']['rayservices'].find((r: Record<string, unknown>) => r['name'] === name)['apps'];
    assert.ok(fits.every((a: Record<string, unknown>) => a['rollout_fits_deletion_delay'] === true), fail(`the rollout fits the deletion delay: ${JSON.stringify(fits)}`));
    const metrics = await (await fetch(`${g.gw.adminUrl}/metrics`, { headers: { authorization: 'Bearer test-token' } })).text();
    for (const app of APPS) {
      assert.match(metrics, new RegExp(`serve_gateway_rollout_fits_deletion_delay\\{rayservice="${name}",app="${app}"\\} 1`), fail(`the fits metric for ${app}`));
    }
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    const specAt = performance.now();
    await rs.upgrade();
    const green = (await waitKubeRay('a pending cluster', (c) => c.pending !== null && c.pending !== blue, specAt)).pending!;
    const promoted = await waitKubeRay(`${green} promoted`, (c) => c.active === green && c.pending === null, specAt);
    const promoteAt = promoted.at;
    const done = await waitStatus(
      'both rollouts complete',
      REACT_MS + 60_000,
      rolloutsSucceeded(APPS, green),
      50,
      rolloutWentWrong(APPS, green),
    );
    const clustersAtCompletion = await rs.rayClusters();
    const deletedAt = await podsGone(blue);
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > deletedAt, 20);
    await load.stop();
    await trace.stop();

    const is = (app: string, b: number, gr: number) => (s: Record<string, unknown>) => {
      const w = appWeights(s as never, app);
      return (w[blue] ?? 0) === b && (w[green] ?? 0) === gr;
    };
    const lines: string[] = [];
    for (const app of APPS) {
      const half = trace.first(is(app, 50, 50));
      const full = trace.first(is(app, 0, 100));
      assert.ok(half && full, fail(`${app} went through 50/50 then 0/100; weights seen: ${trace.weightsSeen(app).join(' → ')}`));
      const step = load.outcomes.filter((o) => o.app === app && o.start > half.at && o.end < full.sent);
      const onBlue = step.filter((o) => o.cluster === blue).length;
      const onGreen = step.filter((o) => o.cluster === green).length;
      assert.ok(onBlue > 0 && onGreen > 0, fail(`${app} during the 50 % step: ${onBlue} on ${blue}, ${onGreen} on ${green}`));
      const early = load.outcomes.filter((o) => o.app === app && o.cluster === green && o.end < promoteAt);
      assert.equal(early.length, 0, fail(`${app} on ${green} before KubeRay promoted it: ${describeOutcomes(early, t0)}`));
      lines.push(`${app}: 50 % at ${Math.round(half.at - promoteAt)} ms, 100 % at ${Math.round(full.at - promoteAt)} ms after KubeRay's promotion (step: ${onBlue} on ${blue}, ${onGreen} on ${green})`);
    }
    const audit = await g.events();
    console.log(
      `# rollout (genuine KubeRay): ${load.summary()}; ${lines.join('; ')}; ${blue}'s pods gone ${Math.round(deletedAt - promoteAt)} ms after the promotion (deletion delay 20 s); ` +
        `audit: ${audit.filter((e) => e['actor'] === 'kubernetes' || String(e['action']).startsWith('rollout')).map((e) => `${e['app']} ${e['action']} by ${e['actor']}`).join(', ')}`,
    );
    assert.deepEqual(clustersAtCompletion, [blue, green].sort(), fail('both RayClusters still existed when the rollouts completed'));
    assert.equal(load.failures().length, 0, fail(`failed requests: ${load.failures().length}`));
    for (const app of APPS) {
      assert.ok(audit.some((e) => e['app'] === app && e['action'] === 'rollout_start' && e['actor'] === 'kubernetes'), fail(`rollout of ${app} started by "kubernetes"`));
      assert.ok(audit.some((e) => e['app'] === app && e['action'] === 'rollout_complete'), fail(`rollout of ${app} complete in the audit log`));
    }
    const lateOld = load.outcomes.filter((o) => o.cluster === blue && o.start > done.at);
    assert.equal(lateOld.length, 0, fail(`nothing started on ${blue} after both rollouts completed: ${describeOutcomes(lateOld, t0)}`));
  });

  test('upgrade: hold — nothing moves when KubeRay promotes; the operator starts the rollouts to the `active` role and they finish before KubeRay deletes the old cluster', { timeout: 300_000 }, async () => {
    const name = 'hold';
    const policy = { steps: [50, 100], interval: '3s', min_requests: 5, max_error_rate: 0.02, max_p99_latency: '30s' };
    const { rs, g, blue, load, trace, t0, loadUntil, fail, waitStatus, waitKubeRay, podsGone } = await serving(stack, sa, reg, name, {
      upgrade: 'hold',
      deletionDelaySeconds: 30,
      applications: { '*': { rollout: policy } },
    });
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);
    const specAt = performance.now();
    await rs.upgrade();
    const promoted = await waitKubeRay('a new cluster promoted', (c) => c.active !== null && c.active !== blue && c.pending === null, specAt);
    const green = promoted.active!;
    await waitStatus(`${green} active in the gateway, ${blue} previous`, REACT_MS, (s) => rsClusters(s, name).get(green)?.['role'] === 'active' && rsClusters(s, name).get(blue)?.['role'] === 'previous');
    // KubeRay has moved on; with `hold` the gateway has not: 30 more requests, all on the old cluster.
    const heldFrom = performance.now();
    await loadUntil('started after the promotion was seen', (o) => o.start > heldFrom, 30);
    const held = await g.status();
    for (const app of APPS) {
      assert.equal(appWeights(held, app)[blue], 100, fail(`${app} still on ${blue} under hold`));
      assert.equal(appRollout(held, app), null, fail(`no rollout of ${app} started by itself`));
    }
    const onGreenBeforeOperator = load.outcomes.filter((o) => o.cluster === green);

    // The operator: one rollout per app, to the role `active` (the gateway resolves it to the new cluster).
    const startedAt = performance.now();
    for (const app of APPS) {
      const r = await g.admin('POST', `/api/v1/apps/${app}/rollout`, { to: 'active' });
      assert.equal(r.status, 201, fail(`rollout of ${app} to "active": ${JSON.stringify(r.json)}`));
      assert.equal(r.json['rollout']?.['pending_cluster'], green, fail(`the role resolved to ${green}: ${JSON.stringify(r.json)}`));
    }
    const done = await waitStatus('both rollouts complete', REACT_MS + 60_000, rolloutsSucceeded(APPS, green), 50, rolloutWentWrong(APPS, green));
    const clustersAtCompletion = await rs.rayClusters();
    const deletedAt = await podsGone(blue);
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > deletedAt, 20);
    await load.stop();
    await trace.stop();
    const audit = await g.events();
    console.log(
      `# hold (genuine KubeRay): ${load.summary()}; KubeRay promoted ${green} ${Math.round(promoted.at - specAt)} ms after the spec change; ` +
        `requests on ${green} before the operator acted: ${onGreenBeforeOperator.length}; rollouts started by the operator ${Math.round(startedAt - promoted.at)} ms after the promotion, ` +
        `complete ${Math.round(done.at - startedAt)} ms later; ${blue}'s pods gone ${Math.round(deletedAt - promoted.at)} ms after the promotion (deletion delay 30 s); ` +
        `audit: ${audit.filter((e) => String(e['action']).startsWith('rollout')).map((e) => `${e['app']} ${e['action']} by ${e['actor']}`).join(', ')}`,
    );
    assert.equal(onGreenBeforeOperator.length, 0, fail(`nothing reached ${green} before the operator started the rollouts`));
    assert.deepEqual(clustersAtCompletion, [blue, green].sort(), fail('both RayClusters still existed when the rollouts completed'));
    assert.equal(load.failures().length, 0, fail(`failed requests: ${describeOutcomes(load.failures(), t0)}`));
    for (const app of APPS) {
      assert.ok(audit.some((e) => e['app'] === app && e['action'] === 'rollout_start' && e['actor'] !== 'kubernetes'), fail(`the ${app} rollout was started by the operator, not by the gateway`));
    }
  });

  test('upgrade: rollout — a new cluster whose llm fails is rolled back by the gate before KubeRay deletes anything; audit and Event say why', { timeout: 300_000 }, async () => {
    const name = 'rollback';
    const policy = { steps: [50, 100], interval: '3s', min_requests: 5, max_error_rate: 0.02, max_p99_latency: '30s' };
    const { rs, g, blue, load, trace, t0, loadUntil, fail, waitStatus, waitKubeRay } = await serving(stack, sa, reg, name, {
      upgrade: 'rollout',
      deletionDelaySeconds: 60,
      applications: { '*': { rollout: policy } },
    });
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);
    // Serve reports the new cluster's llm RUNNING, but every request to it fails (a bad model build).
    stack.fleet.setOnDeploy((c) => {
      if (c.name !== blue) c.serve!.setFaults('llm', { errorRate: 1 });
    });

    const specAt = performance.now();
    await rs.upgrade();
    const green = (await waitKubeRay('a pending cluster', (c) => c.pending !== null && c.pending !== blue, specAt)).pending!;
    const promoted = await waitKubeRay(`${green} promoted`, (c) => c.active === green && c.pending === null, specAt);
    const rolledBack = await waitStatus(
      'the llm rollout rolled back',
      REACT_MS + 30_000,
      (s) => appRollout(s, 'llm')?.['phase'] === 'rolled_back' && appWeights(s, 'llm')[blue] === 100,
      25,
      (s) => (appWeights(s, 'llm')[green] === 100 ? `llm moved to the failing ${green} 100 % (rollout: ${JSON.stringify(appRollout(s, 'llm'))})` : null),
    );
    const clustersAtRollback = await rs.rayClusters();
    const bluePodsAtRollback = await rs.pods(blue);
    await loadUntil('llm started after the rollback', (o) => o.app === 'llm' && o.start > rolledBack.at, 40);
    await load.stop();
    await trace.stop();
    stack.fleet.setOnDeploy(() => {});

    const gateFailures = load.failures().filter((o) => o.app === 'llm' && o.cluster === green && o.status === 500);
    const otherFailures = load.failures().filter((o) => !gateFailures.includes(o));
    const llmAfter = load.outcomes.filter((o) => o.app === 'llm' && o.start > rolledBack.at);
    const audit = await g.events();
    const failedEntry = audit.find((e) => e['app'] === 'llm' && e['action'] === 'rollout_failed');
    const k8sEvent = await until(
      'a Kubernetes Event on the RayService about the llm rollback',
      REACT_MS,
      async () => (await rs.events()).find((e) => (e.message ?? '').includes('app llm') && /gate failed/.test(e.message ?? '')),
      { everyMs: 200 },
    );
    console.log(
      `# rollback (genuine KubeRay): ${load.summary()}; KubeRay promoted ${green} ${Math.round(promoted.at - specAt)} ms after the spec change; ` +
        `the gate rolled llm back ${Math.round(rolledBack.at - promoted.at)} ms after the promotion, with ${bluePodsAtRollback} pods of ${blue} still running (KubeRay deletes them 60 s after the promotion); ` +
        `failed llm requests on ${green} (what the gate needed to see): ${gateFailures.length}; other failures: ${otherFailures.length}; ` +
        `weights seen llm: ${trace.weightsSeen('llm').join(' → ')}\n` +
        `# audit: ${failedEntry ? `${failedEntry['action']} by ${failedEntry['actor']}: ${failedEntry['reason']}` : 'none'}\n` +
        `# Kubernetes Event: ${k8sEvent.type} ${k8sEvent.reason}: ${k8sEvent.message}`,
    );
    assert.deepEqual(clustersAtRollback, [blue, green].sort(), fail('KubeRay had deleted nothing when the gate rolled back'));
    assert.ok(bluePodsAtRollback > 0, fail(`${blue}'s pods still existed at the rollback`));
    assert.equal(otherFailures.length, 0, fail(`failures other than the gate's: ${describeOutcomes(otherFailures, t0)}`));
    assert.ok(gateFailures.length >= policy.min_requests, fail(`the gate saw at least min_requests failing requests (${gateFailures.length})`));
    assert.ok(llmAfter.length >= 40 && llmAfter.every((o) => o.cluster === blue && o.ok), fail(`llm stays on ${blue} after the rollback`));
    assert.ok(failedEntry, fail('audit entry rollout_failed for llm'));
    assert.match(String(failedEntry['reason']), /gate failed/);
    assert.match(String(failedEntry['reason']), /error rate/);
    assert.equal(k8sEvent.type, 'Warning');
    assert.equal(k8sEvent.involvedObject.kind, 'RayService');
    assert.equal(k8sEvent.involvedObject.name, name);
  });
});
